"""Training throughput and memory: torch eager, torch.compile, jaxtrain per-step and scan-epoch.

    python benchmarks/bench_train.py            # print the table
    python benchmarks/bench_train.py --write    # and record it in benchmarks/RESULTS.md
    python benchmarks/bench_train.py --models cnn --contenders torch jax-step --repeat 5
    python benchmarks/bench_train.py --precision bf16   # torch.autocast / jaxtrain's bf16

The notes' models on their data shapes (random data, the same for every contender):
the CIFAR-10 CNN at batch 64 (32x32x3), the MLP at batch 256 (28x28x1), the RNN at
batch 64 (28 rows of 28). Each contender trains SGD (lr 0.01, cross entropy) on the
same ``--steps`` batches:

* ``torch``: torch eager (forward, backward, ``optimizer.step()``), on NCHW tensors
  as the notes' users hold them;
* ``torch-compile``: the same with the model wrapped once in ``torch.compile``
  (default inductor backend and mode; the optimizer step stays eager). Its first
  step includes the compilation, from a cold cache (a fresh, temporary
  ``TORCHINDUCTOR_CACHE_DIR``); a failure is recorded as ``failed: <reason>``;
* ``jax-step``: jaxtrain's jit-compiled ``train_step`` called once per batch;
* ``jax-scan``: jaxtrain's ``make_epoch`` (all steps in one ``lax.scan``, data on
  the device).

Every (model, contender) runs in its own fresh Python process (this script with
``--child MODEL CONTENDER``, which prints one JSON line), one after another, so that
the peak memory is that contender's alone and no framework's thread pool or
allocator sees the other's. Reported per row: the device used (jax's default
device, a GPU when there is one; torch's CUDA when ``torch.cuda.is_available()``),
the time to the first step (compilation for torch.compile and jaxtrain), steps/s
and images/s (median of ``--repeat`` timed windows of ``--steps`` steps each, after
the first step), the throughput relative to torch eager of the same run, and
memory: the process's peak resident set size (``ru_maxrss``), the same minus the
resident set size measured after imports, data creation and the data's copy into
the contender's arrays (before the model is built), and on a GPU the device's peak
(jax's ``peak_bytes_in_use``, torch's ``max_memory_allocated``).

``--precision bf16`` runs both frameworks in mixed precision: torch's forward and
loss under ``torch.autocast(device_type, dtype=torch.bfloat16)``, jaxtrain's steps
with ``precision='bf16'`` (the same rules, ``jaxtrain.amp``); parameters and
optimizer state stay float32 in both.

Default threads and no allocator tuning for either framework (jax's GPU memory
preallocation left on).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results import load_average, machine, publish, start_load  # noqa: E402

CASES = {
  # name: (batch, image shape (H, W, C))
  "cnn": (64, (32, 32, 3)),
  "mlp": (256, (28, 28, 1)),
  "rnn": (64, (28, 28, 1)),
}

CONTENDERS = {
  # command-line name: label in the table
  "torch": "torch eager",
  "torch-compile": "torch.compile",
  "jax-step": "jaxtrain per-step",
  "jax-scan": "jaxtrain scan-epoch",
}

LR = 0.01
_TAG = "BENCH_TRAIN_RESULT "  # prefix of the child's JSON line


def torch_model(name: str):
  """The notes' torch definition of model ``name`` (``cnn``, ``mlp`` or ``rnn``)."""
  import torch

  if name == "cnn":
    return torch.nn.Sequential(
      torch.nn.Conv2d(3, 32, 5, padding=2),
      torch.nn.MaxPool2d(2),
      torch.nn.Conv2d(32, 32, 5, padding=2),
      torch.nn.MaxPool2d(2),
      torch.nn.Conv2d(32, 64, 5, padding=2),
      torch.nn.MaxPool2d(2),
      torch.nn.Flatten(),
      torch.nn.Linear(1024, 64),
      torch.nn.Linear(64, 10),
    )
  if name == "mlp":
    return torch.nn.Sequential(
      torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10)
    )
  if name == "rnn":

    class TorchRNN(torch.nn.Module):
      """001_42dfbdd5dad21a82.txt's RNN classifier."""

      def __init__(self):
        super().__init__()
        self.rnn = torch.nn.RNN(28, 128, batch_first=True)
        self.fc = torch.nn.Linear(128, 10)

      def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1, :])

    return TorchRNN()
  raise ValueError(f"unknown model {name!r}")


