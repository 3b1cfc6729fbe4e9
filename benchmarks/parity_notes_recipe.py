"""Parity: the notes' full training recipe in torch and in jaxtrain, side by side.

    python benchmarks/parity_notes_recipe.py            # print the tables
    python benchmarks/parity_notes_recipe.py --write    # and record them in benchmarks/RESULTS.md

The recipe of 000_dc5555055295abc4.txt ("神经网络学习率优化"): the ``Tudui`` CNN, cross
entropy, ``SGD(lr=0.01)``, ``StepLR(step_size=5, gamma=0.1)``, 20 epochs,
``DataLoader(batch_size=64, drop_last=True)`` (no shuffle: the same order every
epoch), ``running_loss`` summed per epoch. One deliberate change: the notes call
``scheduler.step()`` after every batch, which decays the rate every 5 *batches*
(their own comment notes that the rate became too small); here it is stepped once
per epoch, as StepLR is meant to be used (jaxtrain: ``step_lr(...,
steps_per_epoch=n)``).

Both frameworks start from the same weights (torch's initialisation, converted with
``jaxtrain.interop.from_torch_state_dict``) and see the same batches in the same
order; both run float32 eagerly as a user would write the loop: torch's
forward/backward/step per batch, jaxtrain's jit-compiled ``train_step`` per batch
(first-step compilation included in its wall time). Datasets (offline):

* ``digits``: scikit-learn's 8x8x1 digits (1,437 training images, 22 batches an
  epoch), the CNN sized 8 (``fc_in`` 64).
* ``cifar-synthetic``: CIFAR-shaped 32x32x3 random images with learnable labels
  (``jaxtrain.data.synthetic``), 2,048 training images (32 batches an epoch), the
  notes' exact 145,578-parameter network.

Reported per epoch: the learning rate, both running losses and their relative
difference; then the largest relative difference over every step's loss, the
largest absolute difference of the final parameters, and each framework's wall time.
Default threads for both; the machine may be shared, so the times are indicative.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

import numpy as np
import torch
from flax import nnx

import jaxtrain.losses as L
from jaxtrain import data, interop, models, optim
from jaxtrain.train_step import create_train_state, make_train_step, merge_model

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results import machine, publish  # noqa: E402

HEADER = "## Parity: the notes' recipe in torch and jaxtrain"
EPOCHS, BATCH, LR, STEP_SIZE, GAMMA = 20, 64, 0.01, 5, 0.1  # the notes' recipe


class Tudui(torch.nn.Module):
  """000_dc5555055295abc4.txt's network; ``in_channels``/``fc_in`` sized for the data."""

  def __init__(self, in_channels=3, fc_in=1024):
    super().__init__()
    self.model1 = torch.nn.Sequential(
      torch.nn.Conv2d(in_channels, 32, 5, padding=2),
      torch.nn.MaxPool2d(2),
      torch.nn.Conv2d(32, 32, 5, padding=2),
      torch.nn.MaxPool2d(2),
      torch.nn.Conv2d(32, 64, 5, padding=2),
      torch.nn.MaxPool2d(2),
      torch.nn.Flatten(),
      torch.nn.Linear(fc_in, 64),
      torch.nn.Linear(64, 10),
    )

  def forward(self, x):
    return self.model1(x)


def load(name: str, num_train: int) -> data.Split:
  if name == "digits":
    return data.load_dataset("digits").train
  return data.synthetic(num_train=num_train, num_test=1, image_shape=(32, 32, 3), seed=0).train


def loader(split: data.Split):
  """The notes' ``DataLoader(dataset, batch_size=64, drop_last=True)``: stored order."""
  return data.batches(split, batch_size=BATCH, seed=0, epoch=0, shuffle=False)


def run_torch(net: torch.nn.Module, split: data.Split, epochs: int):
  """The notes' loop, scheduler stepped per epoch. Returns step losses, running losses, lrs."""
  opt = torch.optim.SGD(net.parameters(), lr=LR)
  scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=STEP_SIZE, gamma=GAMMA)
  # The loader's batches as NCHW tensors (torchvision's ToTensor layout), built once.
  batches = [
    (
      torch.from_numpy(data.to_float(x, split.max_value)).permute(0, 3, 1, 2),
      torch.from_numpy(y).long(),
    )
    for x, y in loader(split)
  ]
  step_losses, running, lrs = [], [], []
  for _ in range(epochs):
    lrs.append(opt.param_groups[0]["lr"])
    running_loss = 0.0
    for imgs, targets in batches:
      result_loss = torch.nn.functional.cross_entropy(net(imgs), targets)
      opt.zero_grad()
      result_loss.backward()
      opt.step()
      # .item(): the notes add the tensor itself, which keeps every batch's graph alive.
      step_losses.append(result_loss.item())
      running_loss += step_losses[-1]
    running.append(running_loss)
    scheduler.step()  # per epoch (the notes: per batch, by mistake)
  return np.array(step_losses), np.array(running), lrs


