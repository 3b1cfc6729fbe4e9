"""How a run's batches reach its compiled step, so that the accelerator never waits.

Two placements of a dataset (``PLACEMENTS``):

* ``'device'``: both splits are put on the devices once, as stored (uint8
  pixels stay uint8), each split along its examples over the data mesh
  (``parallel.put_split``: every device holds ``1 / devices`` of it, nothing is
  replicated). A step receives only its ``(B,)`` int32 indices and gathers its
  batch inside the program (``make_gather_step``), or a whole epoch runs as one
  program (``make_epoch``); evaluation is one program over the test split.
* ``'host'``: the splits stay in host memory; each batch is gathered on the host
  by a worker thread and its copy to the devices started ``depth`` batches ahead
  of the step (``parallel.prefetch``).

``'auto'`` (the default) picks ``'device'`` when both splits take at most half of
a device's free memory (``parallel.device_memory_free``; on the CPU, whose
device memory is the host's, always), else ``'host'``.

Either way the loop never waits on the device within an epoch: it only
dispatches steps; the epoch's metrics are fetched once, at its end. The progress
bar shows a loss only once its asynchronous copy to the host has arrived.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxtrain import parallel
from jaxtrain.data import Dataset, batches, epoch_permutation
from jaxtrain.train_step import (
  TrainState,
  make_epoch,
  make_eval_epoch,
  make_eval_step,
  make_gather_step,
  make_train_step,
)

PLACEMENTS = ("auto", "device", "host")

# A split on the device may take up to this share of a device's free memory;
# the rest is the model's, its gradients' and the activations'.
_DEVICE_SHARE = 0.5

# The progress bar asks for every BAR_EVERY-th step's loss (an asynchronous copy).
BAR_EVERY = 10


def _split_bytes(data: Dataset) -> int:
  return sum(a.nbytes for split in (data.train, data.test) for a in (split.images, split.labels))


def choose_placement(placement: str, data: Dataset, mesh: Mesh, *, scan_epoch: bool) -> str:
  """``'device'`` or ``'host'``: where ``data`` lives during training (see the module docstring).

  Raises:
    ValueError: an unknown ``placement``, or ``scan_epoch`` (which gathers its
      batches on the device) with the data on the host, asked for or because it
      does not fit.
  """
  if placement not in PLACEMENTS:
    raise ValueError(
      f"data_placement={placement!r} is not valid; expected one of {', '.join(PLACEMENTS)}"
    )
  if placement == "auto":
    per_device = _split_bytes(data) / mesh.size
    free = parallel.device_memory_free(mesh)
    placement = "device" if free is None or per_device <= _DEVICE_SHARE * free else "host"
    if placement == "host" and scan_epoch:
      raise ValueError(
        f"scan_epoch gathers its batches from the dataset held on the devices, but "
        f"{data.name!r} needs {per_device / 2**20:.0f} MiB per device, more than half of "
        f"the {free / 2**20:.0f} MiB free: train without scan_epoch (--scan-epoch), or on "
        "more devices"
      )
  elif placement == "host" and scan_epoch:
    raise ValueError(
      "data_placement='host' cannot run with scan_epoch, which gathers its "
      "batches from the dataset held on the devices"
    )
  return placement


@dataclasses.dataclass
class Programs:
  """What a run's pipeline compiles: the model, loss and optimizer, and how to step."""

  model: Any
  loss_fn: Callable
  optimizer: Any
  reduction: str
  nan_policy: str | None
  precision: str


