"""Data-parallel scaling: train-step throughput on 1, 2, 4, 8 devices.

    python benchmarks/bench_scaling.py                 # print the table
    python benchmarks/bench_scaling.py --write         # and record it in benchmarks/RESULTS.md
    python benchmarks/bench_scaling.py --devices 1 2 --steps 8 --repeat 1   # a smoke run

jaxtrain's ``make_train_step`` on a ``jaxtrain.parallel.data_mesh`` of N devices:
the notes' CIFAR-10 CNN at a global batch of 64 (32x32x3) and the MLP at 256
(28x28x1), SGD (lr 0.01, cross entropy), random data. The global batch stays the
same for every N (strong scaling: each device takes ``batch / N`` rows). The
batches are put on the mesh before the timing (``parallel.put_batch``), so the
figures are the step's, not the host-to-device copy's. Reported: steps/s and
images/s (median of ``--repeat`` windows of ``--steps`` steps, after the first),
the speed-up over 1 device, and the time to the first step (compilation).

Each device count runs in its own fresh process (this script with ``--child N``):
the device count of a JAX process is fixed when it starts. On a GPU (or TPU)
machine the child uses the first N real devices; counts above the machine's are
skipped. On a CPU-only machine the child gets N *fake* CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=N``), which share the
machine's cores: the table then shows the cost of the sharded program (the
per-device work and the all-reduce), not a speed-up that real devices would give,
and is labelled so.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results import machine, publish  # noqa: E402

LR = 0.01
CASES = {"cnn": (64, (32, 32, 3)), "mlp": (256, (28, 28, 1))}  # name: (global batch, image)
_TAG = "BENCH_SCALING "
_FAKE = "--xla_force_host_platform_device_count"


def _model(name: str):
  from flax import nnx

  from jaxtrain import models

  if name == "cnn":
    return models.CNN(in_channels=3, image_size=32, rngs=nnx.Rngs(0))
  return models.MLP(rngs=nnx.Rngs(0))


def child(devices: int, names: list[str], steps: int, repeat: int) -> dict:
  """Throughput of each model on the first ``devices`` devices, in this process."""
  import jax

  import jaxtrain.losses as L
  from jaxtrain import optim, parallel
  from jaxtrain.train_step import create_train_state, make_train_step

  available = jax.devices()
  if len(available) < devices:
    return dict(error=f"{devices} devices asked, {len(available)} present")
  mesh = parallel.data_mesh(available[:devices])
  dev = available[0]
  out = dict(devices=devices, platform=dev.platform, device_kind=dev.device_kind, models={})
  for name in names:
    batch, shape = CASES[name]
    rng = np.random.default_rng(0)
    xs = [
      parallel.put_batch(
        (
          rng.random((batch,) + shape, dtype=np.float32),
          rng.integers(0, 10, batch, dtype=np.int32),
        ),
        mesh,
      )
      for _ in range(steps)
    ]
    jax.block_until_ready(xs)
    model, opt = _model(name), optim.sgd(LR)
    state = create_train_state(model, opt, mesh=mesh)
    step = make_train_step(model, L.cross_entropy, opt, mesh=mesh)
    t0 = time.perf_counter()
    state, m = step(state, xs[0])
    jax.block_until_ready(m)
    first = time.perf_counter() - t0
    rates = []
    for _ in range(repeat):
      t0 = time.perf_counter()
      for b in xs:
        state, m = step(state, b)
      jax.block_until_ready(m)
      rates.append(steps / (time.perf_counter() - t0))
    out["models"][name] = dict(
      batch=batch, first=first, sps=statistics.median(rates), all_sps=rates
    )
  return out


def run_child(
  devices: int, names: list[str], steps: int, repeat: int, fake: bool, timeout: float
) -> dict:
  """``child`` in a fresh interpreter; with ``fake``, ``devices`` fake CPU devices."""
  env = dict(os.environ)
  if fake:
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(_FAKE)]
    env["XLA_FLAGS"] = " ".join(flags + [f"{_FAKE}={devices}"])
    env["JAX_PLATFORMS"] = "cpu"
  cmd = [
    sys.executable,
    os.path.abspath(__file__),
    "--child",
    str(devices),
    "--models",
    *names,
    "--steps",
    str(steps),
    "--repeat",
    str(repeat),
  ]
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
  except subprocess.TimeoutExpired:
    return dict(devices=devices, error=f"timed out after {timeout:.0f} s")
  for line in reversed(proc.stdout.splitlines()):
    if line.startswith(_TAG):
      return json.loads(line[len(_TAG) :])
  err = [line for line in proc.stderr.splitlines() if line.strip()]
  return dict(
    devices=devices, error=f"exit status {proc.returncode}" + (f": {err[-1][:160]}" if err else "")
  )


def _platform() -> tuple[str, int]:
  """The default backend and its device count, asked of a fresh interpreter (not this one)."""
  code = "import jax; print(jax.default_backend(), jax.device_count())"
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  backend, count = proc.stdout.split()[-2:]
  return backend, int(count)


def markdown(results: list[dict], steps: int, repeat: int, fake: bool, command: str) -> str:
  if fake:
    kind = (
      f"**fake CPU devices** (`XLA_FLAGS={_FAKE}=N`) sharing this machine's "
      f"{os.cpu_count()} cores: not a scaling claim. The N devices run on the same cores, "
      "so the figures show what the sharded program (the split batch, the all-reduce of "
      "the gradients) costs, not what N real devices would gain. Record real scaling on a "
      "machine with several GPUs."
    )
  else:
    kinds = sorted({r.get("device_kind", "?") for r in results if "error" not in r})
    kind = f"real devices: {', '.join(kinds)}."
  lines = [
    f"## Scaling with devices ({datetime.date.today().isoformat()})",
    "",
    f"{machine()} Command: `{command}` ({steps} SGD steps per timed window, median of "
    f"{repeat} window{'s' if repeat > 1 else ''} after the first step; random data put on "
    "the mesh before timing).",
    f"Devices: {kind} The global batch is the same for every device count (each device "
    "takes batch / N rows); speed-up = images/s over the 1-device row's.",
    "",
    "| model (global batch) | devices | rows per device | steps/s | images/s | speed-up | "
    "first step (s) |",
    "|---|---:|---:|---:|---:|---:|---:|",
  ]
  base = {}
  for r in results:
    for name, m in r.get("models", {}).items():
      if r["devices"] == 1:
        base[name] = m["sps"]
  for name in CASES:
    for r in results:
      if "error" in r:
        if name == next(iter(CASES)):
          lines.append(f"| all | {r['devices']} | | failed: {r['error']} | | | |")
        continue
      m = r["models"].get(name)
      if m is None:
        continue
      speed = f"{m['sps'] / base[name]:.2f}x" if name in base else "n/a"
      lines.append(
        f"| {name} ({m['batch']}) | {r['devices']} | {m['batch'] // r['devices']} | "
        f"{m['sps']:.1f} | {m['sps'] * m['batch']:.0f} | {speed} | {m['first']:.2f} |"
      )
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--devices", type=int, nargs="+", default=[1, 2, 4, 8], help="device counts to measure"
  )
  parser.add_argument("--models", nargs="+", choices=sorted(CASES), default=list(CASES))
  parser.add_argument("--steps", type=int, default=32, help="steps per timed window")
  parser.add_argument("--repeat", type=int, default=3, help="timed windows (the median is kept)")
  parser.add_argument("--timeout", type=float, default=600, help="seconds per device count")
  parser.add_argument("--write", action="store_true", help="record the table in RESULTS.md")
  parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  for name in ("steps", "repeat"):
    if getattr(args, name) < 1:
      parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
  for n in args.devices:
    if n < 1:
      parser.error(f"--devices must be positive, got {n}")
    bad = [m for m in args.models if CASES[m][0] % n]
    if bad:
      parser.error(
        f"--devices {n}: the global batch of {', '.join(bad)} "
        f"({', '.join(str(CASES[m][0]) for m in bad)}) does not divide by {n}"
      )
  if args.child is not None:
    print(_TAG + json.dumps(child(args.child, args.models, args.steps, args.repeat)), flush=True)
    return 0

  backend, count = _platform()
  fake = backend == "cpu"
  asked = sorted(set(args.devices))
  counts = asked if fake else [n for n in asked if n <= count]
  if len(counts) < len(asked):
    print(f"{backend}: {count} device(s); skipping {sorted(set(asked) - set(counts))}", flush=True)
  results = []
  for n in counts:
    r = run_child(n, args.models, args.steps, args.repeat, fake, args.timeout)
    results.append(r)
    if "error" in r:
      print(f"{n} devices: failed: {r['error']}", flush=True)
    for name, m in r.get("models", {}).items():
      kind = "fake cpu" if fake else r["device_kind"]
      print(
        f"{name:4} {n} device{'s' if n > 1 else ' '} ({kind}): "
        f"{m['sps']:8.1f} steps/s {m['sps'] * m['batch']:9.0f} img/s  first step "
        f"{m['first']:.2f} s",
        flush=True,
      )
  command = (
    "python benchmarks/bench_scaling.py"
    + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
  )
  section = markdown(results, args.steps, args.repeat, fake, command)
  publish(section, "## Scaling with devices", args.write)
  return 0


if __name__ == "__main__":
  sys.exit(main())