def run_jaxtrain(model: models.CNN, split: data.Split, epochs: int):
  """The same loop in jaxtrain. Returns step losses, running losses, the trained model."""
  steps_per_epoch = data.num_batches(len(split), BATCH, drop_last=True)
  opt = optim.sgd(optim.step_lr(LR, STEP_SIZE, GAMMA, steps_per_epoch=steps_per_epoch))
  state = create_train_state(model, opt)
  # The stored uint8 batches: the step scales them on the device (ToTensor's values).
  train_step = make_train_step(model, L.cross_entropy, opt, image_max=split.max_value)
  step_losses, running = [], []
  for _ in range(epochs):
    losses = []
    for batch in loader(split):
      state, metrics = train_step(state, batch)
      losses.append(metrics["loss"])  # on the device; fetched once per epoch
    losses = [float(v) for v in losses]
    step_losses += losses
    running.append(sum(losses))
  return np.array(step_losses), np.array(running), merge_model(model, state)


def compare(name: str, num_train: int, epochs: int) -> dict:
  split = load(name, num_train)
  channels, side = split.images.shape[3], split.images.shape[1]
  torch.manual_seed(0)
  net = Tudui(channels, 64 * (side // 8) ** 2)
  model = interop.from_torch_state_dict(
    models.CNN(in_channels=channels, image_size=side, rngs=nnx.Rngs(0)), net.state_dict()
  )
  t0 = time.perf_counter()
  loss_t, running_t, lrs = run_torch(net, split, epochs)
  torch_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  loss_j, running_j, trained = run_jaxtrain(model, split, epochs)
  jax_s = time.perf_counter() - t0
  final = interop.to_torch_state_dict(trained)
  param_diff = max(
    float(np.abs(final[k].numpy() - v.numpy()).max()) for k, v in net.state_dict().items()
  )
  return dict(
    name=name,
    n=len(split),
    shape="x".join(map(str, split.images.shape[1:])),
    steps=len(loss_t),
    lrs=lrs,
    running_t=running_t,
    running_j=running_j,
    step_rel=float(np.max(np.abs(loss_j - loss_t) / np.abs(loss_t))),
    running_rel=np.abs(running_j - running_t) / np.abs(running_t),
    param_diff=param_diff,
    torch_s=torch_s,
    jax_s=jax_s,
  )


def markdown(results: list[dict], command: str, epochs: int) -> str:
  lines = [
    f"{HEADER} ({datetime.date.today().isoformat()})",
    "",
    f"{machine()} Command: `{command}`.",
    "The notes' recipe (000_dc5555055295abc4.txt): Tudui CNN, cross entropy, SGD lr 0.01, "
    f"StepLR(5, 0.1) stepped per epoch (the notes step it per batch by mistake), {epochs} "
    "epochs, batch 64, drop_last, no shuffle; same initial weights (torch's init, converted "
    "by `jaxtrain.interop`) and same batches in both frameworks, float32. Wall times include "
    f"jaxtrain's compilation; torch on {torch.get_num_threads()} threads; the CPU may be "
    "shared with other jobs (times indicative only).",
  ]
  for r in results:
    lines += [
      "",
      f"### {r['name']}: {r['n']} images {r['shape']}, {r['steps']} steps",
      "",
      "| epoch | lr | torch running_loss | jaxtrain running_loss | rel. diff |",
      "|---:|---:|---:|---:|---:|",
    ]
    for e, (lr, a, b, d) in enumerate(
      zip(r["lrs"], r["running_t"], r["running_j"], r["running_rel"])
    ):
      lines.append(f"| {e} | {lr:.0e} | {a:.5f} | {b:.5f} | {d:.1e} |")
    lines += [
      "",
      f"Max relative difference: running_loss {r['running_rel'].max():.1e}, per-step loss "
      f"{r['step_rel']:.1e}; final parameters max abs difference {r['param_diff']:.1e}. "
      f"Wall time: torch {r['torch_s']:.1f} s, jaxtrain {r['jax_s']:.1f} s.",
    ]
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--data",
    nargs="+",
    choices=["digits", "cifar-synthetic"],
    default=["digits", "cifar-synthetic"],
  )
  parser.add_argument(
    "--num-train", type=int, default=2048, help="cifar-synthetic images per epoch"
  )
  parser.add_argument("--epochs", type=int, default=EPOCHS)
  parser.add_argument("--torch-threads", type=int, default=None, help="torch.set_num_threads")
  parser.add_argument("--write", action="store_true", help="record the tables in RESULTS.md")
  args = parser.parse_args(argv)
  if args.torch_threads:
    torch.set_num_threads(args.torch_threads)
  results = []
  for name in args.data:
    print(f"running {name} ...", flush=True)
    results.append(compare(name, args.num_train, args.epochs))
  command = "python benchmarks/parity_notes_recipe.py " + " ".join(
    sys.argv[1:] if argv is None else argv
  )
  section = markdown(results, command.strip(), args.epochs)
  publish(section, HEADER, args.write)
  return 0


if __name__ == "__main__":
  sys.exit(main())
