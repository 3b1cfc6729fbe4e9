"""What a run can be made of, by name: models, losses, optimizers and schedules.

Datasets are ``jaxtrain.data.DATASETS``.

Each is a plain dict from the name the command line and ``Config`` use to what
builds it. Adding one is one entry here: ``Config``'s choices, ``--help`` and
the validation read these dicts; an unknown name is an error that lists them.

An optimizer or schedule entry is a :class:`Choice`: its builder and the
``Config`` options it takes (``Config`` refuses an option that the chosen
optimizer or schedule does not take, rather than ignoring it). The options'
defaults are those of the builder's signature, which are torch's
(``jaxtrain.optim`` follows ``torch.optim``), except where an entry names
others: SGD's are the notes' recipe, and torch's schedulers require some
arguments that the recipe supplies.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
from flax import nnx

import jaxtrain.losses as L
from jaxtrain import models, optim
from jaxtrain.data import Dataset


@dataclasses.dataclass(frozen=True)
class Choice:
  """An optimizer or schedule: ``build(lr, **options)`` and the ``Config`` options it takes.

  Attributes:
    build: the builder, called with ``Config``'s option names as keywords.
    options: the ``Config`` options it takes.
    recipe: defaults that replace the builder's own (``None`` marks a required
      argument whose default the recipe supplies).
  """

  build: Callable
  options: tuple[str, ...] = ()
  recipe: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def defaults(self) -> dict[str, Any]:
    """Each option's default: ``recipe``'s, else the builder's signature default (torch's)."""
    params = inspect.signature(self.build).parameters
    out = {}
    for name in self.options:
      if name in self.recipe:
        out[name] = self.recipe[name]
      elif name in params and params[name].default is not inspect.Parameter.empty:
        out[name] = params[name].default
      else:
        raise TypeError(f"{self.build.__name__} has no default for {name!r}; give it in recipe")
    return out


# ---------------------------------------------------------------------------- models


def _cnn(data: Dataset, rngs: nnx.Rngs) -> nnx.Module:
  h, w, c = data.image_shape
  # Three 2x2 poolings floor the side as torch's MaxPool2d does (28 -> 14 -> 7 -> 3).
  if h != w or h < 8:
    raise ValueError(f"model='cnn' needs square images of at least 8x8, got {h}x{w}")
  return models.CNN(in_channels=c, image_size=h, num_classes=data.num_classes, rngs=rngs)


def _mlp(data: Dataset, rngs: nnx.Rngs) -> nnx.Module:
  h, w, c = data.image_shape
  return models.MLP(in_features=h * w * c, num_classes=data.num_classes, rngs=rngs)


def _rnn(data: Dataset, rngs: nnx.Rngs) -> nnx.Module:
  h, w, c = data.image_shape  # the image's rows are the sequence, as in 001_42dfbdd5dad21a82.txt
  return models.RNNClassifier(input_size=w * c, num_classes=data.num_classes, rngs=rngs)


def _softmax_regression(data: Dataset, rngs: nnx.Rngs) -> nnx.Module:
  h, w, c = data.image_shape
  return models.SoftmaxRegression(in_features=h * w * c, num_classes=data.num_classes, rngs=rngs)


# name -> build(data, rngs): the model sized for the dataset's images and classes.
MODELS: dict[str, Callable[[Dataset, nnx.Rngs], nnx.Module]] = {
  "cnn": _cnn,
  "mlp": _mlp,
  "rnn": _rnn,
  "softmax_regression": _softmax_regression,
}


# ---------------------------------------------------------------------------- losses


def _nll_of_logits(logits, labels, *, reduction="mean"):
  # NLLLoss expects log-probabilities: the notes' models end in a Linear layer, so
  # this is nn.LogSoftmax followed by nn.NLLLoss (equal to cross_entropy).
  return L.nll_loss(jax.nn.log_softmax(logits, axis=-1), labels, reduction=reduction)


# name -> loss(logits, class indices, *, reduction): the losses that take class indices.
LOSSES: dict[str, Callable] = {
  "cross_entropy": L.cross_entropy,
  "nll_loss": _nll_of_logits,
  "multi_margin_loss": L.multi_margin_loss,
}


# ------------------------------------------------------------------------ optimizers

# The main job's recipe: SGD(lr=0.05, momentum=0.9) (the notes' SGD(lr=0.01) stays at
# chance on the digits' 22 updates an epoch: see docs/cli.md). torch's SGD defaults
# are lr=1e-3, momentum=0.
SGD_RECIPE = {"lr": 0.05, "momentum": 0.9}

OPTIMIZERS: dict[str, Choice] = {
  "sgd": Choice(optim.sgd, ("lr", "momentum", "weight_decay", "nesterov"), SGD_RECIPE),
  "adam": Choice(optim.adam, ("lr", "betas", "weight_decay")),
  "adamw": Choice(optim.adamw, ("lr", "betas", "weight_decay")),
  "rmsprop": Choice(optim.rmsprop, ("lr", "momentum", "weight_decay")),
  "adagrad": Choice(optim.adagrad, ("lr", "weight_decay")),
}


# ------------------------------------------------------------------------- schedules


def _constant(lr, *, steps_per_epoch):
  del steps_per_epoch
  return lr


def _cosine(lr, t_max, *, steps_per_epoch):
  return optim.cosine_annealing_lr(lr, t_max, steps_per_epoch=steps_per_epoch)


# torch's StepLR, MultiStepLR, ExponentialLR and CosineAnnealingLR require step_size,
# milestones, gamma and T_max: the recipe's values (StepLR(5, 0.1) over 20 epochs).
SCHEDULES: dict[str, Choice] = {
  "none": Choice(_constant),
  "step": Choice(optim.step_lr, ("step_size", "gamma"), {"step_size": 5}),
  "multistep": Choice(optim.multistep_lr, ("milestones", "gamma"), {"milestones": (10, 15)}),
  "exponential": Choice(optim.exponential_lr, ("gamma",), {"gamma": 0.1}),
  "cosine": Choice(_cosine, ("t_max",), {"t_max": 20}),
}
