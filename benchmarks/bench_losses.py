"""Every loss, value and gradient, jaxtrain (jit-compiled) against torch (eager), same inputs.

    python benchmarks/bench_losses.py            # print the table
    python benchmarks/bench_losses.py --write    # and record it in benchmarks/RESULTS.md
    python benchmarks/bench_losses.py --cpus 1 --write   # both frameworks on one core

For each loss and size: torch's forward + ``torch.autograd.grad``, and jaxtrain's
``jax.jit(jax.value_and_grad(loss))``, both on the same arrays in this process, after a
warm-up call that compiles. Windows of calls of the three kinds below take turns
(so that a slow moment of the machine hits all three), and each reports the median
over its windows:

* torch: calls one after another; torch eager returns when the work is done.
* jaxtrain, back to back: calls one after another, waiting once at the end of the
  window (``jax.block_until_ready`` on the last result), as a training loop does.
  JAX dispatches asynchronously: Python issues the next call while XLA computes.
* jaxtrain, waited: ``jax.block_until_ready`` after every call, the latency of one
  call on its own. Whenever XLA ran the call on its worker threads this adds the
  time to wake the waiting thread (40-100 us on the 2-core VM of RESULTS.md).

ratio = torch time / jaxtrain back-to-back time (above 1: jaxtrain faster); the
waited ratio is printed beside it. Default threads for both; no allocator tuning.

``--cpus N`` pins this process to N of the machine's CPUs before either framework
starts (``os.sched_setaffinity``) and gives torch N threads: XLA sizes its thread pool
from the CPUs it may use, and with one it runs every kernel on one thread instead of
splitting the larger ones across the pool. Its table is recorded in a section of its
own.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F

import jaxtrain.losses as L
from jaxtrain._xla_options import backends_started

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results import load_average, machine, publish, slower_summary, start_load  # noqa: E402

SIZES = {
  # The notes' scale: a batch of 64, 10 classes, short vectors.
  "notes": dict(n=64, c=10, d=16, t=30, s=8),
  # A larger batch: 1024 x 100 classes, 128-d embeddings, CTC over 100 frames.
  "large": dict(n=1024, c=100, d=128, t=100, s=20),
}


def specs(n, c, d, t, s, rng):
  """``name -> (args, array keywords, keywords, indices to differentiate)``."""
  f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
  u = lambda *shape: rng.uniform(0.05, 0.95, shape).astype(np.float32)  # noqa: E731
  pm1 = lambda *shape: rng.choice(np.array([-1.0, 1.0], np.float32), shape)  # noqa: E731
  idx = rng.integers(0, c, n).astype(np.int64)
  logp = np.asarray(jax.nn.log_softmax(f32(n, c), -1))
  probs = np.asarray(jax.nn.softmax(f32(n, c), -1))
  ml = np.full((n, c), -1, np.int64)
  ml[:, :3] = np.stack([rng.choice(c, 3, replace=False) for _ in range(n)])
  out = {
    "l1_loss": ([f32(n, d), f32(n, d)], (), {}, (0,)),
    "mse_loss": ([f32(n, d), f32(n, d)], (), {}, (0,)),
    "smooth_l1_loss": ([f32(n, d), f32(n, d)], (), {}, (0,)),
    "huber_loss": ([f32(n, d), f32(n, d)], (), {}, (0,)),
    "poisson_nll_loss": ([f32(n, d), rng.poisson(2.0, (n, d)).astype(np.float32)], (), {}, (0,)),
    "gaussian_nll_loss": ([f32(n, d), f32(n, d), u(n, d)], (), {}, (0, 2)),
    "cross_entropy": ([f32(n, c), idx], (), {}, (0,)),
    "cross_entropy (probs, smoothing)": ([f32(n, c), probs], (), {"label_smoothing": 0.1}, (0,)),
    "nll_loss": ([logp, idx], (), {}, (0,)),
    "binary_cross_entropy": ([u(n, c), u(n, c)], (), {}, (0,)),
    "binary_cross_entropy_with_logits": ([f32(n, c), u(n, c), u(c) * 3], ("pos_weight",), {}, (0,)),
    "kl_div": ([logp, probs], (), {"reduction": "batchmean"}, (0,)),
    "margin_ranking_loss": ([f32(n), f32(n), pm1(n)], (), {}, (0, 1)),
    "hinge_embedding_loss": ([np.abs(f32(n, d)), pm1(n, d)], (), {}, (0,)),
    "soft_margin_loss": ([f32(n, d), pm1(n, d)], (), {}, (0,)),
    "multilabel_margin_loss": ([f32(n, c), ml], (), {}, (0,)),
    "multilabel_soft_margin_loss": ([f32(n, c), (u(n, c) > 0.5).astype(np.float32)], (), {}, (0,)),
    "multi_margin_loss": ([f32(n, c), idx], (), {}, (0,)),
    "cosine_embedding_loss": ([f32(n, d), f32(n, d), pm1(n)], (), {}, (0, 1)),
    "triplet_margin_loss": ([f32(n, d), f32(n, d), f32(n, d)], (), {}, (0, 1, 2)),
    "triplet_margin_with_distance_loss": ([f32(n, d), f32(n, d), f32(n, d)], (), {}, (0, 1, 2)),
  }
  if hasattr(L, "ctc_loss"):
    lp = np.asarray(jax.nn.log_softmax(f32(t, n, c), -1))
    targets = rng.integers(1, c, (n, s)).astype(np.int64)
    in_len = np.full(n, t, np.int64)
    tg_len = rng.integers(s // 2, s + 1, n).astype(np.int64)
    out["ctc_loss"] = ([lp, targets, in_len, tg_len], (), {}, (0,))
  return out


def _loss_name(label: str) -> str:
  return label.split(" ")[0]


def time_calls(fns: dict, *, min_time=0.3, repeats=7) -> dict:
  """Median seconds per call of each kind in ``fns``, in windows that take turns.

  ``fns[k]`` is ``(call, wait)``: a window runs ``call()`` ``inner`` times and then
  ``wait(last result)`` once; ``inner`` is fixed per kind so that a window takes about
  ``min_time / repeats`` seconds.
  """
  inner = {}
  for k, (call, wait) in fns.items():
    wait(call())  # warm-up
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < min_time / repeats / 2:
      wait(call())
      calls += 1
    inner[k] = max(1, 2 * calls)
  samples = {k: [] for k in fns}
  for _ in range(repeats):
    for k, (call, wait) in fns.items():
      t0 = time.perf_counter()
      for _ in range(inner[k] - 1):
        call()
      wait(call())
      samples[k].append((time.perf_counter() - t0) / inner[k])
  return {k: statistics.median(v) for k, v in samples.items()}


def _no_wait(result):
  return result


def jax_runner(name, args, array_kw, kw, grad):
  loss = getattr(L, name)
  n_pos = len(args) - len(array_kw)

  def f(*a):
    return loss(*a[:n_pos], **dict(zip(array_kw, a[n_pos:])), **kw)

  step = jax.jit(jax.value_and_grad(f, argnums=grad))
  jargs = [jnp.asarray(a) for a in args]
  t0 = time.perf_counter()
  jax.block_until_ready(step(*jargs))
  compile_s = time.perf_counter() - t0
  call = lambda: step(*jargs)  # noqa: E731
  return {
    "jax_us": (call, jax.block_until_ready),
    "jax_waited_us": (lambda: jax.block_until_ready(call()), _no_wait),
  }, compile_s


def torch_runner(name, args, array_kw, kw, grad):
  loss = getattr(F, name)
  n_pos = len(args) - len(array_kw)
  targs = [torch.from_numpy(np.array(a)) for a in args]  # writable copies
  for i in grad:
    targs[i].requires_grad_(True)
  wrt = [targs[i] for i in grad]

  def run():
    value = loss(*targs[:n_pos], **dict(zip(array_kw, targs[n_pos:])), **kw)
    return value, torch.autograd.grad(value, wrt)

  return {"torch_us": (run, _no_wait)}


def run(sizes) -> list[dict]:
  rows = []
  rng = np.random.default_rng(0)
  for size in sizes:
    for label, (args, array_kw, kw, grad) in specs(**SIZES[size], rng=rng).items():
      name = _loss_name(label)
      jfns, compile_s = jax_runner(name, args, array_kw, kw, grad)
      times = time_calls({**torch_runner(name, args, array_kw, kw, grad), **jfns})
      r = {k: v * 1e6 for k, v in times.items()}
      r.update(
        size=size,
        loss=label,
        ratio=r["torch_us"] / r["jax_us"],
        waited_ratio=r["torch_us"] / r["jax_waited_us"],
        compile_ms=compile_s * 1e3,
      )
      rows.append(r)
      print(
        f"{size:6} {label:36} torch {r['torch_us']:9.1f} us   jaxtrain {r['jax_us']:9.1f} us"
        f" (waited {r['jax_waited_us']:9.1f})   ratio {r['ratio']:5.2f}x"
        f" (waited {r['waited_ratio']:5.2f}x)   compile {r['compile_ms']:6.0f} ms",
        flush=True,
      )
  return rows


HEADER = "## Losses: value + gradient, jaxtrain vs torch"


def header(cpus: int | None) -> str:
  """The RESULTS.md section title of a run (``cpus``: the ``--cpus`` pin, None without)."""
  if cpus is None:
    return HEADER
  return (
    f"## Losses pinned to {cpus} CPU{'s' if cpus > 1 else ''}: value + gradient, jaxtrain vs torch"
  )


def pin_cpus(n: int) -> str:
  """Restricts this process to its first ``n`` allowed CPUs and torch to ``n`` threads.

  Must run before JAX starts its backend: XLA sizes its thread pool then.

  Returns:
    The line that says so in the table's header.
  """
  allowed = sorted(os.sched_getaffinity(0))
  if not 1 <= n <= len(allowed):
    raise ValueError(
      f"--cpus must be between 1 and {len(allowed)} (the CPUs this process may use), got {n}"
    )
  if backends_started():
    raise RuntimeError("--cpus: JAX's backend has already started; pin before any JAX call")
  os.sched_setaffinity(0, allowed[:n])
  torch.set_num_threads(n)
  return (
    f"Pinned to CPU {', '.join(map(str, allowed[:n]))} of {os.cpu_count()} "
    f"(`os.sched_setaffinity` before either framework starts): XLA's thread pool has "
    f"{n} thread{'s' if n > 1 else ''}, torch {torch.get_num_threads()}."
  )


def markdown(
  rows, load, command="python benchmarks/bench_losses.py --write", cpus=None, pinned=""
) -> str:
  lines = [
    f"{header(cpus)} ({datetime.date.today().isoformat()})",
    "",
    f"{machine()} Command: `{command}`." + (f" {pinned}" if pinned else ""),
    f"Load average (1 min) at the start / end: {load[0]} / {load[1]} (on {os.cpu_count()} cores).",
    "Median time per call of value and gradient, in windows of calls that take turns "
    "(see the script's docstring). jaxtrain: back to back, waiting once per window as a "
    "training loop does; waited: `block_until_ready` after every call, one call's latency. "
    "ratio = torch / jaxtrain back to back (above 1: jaxtrain faster). Sizes: "
    + "; ".join(f"{k}: {v}" for k, v in SIZES.items())
    + ".",
    "",
    "| size | loss | torch (us) | jaxtrain (us) | ratio | jaxtrain waited (us) | waited ratio "
    "| jaxtrain compile (ms) |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
  ]
  for r in rows:
    lines.append(
      f"| {r['size']} | {r['loss']} | {r['torch_us']:.1f} | {r['jax_us']:.1f} | "
      f"{r['ratio']:.2f} | {r['jax_waited_us']:.1f} | {r['waited_ratio']:.2f} | "
      f"{r['compile_ms']:.0f} |"
    )
  lines += slower_summary(rows, "loss", "size")
  waited = [dict(r, ratio=r["waited_ratio"]) for r in rows]
  lines += [
    line.replace("jaxtrain faster", "Waited for each call, jaxtrain faster").replace(
      "Slower than torch", "Waited, slower than torch"
    )
    for line in slower_summary(waited, "loss", "size")[1:]
  ]
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=list(SIZES))
  parser.add_argument("--write", action="store_true", help="record the table in RESULTS.md")
  parser.add_argument(
    "--cpus",
    type=int,
    default=None,
    help="pin both frameworks to this many CPUs (default: all, threads as each framework chooses)",
  )
  args = parser.parse_args(argv)
  pinned = ""
  if args.cpus is not None:
    try:
      pinned = pin_cpus(args.cpus)
    except ValueError as e:
      parser.error(str(e))
  load = start_load()
  rows = run(args.sizes)
  command = "python benchmarks/bench_losses.py" + (" --write" if args.write else "")
  if args.cpus is not None:
    command += f" --cpus {args.cpus}"
  if args.sizes != list(SIZES):
    command += " --sizes " + " ".join(args.sizes)
  section = markdown(rows, (load, load_average()), command, args.cpus, pinned)
  publish(section, header(args.cpus), args.write, after=HEADER)
  return 0


if __name__ == "__main__":
  sys.exit(main())
