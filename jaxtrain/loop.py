"""The training loop: ``fit(config)`` trains a model as the notes do and reports each epoch.

``fit`` is what ``python -m jaxtrain.train`` calls; tests and notebooks call it
too. Per epoch it reports what d2l's ``train_ch3`` reports (train loss as the mean
over examples, train accuracy, test accuracy) and what the notes print
(``running_loss``: the sum of the batch losses).

``fit`` trains data-parallel on every device (``jaxtrain.parallel``), and with
several processes (after ``parallel.initialize``) on every device of every
process: each process feeds its own rows of each global batch, and only process 0
prints and writes the run folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from collections.abc import Callable

import jax
import numpy as np
from flax import nnx, traverse_util
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from jaxtrain import parallel
from jaxtrain.checkpoint import Checkpointer
from jaxtrain.config import Config  # noqa: F401  (jaxtrain.loop.Config, as before)
from jaxtrain.data import Dataset
from jaxtrain.pipeline import evaluate  # noqa: F401  (jaxtrain.loop.evaluate, as before)

# EpochResult and format_epoch are declared in reporting; jaxtrain.loop.EpochResult and
# jaxtrain.loop.format_epoch stay importable as before.
from jaxtrain.reporting import EpochResult, OutputError, Reporter, format_epoch
from jaxtrain.run import build_run
from jaxtrain.train_step import TrainState

# What a run folder holds; --overwrite deletes these, and only these.
RUN_FILES = (
  "config.json",
  "metrics.jsonl",
  "metrics.csv",
  "curves.png",
  "tensorboard",
  "checkpoints",
  "params.npz",
)


class NonFiniteError(FloatingPointError):
  """A NaN or infinite loss or gradient stopped the run (``nan_policy='stop'``).

  Attributes:
    epoch: the epoch (1-based) the first bad step fell in; it is not checkpointed.
    step: the global step (1-based update number) of the first bad step.
    batch: that step's batch within the epoch (1-based).
    last_checkpoint: the last saved (good) epoch, or ``None``.
  """

  def __init__(
    self, message: str, *, epoch: int, step: int, batch: int, last_checkpoint: int | None
  ):
    super().__init__(message)
    self.epoch, self.step, self.batch = epoch, step, batch
    self.last_checkpoint = last_checkpoint


def fit(
  config: Config,
  *,
  log: Callable[[str], None] | None = None,
  data: Dataset | None = None,
  resume: bool = False,
  mesh: Mesh | None = None,
) -> tuple[TrainState, list[EpochResult]]:
  """Trains as ``config`` says; returns the final state and each epoch's results.

  With ``config.out_dir`` it writes there the resolved config, per-epoch metrics
  (JSON lines and CSV), the learning curves (PNG), TensorBoard scalars, a checkpoint
  after every epoch (the last ``config.keep``), and the final parameters
  (``params.npz``).

  Training is data-parallel over ``mesh`` (every device of every process by
  default): ``config.batch_size`` is the global batch and must divide by the
  device count. With several processes (``parallel.initialize``), every process
  computes the same global batch order and feeds its own rows of each batch;
  only process 0 prints, calls ``log`` and writes ``out_dir`` (so ``out_dir``
  matters on process 0 only, except with ``resume``, see below).

  Args:
    config: the run.
    log: if given, receives the one-line summary of each epoch, and nothing is
      printed; else ``config.progress`` says what is printed.
    data: the dataset, if already loaded (else ``load_dataset(config.dataset)``).
    resume: continue the run in ``config.out_dir`` from its last checkpoint. The
      data order is a function of (seed, epoch), so the resumed run ends with the
      parameters of an uninterrupted one. A run folder without a checkpoint (the
      run died during its first epoch) starts again from epoch 1. With several
      processes, every process reads the checkpoint: ``out_dir`` must be on a
      filesystem they all see (a ``ValueError`` says so when they disagree on
      the latest epoch).
    mesh: the devices to train on (``parallel.data_mesh()`` if ``None``).

  Raises:
    NonFiniteError: with ``nan_policy='stop'``, when an epoch had a NaN or infinite
      loss or gradient (found at the end of the epoch, the exact step named); that
      epoch is not checkpointed. With ``'skip'``, when every update of an epoch
      was skipped.
    ValueError: for a bad ``config``, or a ``batch_size`` that does not divide by
      the device count.
  """
  run = build_run(config, data)  # the config resolved and validated
  config = run.config
  if resume and not config.out_dir:
    raise ValueError("resume needs out_dir: the folder of the run to continue")
  mesh = parallel.data_mesh() if mesh is None else mesh
  parallel.check_batch_size(config.batch_size, mesh)
  main = parallel.is_main_process()
  checkpoints = None
  if config.out_dir and main:
    if not resume:
      _claim_run_folder(config.out_dir, overwrite=config.overwrite)
    # Asynchronous: a save returns once the state is copied to the host, and orbax
    # writes (and atomically commits) it while the next epoch trains.
    checkpoints = Checkpointer(
      os.path.join(config.out_dir, "checkpoints"), keep=config.keep, asynchronous=True
    )
  state, results = run.initial_state(mesh), []
  if resume:
    state, results = _resume(config, state, checkpoints)
    if config.epochs < len(results):
      raise ValueError(
        f"epochs={config.epochs}: the run in {config.out_dir} has trained "
        f"{len(results)} epochs already; epochs can only extend it"
      )
  feed = run.pipeline(mesh)
  steps = run.steps_per_epoch

  # Other processes print nothing and write nothing.
  reporter = Reporter(
    out_dir=config.out_dir if main else None,
    mode="quiet" if log or not main else config.progress,
    epochs=config.epochs,
    config=config.to_dict(),
    history=results,
  )
  try:
    for epoch in range(len(results), config.epochs):
      start = time.perf_counter()
      lr_now = float(jax.device_get(run.lr(state.step)) if callable(run.lr) else run.lr)
      with reporter.epoch_bar(epoch + 1, steps, config.batch_size) as bar:
        progress = (lambda n, loss: bar.update(n, loss=loss)) if bar.active else None
        state, t, flags = feed.train_epoch(state, epoch, progress)
      # The check costs nothing: the epoch's metrics are fetched once anyway, and
      # the per-step flags are looked at only when the count says something is wrong.
      bad = int(t.get("nonfinite", 0))
      if bad and (config.nan_policy == "stop" or bad == steps):
        _raise_nonfinite(config, epoch, steps, int(np.argmax(flags())), bad, checkpoints)
      count = int(t["count"])
      test_loss, test_acc = feed.evaluate(state)
      result = EpochResult(
        epoch=epoch + 1,
        lr=lr_now,
        # nan_policy='skip': the means are over the applied updates' examples.
        train_loss=float(t["loss_sum"] / count),
        train_acc=float(t["correct"] / count),
        test_loss=test_loss,
        test_acc=test_acc,
        running_loss=float(t["loss"]),
        seconds=time.perf_counter() - start,
        skipped=bad + int(t.get("scaler_skipped", 0)),
      )
      results.append(result)
      if checkpoints:  # first: whatever happens next, this epoch is being kept
        checkpoints.save(
          epoch + 1,
          state,
          meta={
            "config": config.to_dict(),
            "epoch": epoch + 1,
            "history": [dataclasses.asdict(r) for r in results],
          },
        )
      line = format_epoch(result, config.epochs)
      reporter.end_epoch(result, line=line)
      if log and main:
        log(line)
  except BaseException:
    # The error on its way out is the one to report: a failure while closing the
    # outputs (a curves drawing, the last checkpoint write) must not replace it.
    _close(reporter, checkpoints, quietly=True)
    raise
  _close(reporter, checkpoints, quietly=False)
  if config.out_dir and main:
    save_params(state, os.path.join(config.out_dir, "params.npz"))
  return state, results


def _close(reporter: Reporter, checkpoints: Checkpointer | None, *, quietly: bool) -> None:
  """Closes the run's outputs (waiting for the last checkpoint write), both of them."""
  for output in (reporter, checkpoints):
    if output is None:
      continue
    if quietly:
      with contextlib.suppress(Exception):
        output.close()
    else:
      try:
        output.close()
      except Exception:
        if output is reporter and checkpoints is not None:
          checkpoints.close()  # the last checkpoint is kept, whatever the reporter's error
        raise


