"""A training run's configuration: every option declared once, as a field of :class:`Config`.

Each field carries its default, its help and its group (``option(...)``); from
these the command line's flags and ``--help``, the keys of a TOML config file
(the flags' names), the validation and the saved ``config.json`` all derive. The
choices by name (model, dataset, loss, optimizer, schedule) are the dicts of
``jaxtrain.choices`` and ``jaxtrain.data.DATASETS``.

Options that belong to one optimizer or schedule (``betas``, ``milestones``,
...) default to ``None``: "the chosen one's default", torch's (see
``jaxtrain.choices``). :meth:`Config.resolved` fills them in; giving one to a
choice that does not take it is an error, not a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from jaxtrain import amp, choices, pipeline
from jaxtrain.data import DATASETS

# What a NaN or infinite loss or gradient does (train_step.NAN_POLICIES).
NAN_POLICIES = ("stop", "skip")
PROGRESS = ("bar", "lines", "quiet", "json")

# Option groups, in --help's order.
GROUPS = (
  "model and data",
  "loss",
  "optimizer (torch.optim's arguments)",
  "learning-rate schedule (torch.optim.lr_scheduler)",
  "loop",
  "output",
)
_DATA, _LOSS, _OPTIMIZER, _SCHEDULE, _LOOP, _OUTPUT = GROUPS


def option(
  default,
  help: str,
  *,
  group: str,
  flag: str | None = None,  # noqa: A002
  choices=None,
  minimum: float | None = None,
  on_resume: bool = False,
):
  """A ``Config`` field and its declaration.

  Args:
    default: the default (``None`` for an optimizer's or schedule's own default).
    help: one line for ``--help``.
    group: the ``--help`` section.
    flag: the flag's name without ``--`` (default: the field's, dashed), also the
      TOML key.
    choices: a name -> builder dict (or a tuple) whose keys are the allowed values.
    minimum: the smallest allowed number.
    on_resume: whether ``--resume`` may change it (it changes nothing already
      trained: what is printed, where data is read, how long the run goes on).
  """
  return dataclasses.field(
    default=default,
    metadata=dict(
      help=help, group=group, flag=flag, choices=choices, minimum=minimum, on_resume=on_resume
    ),
  )


@dataclasses.dataclass
class Config:
  """A training run. The defaults are the notes' recipe, tuned for the offline dataset.

  The recipe of 000_dc5555055295abc4.txt: the CIFAR-10 CNN, cross entropy, SGD,
  StepLR(step_size=5, gamma=0.1) stepped once per epoch, batch 64 with drop_last,
  20 epochs. One change: SGD(lr=0.05, momentum=0.9) instead of SGD(lr=0.01).
  The digits' 1,437 training images make 22 updates an epoch (CIFAR-10's make 781),
  and with lr 0.01 the notes' recipe stays at chance before StepLR cuts the rate;
  momentum 0.9 is the notes' own optimizer example
  (``optim.SGD(model.parameters(), lr=0.01, momentum=0.9)``). ``lr=0.01,
  momentum=0`` runs the notes' recipe unchanged.
  """

  model: str = option("cnn", "the network", group=_DATA, choices=choices.MODELS)
  dataset: str = option(
    "digits",
    "digits (offline, scikit-learn), mnist, fashion_mnist, cifar10 "
    "(tensorflow-datasets, prepared in --data-dir), synthetic",
    group=_DATA,
    choices=DATASETS,
  )
  data_dir: str | None = option(
    None,
    "where tfds datasets are prepared (default: tfds's, $TFDS_DATA_DIR or ~/tensorflow_datasets)",
    group=_DATA,
    on_resume=True,
  )
  download: bool = option(
    False,
    "download and prepare a missing tfds dataset in --data-dir "
    "first (needs pip install 'jaxtrain[prepare]' and internet)",
    group=_DATA,
    on_resume=True,
  )
  data_placement: str = option(
    "auto",
    "where the dataset lives while training: device (put "
    "there once, split over the devices), host (batches "
    "prefetched), auto (the device if it fits in half its free "
    "memory)",
    group=_DATA,
    choices=pipeline.PLACEMENTS,
    on_resume=True,
  )
  loss: str = option(
    "cross_entropy",
    "a jaxtrain.losses function of (logits, class indices)",
    group=_LOSS,
    choices=choices.LOSSES,
  )
  reduction: str = option(
    "mean", "'sum' scales the gradient by the batch size", group=_LOSS, choices=("mean", "sum")
  )
  optimizer: str = option(
    "sgd",
    "a jaxtrain.optim optimizer (torch's defaults; sgd's are the recipe's)",
    group=_OPTIMIZER,
    choices=choices.OPTIMIZERS,
  )
  lr: float | None = option(
    None,
    "learning rate (the notes' recipe uses 0.01 with --momentum 0)",
    group=_OPTIMIZER,
    minimum=0.0,
  )
  momentum: float | None = option(None, "momentum factor", group=_OPTIMIZER, minimum=0.0)
  weight_decay: float | None = option(
    None, "L2 penalty (decoupled for adamw)", group=_OPTIMIZER, minimum=0.0
  )
  nesterov: bool | None = option(None, "Nesterov momentum", group=_OPTIMIZER)
  betas: tuple[float, float] | None = option(None, "Adam's coefficients", group=_OPTIMIZER)
  schedule: str = option(
    "step",
    "StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, or none",
    group=_SCHEDULE,
    choices=choices.SCHEDULES,
  )
  step_size: int | None = option(None, "epochs between decays", group=_SCHEDULE, minimum=1)
  gamma: float | None = option(None, "decay factor", group=_SCHEDULE, minimum=0.0)
  milestones: tuple[int, ...] | None = option(None, "epochs at which to decay", group=_SCHEDULE)
  t_max: int | None = option(
    None, "half the cosine's period, in epochs", group=_SCHEDULE, minimum=1
  )
  schedule_per: str = option(
    "epoch",
    "when scheduler.step() runs; 'batch' reproduces the notes' mistake",
    group=_SCHEDULE,
    choices=("epoch", "batch"),
  )
  epochs: int = option(
    20,
    "passes over the training set (on --resume: more extends the run)",
    group=_LOOP,
    minimum=1,
    on_resume=True,
  )
  batch_size: int = option(
    64, "examples per update; the last partial batch is dropped", group=_LOOP, minimum=1
  )
  eval_batch_size: int = option(
    500, "examples per evaluation batch", group=_LOOP, minimum=1, on_resume=True
  )
  seed: int = option(
    0, "initialisation and data order (a function of seed and epoch)", group=_LOOP, minimum=0
  )
  scan_epoch: bool = option(
    False, "run each epoch as one compiled program (data on the device)", group=_LOOP
  )
  precision: str = option(
    "float32",
    "torch.autocast mixed precision: convolutions and "
    "matmuls in bf16 or fp16 (fp16 with torch's GradScaler), parameters "
    "and losses in float32",
    group=_LOOP,
    choices=tuple(amp.PRECISIONS),
  )
  nan_policy: str = option(
    "stop",
    "on a NaN/inf loss or gradient: stop (exit 3, the last good "
    "epoch stays checkpointed) or skip the update and count it",
    group=_LOOP,
    choices=NAN_POLICIES,
  )
  out_dir: str | None = option(
    None,
    "the run's folder (default: runs/<model>-<dataset>-"
    "<date-time>); it must not hold a run already",
    group=_OUTPUT,
    flag="out",
  )
  overwrite: bool = option(
    False,
    "replace the run already in --out (its checkpoints, metrics and curves are deleted)",
    group=_OUTPUT,
  )
  keep: int = option(3, "checkpoints kept, the last ones", group=_OUTPUT, minimum=1, on_resume=True)
  progress: str = option(
    "bar",
    "bar: a progress bar (lines when not a terminal) and a line per "
    "epoch; lines; quiet; json: a JSON object per epoch",
    group=_OUTPUT,
    choices=PROGRESS,
    on_resume=True,
  )

  # ------------------------------------------------------------------ defaults

  def resolved(self) -> Config:
    """A copy whose ``None`` options hold the chosen optimizer's or schedule's defaults.

    Raises:
      ValueError: an option the chosen optimizer or schedule does not take was set
        (it would be ignored), or an unknown optimizer or schedule name.
    """
    values = {}
    for field, registry in (("optimizer", choices.OPTIMIZERS), ("schedule", choices.SCHEDULES)):
      name = getattr(self, field)
      _check_choice(field, name)
      taken = registry[name].options
      for option_name in owned_options(registry):
        value = getattr(self, option_name)
        if value is not None and option_name not in taken:
          owners = [k for k, c in registry.items() if option_name in c.options]
          raise ValueError(
            f"{_flag(option_name)} applies to --{field} {', '.join(owners)}, not to this run's "
            f"--{field} {name}: leave it out (it would be ignored)"
          )
      values.update(
        {k: v for k, v in registry[name].defaults().items() if getattr(self, k) is None}
      )
    return dataclasses.replace(self, **values)

  def validate(self) -> None:
    """Raises ``ValueError`` (``TypeError`` for a wrong type) naming the first bad option."""
    for field in dataclasses.fields(self):
      _check_value(field, getattr(self, field.name), "")

  def to_dict(self) -> dict[str, Any]:
    """The options as saved in a run's ``config.json`` (JSON types: tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

  @classmethod
  def from_mapping(cls, raw: Mapping[str, Any], *, source: str, saved: bool = False) -> Config:
    """A ``Config`` from a TOML file's keys or a saved ``config.json``.

    Keys are the flags' names (``batch-size`` or ``batch_size``; ``out`` or
    ``out_dir``); lists become tuples. An unknown key or a wrong type raises
    ``ValueError`` naming ``source`` and the key. ``saved``: a run's own
    ``config.json`` (written by this or an older jaxtrain): keys it no longer
    has are dropped, and so are options its optimizer or schedule does not take
    (older versions saved them all).
    """
    names = {flag_name(f): f.name for f in dataclasses.fields(cls)}
    names.update({f.name: f.name for f in dataclasses.fields(cls)})
    values = {}
    for key, value in raw.items():
      name = names.get(str(key).replace("_", "-")) or names.get(str(key))
      if name is None:
        if saved:
          continue
        raise ValueError(
          f"{source}: unknown key {key!r}; known keys: "
          f"{', '.join(sorted(flag_name(f) for f in dataclasses.fields(cls)))}"
        )
      _check_value(_field(name), value, f"{source}: ")
      values[name] = tuple(value) if isinstance(value, list) else value
    config = cls(**values)
    if saved:
      for registry, choice in (
        (choices.OPTIMIZERS, config.optimizer),
        (choices.SCHEDULES, config.schedule),
      ):
        taken = registry[choice].options if choice in registry else ()
        config = dataclasses.replace(
          config, **{k: None for k in owned_options(registry) if k not in taken}
        )
    return config