class Pipeline:
  """Trains and evaluates a run's epochs from wherever its data lives.

  Args:
    data: the dataset (host arrays).
    programs: the model, loss, optimizer and step options.
    placement: ``'device'`` or ``'host'`` (``choose_placement``).
    mesh: the data mesh.
    batch_size: the global training batch (drop_last, as the notes' DataLoader).
    eval_batch_size: the global evaluation batch (rounded up to the devices).
    seed: the run's seed (the data order is a function of seed and epoch).
    scan_epoch: run each epoch as one program.
  """

  def __init__(
    self,
    data: Dataset,
    programs: Programs,
    *,
    placement: str,
    mesh: Mesh,
    batch_size: int,
    eval_batch_size: int,
    seed: int,
    scan_epoch: bool,
  ):
    self.data, self.mesh, self.placement = data, mesh, placement
    self.batch_size, self.seed, self.scan_epoch = batch_size, seed, scan_epoch
    self.steps = len(data.train) // batch_size
    kw = dict(mesh=mesh, image_max=data.max_value, precision=programs.precision)
    train_kw = dict(kw, reduction=programs.reduction, nan_policy=programs.nan_policy)
    make = (
      make_epoch if scan_epoch else make_gather_step if placement == "device" else make_train_step
    )
    self._train = make(programs.model, programs.loss_fn, programs.optimizer, **train_kw)
    self._rows = parallel.process_rows(batch_size, mesh)  # this process's share of a batch
    self._eval_size = parallel.padded_size(min(eval_batch_size, len(data.test)), mesh)
    if placement == "device":
      self._train_split = parallel.put_split(data.train.images, data.train.labels, mesh)
      self._test_split = parallel.put_split(data.test.images, data.test.labels, mesh)
      self._eval = make_eval_epoch(programs.model, programs.loss_fn, **kw)
      self._eval_plan = self._device_eval_plan()
    else:
      self._eval = make_eval_step(programs.model, programs.loss_fn, **kw)

  # ------------------------------------------------------------------ training

  def _order(self, epoch: int) -> np.ndarray:
    """The epoch's batches as ``(steps, batch_size)`` example indices (the shuffled order)."""
    n = self.steps * self.batch_size
    return epoch_permutation(len(self.data.train), self.seed, epoch)[:n].reshape(
      self.steps, self.batch_size
    )

  def train_epoch(
    self,
    state: TrainState,
    epoch: int,
    progress: Callable[[int, float | None], None] | None = None,
  ) -> tuple[TrainState, dict, Any]:
    """Runs epoch ``epoch`` (0-based) from ``state``.

    Args:
      state: the state before the epoch (donated).
      epoch: the epoch, 0-based.
      progress: if given, called as ``progress(batches_done, loss_or_None)`` as the
        epoch goes, with every ``BAR_EVERY``-th step's loss once it is on the host.

    Returns:
      ``(state, totals, flags)``: the new state; the epoch's summed metrics as host
      numbers (fetched once); and ``flags()``, which fetches each step's
      ``nonfinite`` flag (only called when something was non-finite).
    """
    if self.scan_epoch:
      columns = parallel.process_rows(self.batch_size, self.mesh, axis=1)
      order = parallel.feed(self._order(epoch)[:, columns], self.mesh, axis=1)
      state, totals = self._train(state, *self._train_split, order)
      if progress:
        progress(self.steps, None)
      totals = jax.device_get(totals)
      return state, totals, lambda: totals["batch_nonfinite"]
    per_batch, losses = [], _AsyncLosses() if progress else None
    if self.placement == "device":
      order = self._order(epoch)
      for i in range(self.steps):
        idx = parallel.feed(order[i][self._rows], self.mesh)
        state, metrics = self._train(state, *self._train_split, idx)
        per_batch.append(metrics)
        if progress:
          progress(1, losses.track(i, metrics["loss"]))
    else:
      host_batches = batches(
        self.data.train, batch_size=self.batch_size, seed=self.seed, epoch=epoch, rows=self._rows
      )
      for i, batch in enumerate(parallel.prefetch(host_batches, self.mesh)):
        state, metrics = self._train(state, batch)
        per_batch.append(metrics)
        if progress:
          progress(1, losses.track(i, metrics["loss"]))
    totals = jax.device_get(_sum_metrics(per_batch))
    return state, totals, lambda: jax.device_get(jnp.stack([m["nonfinite"] for m in per_batch]))

  # ---------------------------------------------------------------- evaluation

  def _device_eval_plan(self):
    """The test split's batches as device indices and 0/1 weights, built once per run."""
    n, size = len(self.data.test), self._eval_size
    count = -(-n // size)
    positions = np.arange(count * size, dtype=np.int32)
    order = np.minimum(positions, n - 1).reshape(count, size)  # padding: any real row, weight 0
    mask = (positions < n).astype(np.float32).reshape(count, size)
    columns = parallel.process_rows(size, self.mesh, axis=1)
    return parallel.put_batch((order[:, columns], mask[:, columns]), self.mesh, axis=1)

  def evaluate(self, state: TrainState) -> tuple[float, float]:
    """Mean loss and accuracy over the test split."""
    if self.placement == "device":
      totals = jax.device_get(self._eval(state, *self._test_split, *self._eval_plan))
      return float(totals["loss_sum"] / totals["count"]), float(totals["correct"] / totals["count"])
    return evaluate(
      self._eval,
      state,
      self.data.test.images,
      self.data.test.labels,
      self._eval_size,
      mesh=self.mesh,
    )


class _AsyncLosses:
  """Every BAR_EVERY-th step's loss for the progress bar, without waiting for the device.

  The loss of step ``i`` starts its copy to the host when the step is dispatched;
  a later call returns the newest loss whose copy has arrived, else None.
  """

  def __init__(self):
    self._pending: list = []

  def track(self, i: int, loss: jax.Array) -> float | None:
    if i % BAR_EVERY == 0:
      loss.copy_to_host_async()
      self._pending.append(loss)
    ready = None
    while self._pending and self._pending[0].is_ready():
      ready = self._pending.pop(0)
    return None if ready is None else float(jax.device_get(ready))


@jax.jit
def _sum_metrics(metrics: list[dict]) -> dict:
  return {k: jnp.sum(jnp.stack([m[k] for m in metrics]), axis=0) for k in metrics[0]}


def evaluate(
  eval_step,
  state: TrainState,
  images: np.ndarray,
  labels: np.ndarray,
  batch_size: int,
  *,
  mesh: Mesh | None = None,
) -> tuple[float, float]:
  """Mean loss and accuracy over a whole split held on the host, in padded batches.

  The batch size is ``min(batch_size, len(labels))`` rounded up to a multiple of
  ``mesh``'s device count (every device if ``None``; the mesh ``eval_step`` was
  made for), so that each device takes an equal share; the last batch is padded
  with examples of mask 0, which count for nothing. Batches are prefetched.
  """
  mesh = parallel.data_mesh() if mesh is None else mesh
  n = len(labels)
  size = parallel.padded_size(min(batch_size, n), mesh)
  rows = parallel.process_rows(size, mesh)  # with several processes, this one's share

  def host_batches():
    for start in range(0, n, size):
      x, y = images[start : start + size], labels[start : start + size]
      pad = size - len(y)
      mask = np.concatenate([np.ones(len(y), np.float32), np.zeros(pad, np.float32)])
      if pad:
        x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
        y = np.concatenate([y, np.zeros(pad, y.dtype)])
      yield x[rows], y[rows], mask[rows]

  totals = [eval_step(state, batch) for batch in parallel.prefetch(host_batches(), mesh)]
  t = jax.device_get(_sum_metrics(totals))
  return float(t["loss_sum"] / t["count"]), float(t["correct"] / t["count"])