def _claim_run_folder(out_dir: str, *, overwrite: bool) -> None:
  """Makes ``out_dir`` a new run's folder, never touching a run (or anything) already there.

  Raises:
    ValueError: ``out_dir`` holds a run and ``overwrite`` is false, or holds other files.
    OutputError: ``out_dir`` cannot be created or written.
  """
  if os.path.isdir(out_dir) and os.listdir(out_dir):
    ours = [name for name in os.listdir(out_dir) if name in RUN_FILES]
    if ours and not overwrite:
      raise ValueError(
        f"out_dir={out_dir!r} already holds a run ({', '.join(sorted(ours))}): continue it "
        f"with --resume {out_dir}, or pass --overwrite to replace it; nothing was changed"
      )
    if not ours:
      raise ValueError(
        f"out_dir={out_dir!r} is not empty and holds no run: choose a new or an "
        "empty folder; nothing was changed"
      )
    for name in ours:  # overwrite: the old run's files, and only those
      path = os.path.join(out_dir, name)
      shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
  try:
    os.makedirs(out_dir, exist_ok=True)
    probe = os.path.join(out_dir, ".jaxtrain-write-test")
    with open(probe, "w"):
      pass
    os.remove(probe)
  except OSError as e:
    raise OutputError(out_dir, e) from e


