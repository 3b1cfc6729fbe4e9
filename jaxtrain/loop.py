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

import dataclasses
import os
import time
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh

import jaxtrain.losses as L
import jaxtrain.optim as optim
from jaxtrain import amp, models, parallel, pipeline
from jaxtrain.checkpoint import Checkpointer
from jaxtrain.data import Dataset, load_dataset, num_batches
from jaxtrain.pipeline import evaluate  # noqa: F401  (jaxtrain.loop.evaluate, as before)
from jaxtrain.reporting import MODES, Reporter
from jaxtrain.train_step import NAN_POLICIES, TrainState, create_train_state


def _nll_of_logits(logits, labels, *, reduction="mean"):
  # NLLLoss expects log-probabilities: the notes' models end in a Linear layer, so
  # this is nn.LogSoftmax followed by nn.NLLLoss (equal to cross_entropy).
  return L.nll_loss(jax.nn.log_softmax(logits, axis=-1), labels, reduction=reduction)


# Losses that take (logits, class indices).
LOSSES: dict[str, Callable] = {
    "cross_entropy": L.cross_entropy,
    "nll_loss": _nll_of_logits,
    "multi_margin_loss": L.multi_margin_loss,
}

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULES = ("none", "step", "multistep", "exponential", "cosine")
MODELS = ("cnn", "mlp", "rnn", "softmax_regression")


@dataclasses.dataclass
class Config:
  """A training run. The defaults are the notes' recipe, tuned for the offline dataset.

  The recipe of 000_dc5555055295abc4.txt: the CIFAR-10 CNN, cross entropy, SGD,
  StepLR(step_size=5, gamma=0.1) stepped once per epoch, batch 64 with drop_last,
  20 epochs. One change: SGD(lr=0.05, momentum=0.9) instead of SGD(lr=0.01).
  The digits' 1,437 training images make 22 updates an epoch (CIFAR-10's make 781),
  and with lr 0.01 the notes' recipe stays at chance (10.6% test accuracy, measured)
  before StepLR cuts the rate; momentum 0.9 is the notes' own optimizer example
  (``optim.SGD(model.parameters(), lr=0.01, momentum=0.9)``). ``lr=0.01,
  momentum=0`` runs the notes' recipe unchanged.
  """

  model: str = "cnn"
  dataset: str = "digits"
  data_dir: str | None = None
  download: bool = False  # prepare a missing tfds dataset in data_dir first (needs TensorFlow)
  loss: str = "cross_entropy"
  reduction: str = "mean"
  optimizer: str = "sgd"
  lr: float = 0.05
  momentum: float = 0.9
  weight_decay: float = 0.0
  nesterov: bool = False
  betas: tuple[float, float] = (0.9, 0.999)
  schedule: str = "step"
  step_size: int = 5
  gamma: float = 0.1
  milestones: tuple[int, ...] = (10, 15)
  t_max: int = 20
  schedule_per: str = "epoch"  # 'batch' reproduces the notes' per-batch scheduler.step()
  epochs: int = 20
  batch_size: int = 64
  seed: int = 0
  scan_epoch: bool = False
  # Where the dataset lives while training: 'device' (put there once, split over
  # the devices), 'host' (batches prefetched), or 'auto' (the device if it fits).
  data_placement: str = "auto"
  # torch.autocast's mixed precision: 'float32', 'bf16' or 'fp16' (with GradScaler).
  precision: str = "float32"
  eval_batch_size: int = 500
  out_dir: str | None = None  # config.json, metrics, curves.png, TensorBoard, checkpoints
  keep: int = 3  # checkpoints kept (the last ones)
  progress: str = "bar"  # 'bar' | 'lines' | 'quiet' | 'json'
  # What a NaN or infinite loss or gradient does: 'stop' raises NonFiniteError at
  # the end of the epoch, without checkpointing it; 'skip' drops that update.
  nan_policy: str = "stop"

  def validate(self) -> None:
    """Raises ``ValueError`` naming the first field with a bad value."""
    choices = {"model": MODELS, "loss": tuple(LOSSES), "reduction": ("mean", "sum"),
               "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "schedule_per": ("epoch", "batch"),
               "progress": MODES, "nan_policy": NAN_POLICIES,
               "data_placement": pipeline.PLACEMENTS, "precision": tuple(amp.PRECISIONS)}
    for name, allowed in choices.items():
      value = getattr(self, name)
      if value not in allowed:
        raise ValueError(f"{name}={value!r} is not valid; expected one of {', '.join(allowed)}")
    for name in ("epochs", "batch_size", "step_size", "t_max", "eval_batch_size", "keep"):
      value = getattr(self, name)
      if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not self.lr >= 0:
      raise ValueError(f"lr must be non-negative, got {self.lr}")


