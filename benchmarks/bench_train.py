"""Training throughput: torch eager vs jaxtrain per-step vs jaxtrain scan-epoch, same run.

    python benchmarks/bench_train.py            # print the table
    python benchmarks/bench_train.py --write    # and record it in benchmarks/RESULTS.md

The notes' models on their data shapes (random data, the same for every contender):
the CIFAR-10 CNN at batch 64 (32x32x3), the MLP at batch 256 (28x28x1), the RNN at
batch 64 (28 rows of 28). Each contender trains ``--steps`` SGD steps (lr 0.01,
cross entropy): torch eager (forward, backward, ``optimizer.step()``), jaxtrain's
jit-compiled ``train_step`` called once per batch, and jaxtrain's ``make_epoch``
(all steps in one ``lax.scan``, data on the device). Reported: steps/s, images/s,
time to the first step (compilation for jaxtrain), and jaxtrain / torch throughput.
Default threads; no allocator tuning for either.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx

import jaxtrain.losses as L
from jaxtrain import models, optim
from jaxtrain.train_step import create_train_state, make_epoch, make_train_step

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_losses import machine, write_results  # noqa: E402

CASES = {
    # name: (batch, image shape (H, W, C), jaxtrain model, torch model)
    "cnn": (64, (32, 32, 3),
            lambda: models.CNN(in_channels=3, image_size=32, rngs=nnx.Rngs(0)),
            lambda: torch.nn.Sequential(
                torch.nn.Conv2d(3, 32, 5, padding=2), torch.nn.MaxPool2d(2),
                torch.nn.Conv2d(32, 32, 5, padding=2), torch.nn.MaxPool2d(2),
                torch.nn.Conv2d(32, 64, 5, padding=2), torch.nn.MaxPool2d(2),
                torch.nn.Flatten(), torch.nn.Linear(1024, 64), torch.nn.Linear(64, 10))),
    "mlp": (256, (28, 28, 1),
            lambda: models.MLP(rngs=nnx.Rngs(0)),
            lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256),
                                        torch.nn.ReLU(), torch.nn.Linear(256, 10))),
    "rnn": (64, (28, 28, 1),
            lambda: models.RNNClassifier(rngs=nnx.Rngs(0)),
            lambda: _TorchRNN()),
}


class _TorchRNN(torch.nn.Module):
  """001_42dfbdd5dad21a82.txt's RNN classifier."""

  def __init__(self):
    super().__init__()
    self.rnn = torch.nn.RNN(28, 128, batch_first=True)
    self.fc = torch.nn.Linear(128, 10)

  def forward(self, x):
    out, _ = self.rnn(x)
    return self.fc(out[:, -1, :])


def _data(batch, shape, steps, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.uniform(size=(steps * batch,) + shape).astype(np.float32)
  y = rng.integers(0, 10, steps * batch).astype(np.int32)
  return x, y


def bench_torch(name, steps):
  batch, shape, _, make = CASES[name]
  x, y = _data(batch, shape, steps)
  net = make()
  if name == "cnn":
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()  # NCHW, as torch users hold it
  elif name == "rnn":
    xt = torch.from_numpy(x[..., 0])
  else:
    xt = torch.from_numpy(x)
  yt = torch.from_numpy(y).long()
  opt = torch.optim.SGD(net.parameters(), lr=0.01)

  def step(i):
    sl = slice(i * batch, (i + 1) * batch)
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(net(xt[sl]), yt[sl])
    loss.backward()
    opt.step()
    return loss

  t0 = time.perf_counter()
  step(0)
  first = time.perf_counter() - t0
  t0 = time.perf_counter()
  for i in range(steps):
    step(i)
  return steps / (time.perf_counter() - t0), first


def bench_jax(name, steps, scan):
  batch, shape, make, _ = CASES[name]
  x, y = _data(batch, shape, steps)
  model = make()
  opt = optim.sgd(0.01)
  state = create_train_state(model, opt)
  if scan:
    epoch = make_epoch(model, L.cross_entropy, opt)
    xd, yd = jnp.asarray(x), jnp.asarray(y)
    order = jnp.arange(steps * batch, dtype=jnp.int32).reshape(steps, batch)
    t0 = time.perf_counter()
    state, totals = epoch(state, xd, yd, order)
    jax.block_until_ready(totals)
    first = time.perf_counter() - t0  # compile + one epoch
    t0 = time.perf_counter()
    state, totals = epoch(state, xd, yd, order)
    jax.block_until_ready(totals)
    return steps / (time.perf_counter() - t0), first
  step = make_train_step(model, L.cross_entropy, opt)
  xs = [jnp.asarray(x[i * batch:(i + 1) * batch]) for i in range(steps)]
  ys = [jnp.asarray(y[i * batch:(i + 1) * batch]) for i in range(steps)]
  t0 = time.perf_counter()
  state, m = step(state, (xs[0], ys[0]))
  jax.block_until_ready(m)
  first = time.perf_counter() - t0
  t0 = time.perf_counter()
  for i in range(steps):
    state, m = step(state, (xs[i], ys[i]))
  jax.block_until_ready(m)
  return steps / (time.perf_counter() - t0), first


def run(names, steps):
  rows = []
  for name in names:
    batch = CASES[name][0]
    torch_sps, torch_first = bench_torch(name, steps)
    rows.append(dict(model=name, contender="torch eager", sps=torch_sps, first=torch_first,
                     batch=batch, ratio=1.0))
    for scan in (False, True):
      sps, first = bench_jax(name, steps, scan)
      rows.append(dict(model=name, contender="jaxtrain scan-epoch" if scan else "jaxtrain per-step",
                       sps=sps, first=first, batch=batch, ratio=sps / torch_sps))
    for r in rows[-3:]:
      print(f"{r['model']:4} {r['contender']:20} {r['sps']:8.1f} steps/s {r['sps'] * batch:9.0f} img/s"
            f"  first step {r['first']:6.2f} s  x{r['ratio']:.2f} torch", flush=True)
  return rows


def markdown(rows, steps) -> str:
  lines = [
      f"## Training throughput: torch eager vs jaxtrain per-step vs scan-epoch "
      f"({datetime.date.today().isoformat()})",
      "",
      f"{machine()} Command: `python benchmarks/bench_train.py --write` ({steps} SGD steps per "
      "contender, random data, default threads, no allocator tuning).",
      "First step: torch's first step; jaxtrain per-step's compile + first step; scan-epoch's "
      "compile + one whole epoch.",
      "",
      "| model (batch) | contender | steps/s | images/s | first step (s) | throughput vs torch |",
      "|---|---|---:|---:|---:|---:|",
  ]
  for r in rows:
    lines.append(f"| {r['model']} ({r['batch']}) | {r['contender']} | {r['sps']:.1f} | "
                 f"{r['sps'] * r['batch']:.0f} | {r['first']:.2f} | {r['ratio']:.2f}x |")
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", nargs="+", choices=sorted(CASES), default=list(CASES))
  parser.add_argument("--steps", type=int, default=64)
  parser.add_argument("--write", action="store_true", help="record the table in RESULTS.md")
  args = parser.parse_args(argv)
  rows = run(args.models, args.steps)
  section = markdown(rows, args.steps)
  print()
  print(section)
  if args.write:
    write_results(section, os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md"),
                  header="## Training throughput")
  return 0


if __name__ == "__main__":
  sys.exit(main())