def _resume(
  config: Config, state: TrainState, checkpoints: Checkpointer | None
) -> tuple[TrainState, list[EpochResult]]:
  """The state and results of the run in ``config.out_dir``'s last checkpoint.

  ``checkpoints`` is process 0's (writing) Checkpointer; other processes read the
  same files read-only. A run killed before its first checkpoint has nothing to
  restore: it starts again from epoch 1, which is what resuming it means (the
  result equals the uninterrupted run's either way).
  """
  if not os.path.isdir(config.out_dir):
    raise FileNotFoundError(f"out_dir={config.out_dir!r} does not exist: no run to resume")
  reader = checkpoints
  directory = os.path.join(config.out_dir, "checkpoints")
  if reader is None and os.path.isdir(directory):
    reader = Checkpointer(directory, read_only=True)
  try:
    latest = reader.latest_epoch() if reader else None
    if jax.process_count() > 1:
      # Every process must restore the same epoch, or they would train apart.
      seen = multihost_utils.process_allgather(np.int32(-1 if latest is None else latest))
      if len(set(seen.tolist())) > 1:
        raise ValueError(
          f"resume: the processes see different latest checkpoints in {directory} (epochs "
          f"{', '.join(map(str, seen.tolist()))} by process; -1: none): every process must "
          "see the run folder on a shared filesystem"
        )
    if latest is None:
      return state, []
    state, meta = reader.restore(state)
  finally:
    if reader is not None and reader is not checkpoints:
      reader.close()
  return state, [EpochResult(**r) for r in meta["history"]]


def _raise_nonfinite(
  config: Config, epoch: int, steps: int, first: int, bad: int, checkpoints: Checkpointer | None
):
  """Raises NonFiniteError for batch ``first`` (0-based) of ``epoch`` (0-based)."""
  if checkpoints:
    checkpoints.wait()  # the previous epoch's asynchronous save: on disk before it is named
  last = checkpoints.latest_epoch() if checkpoints else None
  step = epoch * steps + first + 1
  if config.nan_policy == "skip":
    what = f"every one of the {steps} updates of epoch {epoch + 1} was skipped (nan_policy='skip')"
  else:
    what = (
      f"non-finite loss or gradient at epoch {epoch + 1}, step {step} (batch {first + 1} "
      f"of {steps}; {bad} bad step{'s' if bad > 1 else ''} in the epoch)"
    )
  if not checkpoints and config.out_dir and not parallel.is_main_process():
    kept = f"process 0 keeps the checkpoints in {config.out_dir}"
  elif not checkpoints:
    kept = "nothing was checkpointed (no out_dir)"
  elif last is None:
    kept = "no epoch finished, so there is no checkpoint"
  else:
    kept = (
      f"epoch {epoch + 1} was not checkpointed; the last good checkpoint is epoch {last} "
      f"in {checkpoints.directory}"
    )
  raise NonFiniteError(
    f"{what}; stopped: {kept}. Lower the learning rate (lr={config.lr}) or use "
    "nan_policy='skip' (--nan-policy skip) in a new run",
    epoch=epoch + 1,
    step=step,
    batch=first + 1,
    last_checkpoint=last,
  )


def save_params(state: TrainState, path: str) -> None:
  """The parameters as ``.npz``, one array per layer path (``'fc1/kernel'``), readable without jax.

  Raises:
    OutputError: the file cannot be written (the checkpoints hold the same parameters).
  """
  flat = traverse_util.flatten_dict(nnx.to_pure_dict(parallel.process_local(state.params)), sep="/")
  tmp = path + ".tmp.npz"
  try:
    np.savez(tmp, **{key: np.asarray(value) for key, value in flat.items()})
    os.replace(tmp, path)  # atomic: a reader never sees half a file
  except OSError as e:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise OutputError(path, e) from e