def owned_options(registry: Mapping[str, choices.Choice]) -> list[str]:
  """The options that belong to some entry of an optimizer or schedule registry."""
  return sorted({name for c in registry.values() for name in c.options})


def flag_name(field: dataclasses.Field) -> str:
  """The field's command-line flag without ``--``, also its TOML key."""
  return field.metadata.get("flag") or field.name.replace("_", "-")


def _field(name: str) -> dataclasses.Field:
  return next(f for f in dataclasses.fields(Config) if f.name == name)


def _flag(name: str) -> str:
  return "--" + flag_name(_field(name))


def _check_choice(name: str, value) -> None:
  _check_value(_field(name), value, "")


def base_type(field: dataclasses.Field):
  """The field's type without ``| None``."""
  hint = typing.get_type_hints(Config)[field.name]
  if typing.get_origin(hint) in (typing.Union, types.UnionType):
    return next(a for a in typing.get_args(hint) if a is not type(None))
  return hint


def _check_value(field: dataclasses.Field, value, prefix: str) -> None:
  """Raises ValueError/TypeError unless ``value`` suits ``field`` (type, choices, minimum)."""
  name = field.name
  if value is None:
    if field.default is None:
      return
    raise TypeError(f"{prefix}{name} must be set, got None")
  kind = base_type(field)
  origin = typing.get_origin(kind)
  if kind is bool:
    ok = isinstance(value, bool)
  elif kind is float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
  elif kind is int:
    ok = isinstance(value, int) and not isinstance(value, bool)
  elif origin is tuple:
    item = typing.get_args(kind)[0]
    number = (int,) if item is int else (int, float)
    ok = isinstance(value, (list, tuple)) and all(
      isinstance(v, number) and not isinstance(v, bool) for v in value
    )
    length = len(typing.get_args(kind)) if Ellipsis not in typing.get_args(kind) else None
    if ok and length is not None and len(value) != length:
      raise ValueError(f"{prefix}{name} must be {length} numbers, got {value!r}")
  else:
    ok = isinstance(value, str)
  if not ok:
    expected = (
      ("list of " + typing.get_args(kind)[0].__name__ + "s") if origin is tuple else kind.__name__
    )
    raise TypeError(f"{prefix}{name} must be a {expected}, got {value!r}")
  allowed = field.metadata.get("choices")
  if allowed is not None and value not in allowed:
    raise ValueError(f"{prefix}{name}={value!r} is not valid; expected one of {', '.join(allowed)}")
  minimum = field.metadata.get("minimum")
  if minimum is not None:
    numbers = value if isinstance(value, tuple) else (value,)
    if not all(v >= minimum for v in numbers):  # also false for NaN
      bound = {(int, 1): "a positive integer", (int, 0): "a non-negative integer"}.get(
        (kind, minimum), "non-negative" if minimum == 0 else f"at least {minimum}"
      )
      raise ValueError(f"{prefix}{name} must be {bound}, got {value!r}")
