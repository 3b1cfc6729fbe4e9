"""Optimizer updates alone: one ``optimizer.step()``, jaxtrain against torch, same parameter shapes.

    python benchmarks/bench_optim.py            # print the table
    python benchmarks/bench_optim.py --write    # and record it in benchmarks/RESULTS.md

For each optimizer of :mod:`jaxtrain.optim` (SGD plain, with momentum 0.9 and
Nesterov, Adam, AdamW, RMSprop, Adagrad; torch's defaults, lr 0.01 for SGD) and the
parameters of the notes' CNN (145,578) and MLP (784-256-10, 203,530): jaxtrain's
``optimizer.update`` + ``optax.apply_updates`` jit-compiled with the parameters
and optimizer state donated (as in jaxtrain's train step), against torch's
``opt.step()`` in its default implementation (torch picks for-loop or foreach; the
table says which) with the gradients pre-set in ``.grad``. Both run the same
number of updates: a warm-up (jaxtrain's first call compiles), a calibration, then
``--repeat`` timed windows of the same length, torch's and jaxtrain's interleaved so
that both see the same load. Reported: the median microseconds per update and
torch / jaxtrain (above 1: jaxtrain faster). Default threads; no allocator tuning.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import statistics
import sys
import time
from functools import partial

import jax
import jax.numpy as jnp
import optax
import torch
from flax import nnx

from jaxtrain import optim

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_train import jax_model, torch_model  # noqa: E402
from results import load_average, machine, publish, slower_summary, start_load  # noqa: E402

MODELS = {"cnn": 145_578, "mlp": 203_530}  # name: parameter count

OPTIMIZERS = {
  # name: (jaxtrain optimizer, torch optimizer of a parameter list), same arguments
  "sgd": (lambda: optim.sgd(0.01), lambda p: torch.optim.SGD(p, lr=0.01)),
  "sgd momentum": (
    lambda: optim.sgd(0.01, momentum=0.9),
    lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
  ),
  "sgd nesterov": (
    lambda: optim.sgd(0.01, momentum=0.9, nesterov=True),
    lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, nesterov=True),
  ),
  "adam": (lambda: optim.adam(), lambda p: torch.optim.Adam(p)),
  "adamw": (lambda: optim.adamw(), lambda p: torch.optim.AdamW(p)),
  "rmsprop": (lambda: optim.rmsprop(), lambda p: torch.optim.RMSprop(p)),
  "adagrad": (lambda: optim.adagrad(), lambda p: torch.optim.Adagrad(p)),
}

WARMUP = 3  # untimed updates; jaxtrain's first one compiles
CALIBRATION = 10  # updates timed to size the windows
# Many short windows: a median that a few stalls (a busy machine descheduling one of
# torch's OpenMP threads costs a step milliseconds) do not move.
REPEAT, WINDOW = 21, 0.01


def _torch_impl(params) -> str:
  """Which implementation torch's default (``foreach=None``) picks for ``params``."""
  try:
    from torch.optim.optimizer import _default_to_fused_or_foreach

    _, foreach = _default_to_fused_or_foreach(params, differentiable=False, use_fused=False)
  except (ImportError, TypeError):  # a private helper: its signature may change
    return "default"
  return "foreach" if foreach else "for-loop"


class TorchSide:
  """torch's optimizer on the model's parameters, gradients pre-set in ``.grad``."""

  def __init__(self, model: str, make_opt, seed: int = 0):
    self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gen = torch.Generator().manual_seed(seed)
    self.params = list(torch_model(model).to(self.device).parameters())
    for p in self.params:
      p.grad = torch.randn(p.shape, generator=gen).to(self.device)
    self.opt = make_opt(self.params)
    self.impl = _torch_impl(self.params)
    self.updates = 0

  def run(self, n: int) -> float:
    """Seconds for ``n`` updates."""
    sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(n):
      self.opt.step()
    sync()
    self.updates += n
    return time.perf_counter() - t0

  def size(self) -> int:
    return sum(p.numel() for p in self.params)

  def counted(self) -> int | None:
    """The update count torch's optimizer state keeps (Adam, RMSprop, Adagrad), or None."""
    steps = {int(s["step"]) for s in self.opt.state.values() if "step" in s}
    return steps.pop() if len(steps) == 1 else None