def jax_model(name: str):
  """jaxtrain's model ``name`` (``cnn``, ``mlp`` or ``rnn``), channels-last."""
  from flax import nnx

  from jaxtrain import models

  if name == "cnn":
    return models.CNN(in_channels=3, image_size=32, rngs=nnx.Rngs(0))
  if name == "mlp":
    return models.MLP(rngs=nnx.Rngs(0))
  if name == "rnn":
    return models.RNNClassifier(rngs=nnx.Rngs(0))
  raise ValueError(f"unknown model {name!r}")


def _data(batch, shape, steps, seed=0):
  """``steps`` batches of random NHWC images and labels (float32 drawn directly, no float64)."""
  rng = np.random.default_rng(seed)
  x = rng.random((steps * batch,) + shape, dtype=np.float32)
  y = rng.integers(0, 10, steps * batch, dtype=np.int32)
  return x, y


# ---------------------------------------------------------------- the child ---


def _rss_mib() -> float | None:
  """The current resident set size in MiB (Linux), or None."""
  try:
    with open("/proc/self/statm") as f:
      return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
  except (OSError, ValueError, IndexError):
    return None


def _maxrss_mib() -> float:
  """This process's peak resident set size in MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _windows(run_window, steps: int, repeat: int) -> list[float]:
  """Steps/s of ``repeat`` timed windows; ``run_window()`` runs ``steps`` steps and waits."""
  out = []
  for _ in range(repeat):
    t0 = time.perf_counter()
    run_window()
    out.append(steps / (time.perf_counter() - t0))
  return out


PRECISIONS = ("float32", "bf16")


def _child_torch(
  name: str, steps: int, repeat: int, compiled: bool, precision: str = "float32"
) -> dict:
  import contextlib

  import torch

  batch, shape = CASES[name]
  x, y = _data(batch, shape, steps)
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  if name == "cnn":
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()  # NCHW, as torch users hold it
  elif name == "rnn":
    xt = torch.from_numpy(x[..., 0])  # (N, 28, 28): rows as time steps
  else:
    xt = torch.from_numpy(x)
  xt, yt = xt.to(device), torch.from_numpy(y).long().to(device)
  if device.type == "cuda":
    torch.cuda.synchronize()
    sync = torch.cuda.synchronize
  else:
    sync = lambda: None  # noqa: E731
  out = dict(
    device=f"torch {device.type}"
    + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""),
    threads=torch.get_num_threads(),
  )
  out["baseline_rss_mib"], out["baseline_maxrss_mib"] = _rss_mib(), _maxrss_mib()

  net = torch_model(name).to(device)
  model = torch.compile(net) if compiled else net
  opt = torch.optim.SGD(net.parameters(), lr=LR)

  def autocast():
    if precision == "float32":
      return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)

  def step(i):
    sl = slice(i * batch, (i + 1) * batch)
    opt.zero_grad()
    with autocast():  # torch's AMP recipe: forward and loss under autocast, backward outside
      loss = torch.nn.functional.cross_entropy(model(xt[sl]), yt[sl])
    loss.backward()
    opt.step()
    return loss

  def window():
    for i in range(steps):
      step(i)
    sync()

  t0 = time.perf_counter()
  step(0)
  sync()
  out["first"] = time.perf_counter() - t0
  if compiled:
    from torch._dynamo.utils import counters

    out["graphs"] = int(counters["stats"]["unique_graphs"])
    out["graph_breaks"] = int(sum(counters["graph_break"].values()))
    # Why dynamo gave up on a frame (e.g. nn.RNN: the frame then runs eagerly).
    reasons = list(counters["unimplemented"]) + list(counters["graph_break"])
    if reasons:
      out["graph_break_reason"] = _one_line(reasons[0], 240)
      explanation = [
        line.strip() for line in reasons[0].splitlines() if line.strip().startswith("Explanation:")
      ]
      if explanation:
        out["graph_break_reason"] += " " + _one_line(explanation[0], 160)
  out["sps"] = _windows(window, steps, repeat)
  if device.type == "cuda":
    out["device_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
  return out


def _child_jax(name: str, steps: int, repeat: int, scan: bool, precision: str = "float32") -> dict:
  import jax
  import jax.numpy as jnp

  import jaxtrain.losses as L
  from jaxtrain import optim
  from jaxtrain.train_step import create_train_state, make_epoch, make_train_step

  batch, shape = CASES[name]
  x, y = _data(batch, shape, steps)
  dev = jax.devices()[0]
  if scan:
    xd, yd = jnp.asarray(x), jnp.asarray(y)
    order = jnp.arange(steps * batch, dtype=jnp.int32).reshape(steps, batch)
    jax.block_until_ready((xd, yd, order))
  else:
    xs = [jnp.asarray(x[i * batch : (i + 1) * batch]) for i in range(steps)]
    ys = [jnp.asarray(y[i * batch : (i + 1) * batch]) for i in range(steps)]
    jax.block_until_ready((xs, ys))
  from jaxtrain import _xla_options

  out = dict(
    device=f"jax {dev.platform}" + (f" ({dev.device_kind})" if dev.platform != "cpu" else ""),
    # the environment's XLA_FLAGS, and the options jaxtrain compiles its programs with
    xla_flags=" ".join(
      filter(
        None,
        [os.environ.get("XLA_FLAGS", "")]
        + [f"{k}={v}" for k, v in (_xla_options.for_platform(dev.platform) or {}).items()],
      )
    ),
  )
  out["baseline_rss_mib"], out["baseline_maxrss_mib"] = _rss_mib(), _maxrss_mib()

  model = jax_model(name)
  opt = optim.sgd(LR)
  state = create_train_state(model, opt)
  if scan:
    epoch = make_epoch(model, L.cross_entropy, opt, precision=precision)

    def window():
      nonlocal state
      state, totals = epoch(state, xd, yd, order)
      jax.block_until_ready(totals)

    first_step = window  # compile + one whole epoch
  else:
    train_step = make_train_step(model, L.cross_entropy, opt, precision=precision)

    def window():
      nonlocal state
      for i in range(steps):
        state, m = train_step(state, (xs[i], ys[i]))
      jax.block_until_ready(m)

    def first_step():
      nonlocal state
      state, m = train_step(state, (xs[0], ys[0]))
      jax.block_until_ready(m)

  t0 = time.perf_counter()
  first_step()
  out["first"] = time.perf_counter() - t0
  out["sps"] = _windows(window, steps, repeat)
  jax.block_until_ready(state)
  stats = dev.memory_stats()  # None on CPU
  if stats and "peak_bytes_in_use" in stats:
    out["device_peak_mib"] = stats["peak_bytes_in_use"] / 2**20
  return out


def _one_line(text, limit: int = 160) -> str:
  """The first non-empty line of ``text``, at most ``limit`` characters."""
  lines = [line.strip() for line in str(text).splitlines() if line.strip()]
  line = lines[0] if lines else ""
  return line if len(line) <= limit else line[: limit - 3] + "..."


def child(name: str, contender: str, steps: int, repeat: int, precision: str = "float32") -> dict:
  """One measurement in this (fresh) process; a failure is returned as ``error``, not raised."""
  try:
    if contender in ("torch", "torch-compile"):
      out = _child_torch(
        name, steps, repeat, compiled=contender == "torch-compile", precision=precision
      )
    else:
      out = _child_jax(name, steps, repeat, scan=contender == "jax-scan", precision=precision)
  except Exception as e:  # noqa: BLE001 -- recorded as the row's "failed: ..."
    out = dict(error=_one_line(f"{type(e).__name__}: {e}"))
  out["peak_rss_mib"] = _maxrss_mib()
  return out


# --------------------------------------------------------------- the parent ---


def run_child(
  name: str, contender: str, steps: int, repeat: int, timeout: float, precision: str = "float32"
) -> dict:
  """Runs ``child`` in a fresh interpreter and returns its result (``error`` on failure)."""
  env = dict(os.environ)
  cache = None
  if contender == "torch-compile":
    # A cold compile each run, as jax's (no persistent compilation cache by default).
    cache = tempfile.mkdtemp(prefix="bench_train_inductor_")
    env["TORCHINDUCTOR_CACHE_DIR"] = cache
  cmd = [
    sys.executable,
    os.path.abspath(__file__),
    "--child",
    name,
    contender,
    "--steps",
    str(steps),
    "--repeat",
    str(repeat),
    "--precision",
    precision,
  ]
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
  except subprocess.TimeoutExpired:
    return dict(error=f"timed out after {timeout:.0f} s")
  finally:
    if cache:
      shutil.rmtree(cache, ignore_errors=True)
  for line in reversed(proc.stdout.splitlines()):
    if line.startswith(_TAG):
      return json.loads(line[len(_TAG) :])
  err = [line for line in proc.stderr.splitlines() if line.strip()]
  return dict(error=f"exit status {proc.returncode}" + (f": {_one_line(err[-1])}" if err else ""))


def _contender_label(r: dict) -> str:
  label = CONTENDERS[r["key"]]
  if r["key"] == "torch-compile" and "error" not in r:
    if r.get("graphs") == 0:
      label += " (nothing compiled: runs eager)"
    elif r.get("graph_breaks"):
      label += f" ({r['graphs']} graphs, {r['graph_breaks']} graph breaks)"
  return label


def _over_baseline(r: dict) -> str:
  if r.get("baseline_rss_mib") is None:
    return "-"
  over = r["peak_rss_mib"] - r["baseline_rss_mib"]
  # The peak was reached before the baseline (imports, data): training stayed below it.
  bound = "<= " if r["peak_rss_mib"] <= r["baseline_maxrss_mib"] else ""
  return f"{bound}{over:.0f}"


def _merge(runs: list[dict]) -> dict:
  """One row from a contender's processes in several rounds: every window's steps/s, the
  median first step, the memory of the run with the highest peak (the first failure,
  if any process failed)."""
  failed = [r for r in runs if "error" in r]
  if failed:
    return failed[0]
  r = dict(runs[0])
  r["sps"] = [x for run in runs for x in run["sps"]]
  r["round_medians"] = [statistics.median(run["sps"]) for run in runs]
  r["first"] = statistics.median(run["first"] for run in runs)
  r["wall"] = sum(run["wall"] for run in runs)
  worst = max(runs, key=lambda run: run["peak_rss_mib"])  # memory columns: the highest run's
  for k in ("peak_rss_mib", "baseline_rss_mib", "baseline_maxrss_mib", "device_peak_mib"):
    if k in worst:
      r[k] = worst[k]
  return r


def run(
  names,
  contenders,
  steps: int,
  repeat: int,
  timeout: float,
  rounds: int = 1,
  precision: str = "float32",
) -> list[dict]:
  """All (model, contender) measurements, each in its own process; prints each row.

  With ``rounds`` > 1 the contenders of a model take turns, round after round, so that
  a slow spell of a shared machine hits them all; a row's steps/s is the median of its
  rounds' medians and its ratio the median of the per-round ratios to torch eager.
  """
  rows = []
  for name in names:
    batch = CASES[name][0]
    runs = {key: [] for key in contenders}
    for i in range(rounds):
      for key in contenders:
        t0 = time.perf_counter()
        r = run_child(name, key, steps, repeat, timeout, precision)
        r.update(model=name, key=key, batch=batch, wall=time.perf_counter() - t0)
        runs[key].append(r)
        if rounds > 1 and "error" not in r:
          print(
            f"  round {i + 1}/{rounds} {name} {key}: {statistics.median(r['sps']):.1f} steps/s",
            flush=True,
          )
    merged = {key: _merge(v) for key, v in runs.items()}
    eager = merged.get("torch")
    for key in contenders:
      r = merged[key]
      if "error" not in r:
        r["median"] = statistics.median(r["round_medians"])
        if eager is not None and "error" not in eager:  # torch eager is chosen and ran
          r["ratio"] = statistics.median(
            m / e for m, e in zip(r["round_medians"], eager["round_medians"])
          )
        else:
          r["ratio"] = None
      rows.append(r)
      print(_console_line(r), flush=True)
  return rows


def _console_line(r: dict) -> str:
  head = f"{r['model']:4} {_contender_label(r):34}"
  if "error" in r:
    return f"{head} failed: {r['error']}"
  ratio = f"x{r['ratio']:.2f} torch eager" if r.get("ratio") else ""
  dev = f" device peak {r['device_peak_mib']:.0f} MiB" if "device_peak_mib" in r else ""
  return (
    f"{head} {r['median']:8.1f} steps/s [{min(r['sps']):.1f}-{max(r['sps']):.1f}] "
    f"{r['median'] * r['batch']:9.0f} img/s  first step {r['first']:6.2f} s  "
    f"peak RSS {r['peak_rss_mib']:5.0f} MiB (+{_over_baseline(r)}){dev}  {ratio}"
    f"  [{r['device']}, {r['wall']:.0f} s]"
  )


def markdown(
  rows,
  steps: int,
  repeat: int,
  command: str,
  load: tuple[str, str] = ("?", "?"),
  rounds: int = 1,
  precision: str = "float32",
) -> str:
  """RESULTS.md's section (imports jax and torch via ``machine()``: call it after the children)."""
  device_col = any("device_peak_mib" in r for r in rows)
  threads = sorted({r["threads"] for r in rows if "threads" in r})
  xla_flags = sorted({r["xla_flags"] for r in rows if r.get("xla_flags")})
  lines = [
    "## Training throughput"
    + ("" if precision == "float32" else f" in {precision}")
    + ": torch eager, torch.compile, jaxtrain per-step and scan-epoch "
    f"({datetime.date.today().isoformat()})",
    "",
    f"{machine()} Command: `{command}` ({steps} SGD steps per timed window, median of "
    f"{repeat} window{'s' if repeat > 1 else ''} after the first step; random data, the same "
    "for every contender).",
    (
      "Each row ran in its own fresh process, one after another. "
      if rounds == 1
      else f"Each row ran in its own fresh process, {rounds} times: the contenders of a model took "
      f"turns, round after round; steps/s is the median of the rounds' medians, the range spans "
      "every window of every round, and the ratio is the median of the per-round ratios to torch "
      "eager. "
    )
    + "Default threads "
    + (f"(torch: {', '.join(map(str, threads))} intra-op) " if threads else "")
    + "and no allocator tuning for either framework. Load average (1 min) at the start / end: "
    f"{load[0]} / {load[1]} (on {os.cpu_count()} cores; well above 0, the other load slows both, "
    "torch's OpenMP threads the most)."
    + (
      f" XLA options of the jaxtrain processes (the environment's `XLA_FLAGS` and the "
      f"compiler options jaxtrain passes to its CPU programs): "
      f"{'; '.join(f'`{f}`' for f in xla_flags)}."
      if xla_flags
      else ""
    )
    + (
      " Mixed precision: torch's forward and loss under `torch.autocast(dtype=torch.bfloat16)`,"
      " jaxtrain's steps with `precision='bf16'`; float32 parameters and optimizer state."
      if precision != "float32"
      else ""
    ),
    "First step: torch eager's first step; torch.compile's compilation of the model (inductor, "
    "cold cache; the optimizer step stays eager) + first step; jaxtrain per-step's compile + "
    "first step; scan-epoch's compile + one whole epoch.",
    "Peak RSS: the process's `ru_maxrss` (imports, data and training). Over baseline: peak RSS "
    "minus the RSS after imports, data creation and the data's copy into the contender's "
    "arrays, before the model is built (`<=`: the peak was reached before, an upper bound)."
    + (
      " Device peak: jax's `peak_bytes_in_use`, torch's `max_memory_allocated` (data included)."
      if device_col
      else ""
    ),
    "",
    "| model (batch) | contender | device | steps/s (range) | images/s | first step (s) | "
    "peak RSS (MiB) | peak RSS over baseline (MiB) | "
    + ("device peak (MiB) | " if device_col else "")
    + "throughput vs torch eager |",
    "|---|---|---|---:|---:|---:|---:|---:|" + ("---:|" if device_col else "") + "---:|",
  ]
  notes = []
  for r in rows:
    head = f"| {r['model']} ({r['batch']}) | {_contender_label(r)} |"
    if "error" in r:
      empty = " - |" * (5 + device_col)
      lines.append(f"{head} - | failed: {r['error'].replace('|', '/')} |{empty}")
      continue
    spread = f" ({min(r['sps']):.1f}-{max(r['sps']):.1f})" if len(r["sps"]) > 1 else ""
    dev = (
      (f" {r['device_peak_mib']:.0f} |" if "device_peak_mib" in r else " - |") if device_col else ""
    )
    ratio = f"{r['ratio']:.2f}x" if r.get("ratio") else "-"
    lines.append(
      f"{head} {r['device']} | {r['median']:.1f}{spread} | {r['median'] * r['batch']:.0f} | "
      f"{r['first']:.2f} | {r['peak_rss_mib']:.0f} | {_over_baseline(r)} |{dev} {ratio} |"
    )
    if r.get("graph_break_reason") and r.get("graphs") == 0:
      notes.append(f"torch.compile on {r['model']}: {r['graph_break_reason']}")
  if notes:
    lines += [""] + [f"- {n}" for n in notes]
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", nargs="+", choices=sorted(CASES), default=list(CASES))
  parser.add_argument(
    "--contenders",
    nargs="+",
    choices=list(CONTENDERS),
    default=list(CONTENDERS),
    help="which contenders to run (default: all)",
  )
  parser.add_argument("--steps", type=int, default=64, help="steps per timed window")
  parser.add_argument(
    "--repeat", type=int, default=3, help="timed windows per contender; steps/s is their median"
  )
  parser.add_argument(
    "--rounds",
    type=int,
    default=1,
    help="run the contenders of each model this many times in turn (see run())",
  )
  parser.add_argument(
    "--precision",
    choices=PRECISIONS,
    default="float32",
    help="float32, or bf16 mixed precision in both frameworks (see above)",
  )
  parser.add_argument(
    "--timeout", type=float, default=1800, help="seconds allowed to one contender's process"
  )
  parser.add_argument("--write", action="store_true", help="record the table in RESULTS.md")
  parser.add_argument("--child", nargs=2, metavar=("MODEL", "CONTENDER"), help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.steps < 1 or args.repeat < 1 or args.rounds < 1:
    parser.error("--steps, --repeat and --rounds must be at least 1")
  if args.child:
    name, contender = args.child
    if name not in CASES or contender not in CONTENDERS:
      parser.error(f"unknown child {args.child}")
    print(
      _TAG + json.dumps(child(name, contender, args.steps, args.repeat, args.precision)), flush=True
    )
    return 0
  contenders = [c for c in CONTENDERS if c in args.contenders]  # the table's order
  load = start_load()
  rows = run(
    args.models, contenders, args.steps, args.repeat, args.timeout, args.rounds, args.precision
  )
  load = (load, load_average())
  command = "python benchmarks/bench_train.py" + (" --write" if args.write else "")
  if args.models != list(CASES):
    command += " --models " + " ".join(args.models)
  if contenders != list(CONTENDERS):
    command += " --contenders " + " ".join(contenders)
  command += f" --steps {args.steps} --repeat {args.repeat}"
  if args.rounds > 1:
    command += f" --rounds {args.rounds}"
  if args.precision != "float32":
    command += f" --precision {args.precision}"
  section = markdown(rows, args.steps, args.repeat, command, load, args.rounds, args.precision)
  header = "## Training throughput" + (
    ":" if args.precision == "float32" else f" in {args.precision}"
  )
  publish(section, header, args.write, after="## Training throughput:")
  return 0


if __name__ == "__main__":
  sys.exit(main())
