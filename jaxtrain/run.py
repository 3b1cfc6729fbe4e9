"""One place that builds a run from its config: what ``loop.fit`` trains and ``evaluate`` restores.

``build_run(config, data)`` resolves the config (the chosen optimizer's and
schedule's defaults), loads the dataset unless given, and builds the model, the
learning-rate schedule, the optimizer (wrapped in ``optim.grad_scaler`` for
``precision='fp16'``, torch's AMP recipe) and the loss. A checkpoint restores
only into the structure it was saved from (a schedule's count is part of the
optimizer's state), so evaluation rebuilds a run with this same function.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import optax
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from jaxtrain import choices, optim, pipeline
from jaxtrain.config import Config
from jaxtrain.data import Dataset, load_dataset, num_batches
from jaxtrain.train_step import TrainState, create_train_state


@dataclasses.dataclass
class Run:
  """What a config builds.

  Attributes:
    config: the resolved config (every option of its optimizer and schedule set).
    data: the dataset.
    model: the model, initialised from ``config.seed``.
    loss_fn: ``loss(logits, labels, *, reduction)``.
    lr: the learning rate: a float, or a schedule of the update count.
    optimizer: the optax transformation.
    steps_per_epoch: updates per epoch (the last partial batch is dropped).
  """

  config: Config
  data: Dataset
  model: nnx.Module
  loss_fn: Callable
  lr: float | optax.Schedule
  optimizer: optax.GradientTransformation
  steps_per_epoch: int

  def initial_state(self, mesh: Mesh) -> TrainState:
    """The state before the first update, replicated on ``mesh``."""
    return create_train_state(self.model, self.optimizer, mesh=mesh)

  def pipeline(self, mesh: Mesh) -> pipeline.Pipeline:
    """The compiled programs that train and evaluate this run's epochs on ``mesh``."""
    c = self.config
    placement = pipeline.choose_placement(
      c.data_placement, self.data, mesh, scan_epoch=c.scan_epoch
    )
    programs = pipeline.Programs(
      self.model, self.loss_fn, self.optimizer, c.reduction, c.nan_policy, c.precision
    )
    return pipeline.Pipeline(
      self.data,
      programs,
      placement=placement,
      mesh=mesh,
      batch_size=c.batch_size,
      eval_batch_size=c.eval_batch_size,
      seed=c.seed,
      scan_epoch=c.scan_epoch,
    )


def build_run(config: Config, data: Dataset | None = None) -> Run:
  """The run ``config`` describes (see the module docstring).

  Args:
    config: the run's config; resolved and validated here.
    data: the dataset, if already loaded (else ``load_dataset(config.dataset)``,
      prepared first with ``config.download``).

  Raises:
    ValueError: a bad config, or a batch larger than the training split.
  """
  config = config.resolved()
  config.validate()
  if data is None:
    data = _load(config)
  n = len(data.train)
  steps = num_batches(n, config.batch_size, drop_last=True)
  if steps == 0:
    raise ValueError(
      f"batch_size={config.batch_size} is larger than the {n} training examples of "
      f"{config.dataset!r} (batches drop the last partial batch)"
    )
  model = choices.MODELS[config.model](data, nnx.Rngs(config.seed))
  schedule = choices.SCHEDULES[config.schedule]
  per = steps if config.schedule_per == "epoch" else 1
  lr = schedule.build(config.lr, **_options(config, schedule), steps_per_epoch=per)
  optimizer_choice = choices.OPTIMIZERS[config.optimizer]
  options = {k: v for k, v in _options(config, optimizer_choice).items() if k != "lr"}
  optimizer = optimizer_choice.build(lr, **options)
  if config.precision == "fp16":
    # torch's AMP recipe: float16 autocast with a GradScaler at its defaults.
    optimizer = optim.grad_scaler(optimizer)
  return Run(config, data, model, choices.LOSSES[config.loss], lr, optimizer, steps)


def _load(config: Config) -> Dataset:
  """The run's dataset; with ``download`` and several processes, process 0 prepares it."""
  if config.download and jax.process_count() > 1:
    # One writer: the others would race it into the same (shared) data_dir.
    if jax.process_index() == 0:
      load_dataset(config.dataset, data_dir=config.data_dir, download=True)
    multihost_utils.sync_global_devices("jaxtrain_download")
  return load_dataset(config.dataset, data_dir=config.data_dir, download=config.download)


def _options(config: Config, choice: choices.Choice) -> dict:
  return {name: getattr(config, name) for name in choice.options}