class JaxSide:
  """jaxtrain's optimizer: ``update`` + ``optax.apply_updates`` jit-compiled, state donated."""

  def __init__(self, model: str, make_opt, seed: int = 0):
    tx = make_opt()
    _, params, _ = nnx.split(jax_model(model), nnx.Param, ...)
    self.params = jax.tree.map(jnp.copy, params)  # the train state's layout and pytree
    leaves, treedef = jax.tree.flatten(self.params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    self.grads = jax.tree.unflatten(
      treedef, [jax.random.normal(k, leaf.shape, leaf.dtype) for k, leaf in zip(keys, leaves)]
    )
    self.opt_state = tx.init(self.params)

    @partial(jax.jit, donate_argnums=(0, 1))
    def update(params, opt_state, grads):
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state

    self.update = update
    self.device = str(jax.devices()[0].platform)
    self.updates = 0
    self.compile_s = None

  def run(self, n: int) -> float:
    """Seconds for ``n`` updates (dispatched asynchronously, waited for at the end)."""
    jax.block_until_ready((self.params, self.opt_state))
    t0 = time.perf_counter()
    for _ in range(n):
      self.params, self.opt_state = self.update(self.params, self.opt_state, self.grads)
    jax.block_until_ready((self.params, self.opt_state))
    self.updates += n
    return time.perf_counter() - t0

  def size(self) -> int:
    return sum(leaf.size for leaf in jax.tree.leaves(self.params))

  def counted(self) -> int | None:
    """The update count kept in the optimizer state (a ``count`` field), or None."""
    counts = {
      int(leaf)
      for path, leaf in jax.tree_util.tree_flatten_with_path(self.opt_state)[0]
      if path and getattr(path[-1], "name", None) == "count"
    }
    return counts.pop() if len(counts) == 1 else None


def bench(model: str, name: str, repeat: int, window: float) -> dict:
  """Median microseconds per update of both sides, after the same number of updates."""
  make_jax, make_torch = OPTIMIZERS[name]
  ts, js = TorchSide(model, make_torch), JaxSide(model, make_jax)
  if not ts.size() == js.size() == MODELS[model]:
    raise AssertionError(
      f"{model}: {ts.size()} torch / {js.size()} jaxtrain parameters, expected {MODELS[model]}"
    )
  js.compile_s = js.run(1)  # compile + one update
  js.run(WARMUP - 1)
  ts.run(WARMUP)
  per = min(ts.run(CALIBRATION), js.run(CALIBRATION)) / CALIBRATION
  n = max(1, math.ceil(window / per))  # the faster side's window lasts about `window`
  t_torch, t_jax = [], []
  for _ in range(repeat):
    t_torch.append(ts.run(n) / n)
    t_jax.append(js.run(n) / n)
  if ts.updates != js.updates:
    raise AssertionError(f"{ts.updates} torch updates, {js.updates} jaxtrain updates")
  torch_count, jax_count = ts.counted(), js.counted()
  if None not in (torch_count, jax_count) and torch_count != jax_count:
    raise AssertionError(f"optimizer counters: torch {torch_count}, jaxtrain {jax_count}")
  tt, tj = statistics.median(t_torch), statistics.median(t_jax)
  return dict(
    model=model,
    optimizer=name,
    torch_us=tt * 1e6,
    jax_us=tj * 1e6,
    ratio=tt / tj,
    torch_best_us=min(t_torch) * 1e6,
    jax_best_us=min(t_jax) * 1e6,
    compile_ms=js.compile_s * 1e3,
    updates=ts.updates,
    per_window=n,
    counters=(torch_count, jax_count),
    impl=ts.impl,
    device=f"torch {ts.device.type}, jax {js.device}",
  )


def run(names, optimizers, repeat: int, window: float) -> list[dict]:
  rows = []
  for model in names:
    for name in optimizers:
      r = bench(model, name, repeat, window)
      rows.append(r)
      tc, jc = r["counters"]
      counted = "" if None in (tc, jc) else f" (optimizer step counters {tc} = {jc})"
      print(
        f"{model:4} {name:13} torch {r['torch_us']:8.1f} us (best {r['torch_best_us']:6.1f}, "
        f"{r['impl']})   jaxtrain {r['jax_us']:8.1f} us (best {r['jax_best_us']:6.1f})   "
        f"ratio {r['ratio']:5.2f}x   "
        f"compile {r['compile_ms']:5.0f} ms   {r['updates']} updates each{counted}",
        flush=True,
      )
  return rows


def markdown(
  rows, repeat: int, window: float, command: str, load: tuple[str, str] = ("?", "?")
) -> str:
  impls = sorted({r["impl"] for r in rows})
  devices = sorted({r["device"] for r in rows})
  lines = [
    f"## Optimizer updates alone: jaxtrain vs torch ({datetime.date.today().isoformat()})",
    "",
    f"{machine()} Command: `{command}`. Devices: {'; '.join(devices)}.",
    "One update of the notes' CNN (145,578 parameters) or MLP (203,530): jaxtrain's "
    "`optimizer.update` + `optax.apply_updates`, jit-compiled with parameters and state donated, "
    f"against torch's `opt.step()` (default implementation, here {' / '.join(impls)}; gradients "
    f"pre-set). Median of {repeat} interleaved windows of ~{window * 1e3:.0f} ms (the faster "
    "side's), "
    "after a warm-up; both sides made the same number of updates (checked, and against the "
    "optimizers' own step counters where both keep one). Ratio = torch / jaxtrain (above 1: "
    "jaxtrain faster). Default threads; no allocator tuning. Load average (1 min) at the start "
    f"/ end: {load[0]} / {load[1]} (on {os.cpu_count()} cores; well above 0, the other load "
    "slows both, torch's OpenMP threads the most)."
    + (
      f" XLA_FLAGS (the environment's and jaxtrain's import-time defaults): "
      f"`{os.environ['XLA_FLAGS']}`."
      if os.environ.get("XLA_FLAGS")
      else ""
    ),
    "",
    "| params | optimizer | torch (us) | jaxtrain (us) | ratio | jaxtrain compile (ms) "
    "| updates each |",
    "|---|---|---:|---:|---:|---:|---:|",
  ]
  for r in rows:
    lines.append(
      f"| {r['model']} | {r['optimizer']} | {r['torch_us']:.1f} | {r['jax_us']:.1f} | "
      f"{r['ratio']:.2f} | {r['compile_ms']:.0f} | {r['updates']} |"
    )
  lines += slower_summary(rows, "optimizer", "model")
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
  parser.add_argument(
    "--optimizers",
    nargs="+",
    choices=list(OPTIMIZERS),
    default=list(OPTIMIZERS),
    metavar="NAME",
    help=f"a subset of: {', '.join(OPTIMIZERS)}",
  )
  parser.add_argument(
    "--repeat", type=int, default=REPEAT, help="timed windows; the median is reported"
  )
  parser.add_argument(
    "--window", type=float, default=WINDOW, help="seconds per window (faster side)"
  )
  parser.add_argument("--write", action="store_true", help="record the table in RESULTS.md")
  args = parser.parse_args(argv)
  if args.repeat < 1 or args.window <= 0:
    parser.error("--repeat must be at least 1 and --window positive")
  load = start_load()
  rows = run(args.models, args.optimizers, args.repeat, args.window)
  load = (load, load_average())
  command = "python benchmarks/bench_optim.py" + (" --write" if args.write else "")
  if args.models != list(MODELS):
    command += " --models " + " ".join(args.models)
  if args.optimizers != list(OPTIMIZERS):
    command += " --optimizers " + " ".join(f"'{o}'" if " " in o else o for o in args.optimizers)
  if (args.repeat, args.window) != (REPEAT, WINDOW):
    command += f" --repeat {args.repeat} --window {args.window}"
  section = markdown(rows, args.repeat, args.window, command, load)
  publish(section, "## Optimizer updates alone", args.write)
  return 0


if __name__ == "__main__":
  sys.exit(main())