@dataclasses.dataclass
class EpochResult:
  """What one epoch reports; ``train_loss`` is the mean over examples."""

  epoch: int
  lr: float
  train_loss: float
  train_acc: float
  test_loss: float
  test_acc: float
  running_loss: float
  seconds: float
  skipped: int = 0  # updates skipped for a non-finite loss or gradient (nan_policy='skip')


class NonFiniteError(FloatingPointError):
  """A NaN or infinite loss or gradient stopped the run (``nan_policy='stop'``).

  Attributes:
    epoch: the epoch (1-based) the first bad step fell in; it is not checkpointed.
    step: the global step (1-based update number) of the first bad step.
    batch: that step's batch within the epoch (1-based).
    last_checkpoint: the last saved (good) epoch, or ``None``.
  """

  def __init__(self, message: str, *, epoch: int, step: int, batch: int,
               last_checkpoint: int | None):
    super().__init__(message)
    self.epoch, self.step, self.batch = epoch, step, batch
    self.last_checkpoint = last_checkpoint


def _field_value(name: str, value, source: str):
  """``value`` for Config field ``name``, or ValueError naming it and the expected type."""
  default = getattr(Config(), name)
  if value is None and default is None:  # the optional folders
    return value
  if isinstance(default, bool):
    ok = isinstance(value, bool)
  elif isinstance(default, float):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
  elif isinstance(default, int):
    ok = isinstance(value, int) and not isinstance(value, bool)
  elif isinstance(default, tuple):
    ok = isinstance(value, (list, tuple)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    value = tuple(value) if ok else value
  else:  # str, or None for the optional folders
    ok = isinstance(value, str)
  if not ok:
    expected = type(default).__name__ if default is not None else "str"
    raise ValueError(f"{source}: {name} must be a {expected}, got {value!r}")
  return value


def config_values(raw: Mapping, *, source: str, allow_unknown: bool) -> dict:
  """Checked ``Config`` field values from a mapping: a TOML file, a saved config.json.

  Keys may use dashes as the flags do; JSON's lists become the tuples ``Config``
  holds. A wrong type raises ``ValueError`` naming ``source``, the key and the
  expected type; so does an unknown key unless ``allow_unknown`` (a run saved by
  an older jaxtrain may hold keys ``Config`` no longer has).
  """
  fields = {f.name for f in dataclasses.fields(Config)}
  values = {}
  for key, value in raw.items():
    name = key.replace("-", "_")
    if name not in fields:
      if allow_unknown:
        continue
      raise ValueError(f"{source}: unknown key {key!r}; known keys: {', '.join(sorted(fields))}")
    values[name] = _field_value(name, value, source)
  return values


def build_model(name: str, data: Dataset, seed: int) -> nnx.Module:
  """The model ``name`` sized for ``data``'s images and classes."""
  h, w, c = data.image_shape
  rngs = nnx.Rngs(seed)
  k = data.num_classes
  if name == "cnn":
    # Three 2x2 poolings floor the side as torch's MaxPool2d does (28 -> 14 -> 7 -> 3).
    if h != w or h < 8:
      raise ValueError(f"model='cnn' needs square images of at least 8x8, got {h}x{w}")
    return models.CNN(in_channels=c, image_size=h, num_classes=k, rngs=rngs)
  if name == "mlp":
    return models.MLP(in_features=h * w * c, num_classes=k, rngs=rngs)
  if name == "rnn":  # the image's rows are the sequence, as in 001_42dfbdd5dad21a82.txt
    return models.RNNClassifier(input_size=w * c, num_classes=k, rngs=rngs)
  if name == "softmax_regression":
    return models.SoftmaxRegression(in_features=h * w * c, num_classes=k, rngs=rngs)
  raise ValueError(f"model={name!r} is not valid; expected one of {', '.join(MODELS)}")


def build_schedule(config: Config, steps_per_epoch: int) -> float | optax.Schedule:
  """The learning rate: a float, or a torch scheduler as an optax schedule."""
  per = steps_per_epoch if config.schedule_per == "epoch" else 1
  if config.schedule == "none":
    return config.lr
  if config.schedule == "step":
    return optim.step_lr(config.lr, config.step_size, config.gamma, steps_per_epoch=per)
  if config.schedule == "multistep":
    return optim.multistep_lr(config.lr, config.milestones, config.gamma, steps_per_epoch=per)
  if config.schedule == "exponential":
    return optim.exponential_lr(config.lr, config.gamma, steps_per_epoch=per)
  return optim.cosine_annealing_lr(config.lr, config.t_max, steps_per_epoch=per)


def build_optimizer(config: Config, lr) -> optax.GradientTransformation:
  """``config.optimizer`` with the hyper-parameters of ``config`` that it takes."""
  wd = config.weight_decay
  if config.optimizer == "sgd":
    return optim.sgd(lr, momentum=config.momentum, weight_decay=wd, nesterov=config.nesterov)
  if config.optimizer == "adam":
    return optim.adam(lr, betas=config.betas, weight_decay=wd)
  if config.optimizer == "adamw":
    return optim.adamw(lr, betas=config.betas, weight_decay=wd)
  if config.optimizer == "rmsprop":
    return optim.rmsprop(lr, momentum=config.momentum, weight_decay=wd)
  return optim.adagrad(lr, weight_decay=wd)


def build_training(config: Config, data: Dataset):
  """``(model, lr, optimizer, steps_per_epoch)`` of a run: what ``fit`` trains with.

  A checkpoint restores only into this structure (a schedule's count is part of
  the optimizer's state), so evaluation rebuilds a run with this function too.
  """
  n = len(data.train.labels)
  steps = num_batches(n, config.batch_size, drop_last=True)
  if steps == 0:
    raise ValueError(
        f"batch_size={config.batch_size} is larger than the {n} training examples of "
        f"{config.dataset!r} (batches drop the last partial batch)"
    )
  model = build_model(config.model, data, config.seed)
  lr = build_schedule(config, steps)
  optimizer = build_optimizer(config, lr)
  if config.precision == "fp16":
    # torch's AMP recipe: float16 autocast with a GradScaler at its defaults.
    optimizer = optim.grad_scaler(optimizer)
  return model, lr, optimizer, steps


def fit(config: Config, *, log: Callable[[str], None] | None = None, data: Dataset | None = None,
        resume: bool = False, mesh: Mesh | None = None) -> tuple[TrainState, list[EpochResult]]:
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
  config.validate()
  if resume and not config.out_dir:
    raise ValueError("resume needs out_dir: the folder of the run to continue")
  mesh = parallel.data_mesh() if mesh is None else mesh
  parallel.check_batch_size(config.batch_size, mesh)
  main = parallel.is_main_process()
  data = data if data is not None else load_dataset(config.dataset, data_dir=config.data_dir,
                                                  download=config.download)
  model, lr, optimizer, steps = build_training(config, data)
  placement = pipeline.choose_placement(config.data_placement, data, mesh,
                                        scan_epoch=config.scan_epoch)
  state = create_train_state(model, optimizer, mesh=mesh)
  results: list[EpochResult] = []
  checkpoints = None
  if config.out_dir and main:
    # Asynchronous: a save returns once the state is copied to the host, and orbax
    # writes (and atomically commits) it while the next epoch trains.
    checkpoints = Checkpointer(os.path.join(config.out_dir, "checkpoints"), keep=config.keep,
                               asynchronous=True)
  if resume:
    state, results = _resume(config, state, checkpoints)
  programs = pipeline.Programs(model, LOSSES[config.loss], optimizer, config.reduction,
                               config.nan_policy, config.precision)
  feed = pipeline.Pipeline(data, programs, placement=placement, mesh=mesh,
                           batch_size=config.batch_size, eval_batch_size=config.eval_batch_size,
                           seed=config.seed, scan_epoch=config.scan_epoch)

  # Other processes print nothing and write nothing.
  reporter = Reporter(out_dir=config.out_dir if main else None,
                      mode="quiet" if log or not main else config.progress,
                      epochs=config.epochs, config=dataclasses.asdict(config), history=results)
  try:
    for epoch in range(len(results), config.epochs):
      start = time.perf_counter()
      lr_now = float(jax.device_get(lr(state.step)) if callable(lr) else lr)
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
          epoch=epoch + 1, lr=lr_now,
          # nan_policy='skip': the means are over the applied updates' examples.
          train_loss=float(t["loss_sum"] / count), train_acc=float(t["correct"] / count),
          test_loss=test_loss, test_acc=test_acc, running_loss=float(t["loss"]),
          seconds=time.perf_counter() - start,
          skipped=bad + int(t.get("scaler_skipped", 0)),
      )
      results.append(result)
      if checkpoints:  # first: whatever happens next, this epoch is being kept
        checkpoints.save(epoch + 1, state, meta={
            "config": dataclasses.asdict(config), "epoch": epoch + 1,
            "history": [dataclasses.asdict(r) for r in results]})
      line = format_epoch(result, config.epochs)
      reporter.end_epoch(result, line=line)
      if log and main:
        log(line)
  finally:
    reporter.close()
    if checkpoints:
      checkpoints.close()  # waits for the last write
  if config.out_dir and main:
    save_params(state, os.path.join(config.out_dir, "params.npz"))
  return state, results


def _resume(config: Config, state: TrainState,
            checkpoints: Checkpointer | None) -> tuple[TrainState, list[EpochResult]]:
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
            "see the run folder on a shared filesystem")
    if latest is None:
      return state, []
    state, meta = reader.restore(state)
  finally:
    if reader is not None and reader is not checkpoints:
      reader.close()
  return state, [EpochResult(**r) for r in meta["history"]]


def _raise_nonfinite(config: Config, epoch: int, steps: int, first: int, bad: int,
                     checkpoints: Checkpointer | None):
  """Raises NonFiniteError for batch ``first`` (0-based) of ``epoch`` (0-based)."""
  if checkpoints:
    checkpoints.wait()  # the previous epoch's asynchronous save: on disk before it is named
  last = checkpoints.latest_epoch() if checkpoints else None
  step = epoch * steps + first + 1
  if config.nan_policy == "skip":
    what = f"every one of the {steps} updates of epoch {epoch + 1} was skipped (nan_policy='skip')"
  else:
    what = (f"non-finite loss or gradient at epoch {epoch + 1}, step {step} (batch {first + 1} "
            f"of {steps}; {bad} bad step{'s' if bad > 1 else ''} in the epoch)")
  if not checkpoints and config.out_dir and not parallel.is_main_process():
    kept = f"process 0 keeps the checkpoints in {config.out_dir}"
  elif not checkpoints:
    kept = "nothing was checkpointed (no out_dir)"
  elif last is None:
    kept = "no epoch finished, so there is no checkpoint"
  else:
    kept = (f"epoch {epoch + 1} was not checkpointed; the last good checkpoint is epoch {last} "
            f"in {checkpoints.directory}")
  raise NonFiniteError(
      f"{what}; stopped: {kept}. Lower the learning rate (lr={config.lr}) or use "
      "nan_policy='skip' (--nan-policy skip) in a new run",
      epoch=epoch + 1, step=step, batch=first + 1, last_checkpoint=last)


def save_params(state: TrainState, path: str) -> None:
  """The parameters as ``.npz``, one array per path (``'fc1/kernel'``), readable without jax."""
  flat = {"/".join(str(getattr(k, "key", k)) for k in key): np.asarray(v)
          for key, v in jax.tree_util.tree_leaves_with_path(state.params)}
  tmp = path + ".tmp.npz"
  np.savez(tmp, **flat)
  os.replace(tmp, path)  # atomic: a reader never sees half a file


def format_epoch(r: EpochResult, epochs: int) -> str:
  width = len(str(epochs))
  return (f"epoch {r.epoch:{width}d}/{epochs}  lr {r.lr:.2e}  loss {r.train_loss:.4f}  "
          f"train acc {r.train_acc:.4f}  test acc {r.test_acc:.4f}  "
          f"running_loss {r.running_loss:.4f}  ({r.seconds:.1f}s)"
          + (f"  skipped {r.skipped}" if r.skipped else ""))
