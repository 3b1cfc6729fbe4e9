"""``torch.optim.lr_scheduler``'s schedules as optax schedules.

An optax schedule is a function of the update count ``k`` (0, 1, 2, ...: the
number of optimizer updates made before this one). A torch scheduler is a
function of its *epoch*, the number of ``scheduler.step()`` calls so far. Users
call ``scheduler.step()`` once per epoch, after the epoch's last
``optimizer.step()``; so with ``n`` updates per epoch, update ``k`` runs in epoch
``k // n``. Every schedule here takes ``steps_per_epoch=n`` to say so::

  # torch: for epoch ...: (for batch ...: opt.step()); scheduler.step()
  step_lr(0.01, step_size=5, steps_per_epoch=len(dataloader))

The default ``steps_per_epoch=1`` means one ``scheduler.step()`` per update:
``scheduler.step()`` inside the batch loop. That reproduces the mistake of
stepping ``StepLR(step_size=5, gamma=0.1)`` per batch, where the learning rate
is divided by 10 every 5 *batches* and is below 1e-30 after 150 batches.

``lr(k)`` equals torch's ``get_last_lr()`` at that optimizer step, computed in
float32 within 1e-6 relative of torch's float64 values for every hyper-parameter
value (torch multiplies its chainable forms recursively; the closed forms here
are the same numbers), or below 1e-30 where torch's value is.

Arguments are checked when the schedule is built (torch checks almost none):
``TypeError`` for a non-number ``lr``, ``gamma`` or ``eta_min`` (a bool is not a
number) and for a non-integer ``step_size``, ``T_max``, milestone or
``steps_per_epoch`` (``2.0`` included); ``ValueError`` for a negative, NaN or
infinite ``lr``, ``gamma`` or ``eta_min`` (torch would go on with negative or NaN
learning rates), a count below 1 and a negative milestone.
With gradient accumulation (:func:`jaxtrain.optim.accumulate`) ``k`` counts the
real updates, so ``steps_per_epoch`` is the number of updates, not of
micro-batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxtrain.optim import _checks
from jaxtrain.optim._transforms import powers


def _check_lr(fn: str, lr) -> float:
  """The initial learning rate: a concrete number, finite and >= 0 (torch's wording)."""
  x = _checks.concrete_number(fn, "lr", lr)
  # torch's optimizers check `0.0 <= lr`; a schedule also needs it finite (inf * 0
  # is NaN in the closed forms where torch's recursion would keep inf).
  if not (math.isfinite(x) and x >= 0.0):
    raise ValueError(f"Invalid learning rate: {lr}; expected a finite number >= 0")
  return x


def _check_gamma(fn: str, gamma) -> float:
  # torch checks nothing; a negative gamma makes negative learning rates, which
  # every torch optimizer's constructor rejects, and NaN or inf NaN or inf ones.
  return _checks.finite_nonnegative(fn, "gamma", gamma)


def _check_milestones(milestones) -> list[int]:
  fn = "multistep_lr"
  expected = "a sequence of integers"
  if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Iterable):
    raise TypeError(f"{fn}: milestones must be {expected}, got {_checks.describe(milestones)}")
  marks = []
  for i, m in enumerate(milestones):
    m = _checks.integer(fn, f"milestones[{i}]", m)
    # torch never reaches a negative milestone (epochs count from 0); here it would
    # count from the start.
    if m < 0:
      raise ValueError(f"{fn}: milestones[{i}] must be >= 0, got {m}")
    marks.append(m)
  return marks


def _epoch(count: jax.typing.ArrayLike, steps_per_epoch: int) -> jax.Array:
  """The torch epoch (``scheduler.step()`` calls so far) of update ``count``."""
  return jnp.asarray(count, jnp.int32) // steps_per_epoch


def step_lr(
  lr: float, step_size: int, gamma: float = 0.1, *, steps_per_epoch: int = 1
) -> optax.Schedule:
  """``torch.optim.lr_scheduler.StepLR``: decay by ``gamma`` every ``step_size`` epochs.

  ``lr(k) = lr * gamma ** (epoch // step_size)``, ``epoch = k // steps_per_epoch``.

  Args:
    lr: the initial learning rate (torch's optimizer ``lr``).
    step_size: period of the decay, in epochs (``scheduler.step()`` calls).
    gamma: multiplicative factor of the decay.
    steps_per_epoch: optimizer updates per ``scheduler.step()``; 1 (the default)
      is torch's scheduler stepped after every update.

  Returns:
    An optax schedule: update count -> float32 learning rate.

  Example:
    The notes' ``StepLR(optim, step_size=5, gamma=0.1)`` stepped once per epoch of
    two updates: epochs 0-4 at 0.01, 5-9 at 0.001, then 0.0001.

    >>> schedule = step_lr(0.01, step_size=5, gamma=0.1, steps_per_epoch=2)
    >>> [round(float(schedule(k)), 6) for k in (0, 9, 10, 19, 20)]
    [0.01, 0.01, 0.001, 0.001, 0.0001]
  """
  lr = _check_lr("step_lr", lr)
  step_size = _checks.positive_integer("step_lr", "step_size", step_size)
  gamma = _check_gamma("step_lr", gamma)
  steps_per_epoch = _checks.positive_integer("step_lr", "steps_per_epoch", steps_per_epoch)

  def schedule(count):
    return powers(gamma, _epoch(count, steps_per_epoch) // step_size, scale=lr)

  return schedule


def multistep_lr(
  lr: float, milestones: Iterable[int], gamma: float = 0.1, *, steps_per_epoch: int = 1
) -> optax.Schedule:
  """``torch.optim.lr_scheduler.MultiStepLR``: decay by ``gamma`` at each milestone epoch.

  ``lr(k) = lr * gamma ** (number of milestones <= epoch)``, counting a repeated
  milestone as often as it is repeated (torch keeps a ``Counter``).

  Args:
    lr: the initial learning rate.
    milestones: epochs at which to decay (any order, repeats allowed).
    gamma: multiplicative factor of the decay.
    steps_per_epoch: optimizer updates per ``scheduler.step()``.

  Returns:
    An optax schedule: update count -> float32 learning rate.
  """
  lr = _check_lr("multistep_lr", lr)
  marks = sorted(_check_milestones(milestones))
  gamma = _check_gamma("multistep_lr", gamma)
  steps_per_epoch = _checks.positive_integer("multistep_lr", "steps_per_epoch", steps_per_epoch)
  # The only values the schedule takes, each computed in float64 and rounded once.
  with np.errstate(over="ignore", under="ignore"):
    values = np.float64(lr) * np.power(np.float64(gamma), np.arange(len(marks) + 1))
    values = jnp.asarray(values.astype(np.float32))
  marks_array = jnp.asarray(marks, jnp.int32)

  def schedule(count):
    passed = jnp.sum(marks_array <= _epoch(count, steps_per_epoch))
    return values[passed]

  return schedule


def exponential_lr(lr: float, gamma: float, *, steps_per_epoch: int = 1) -> optax.Schedule:
  """``torch.optim.lr_scheduler.ExponentialLR``: decay by ``gamma`` every epoch.

  ``lr(k) = lr * gamma ** epoch``.

  Args:
    lr: the initial learning rate.
    gamma: multiplicative factor of the decay.
    steps_per_epoch: optimizer updates per ``scheduler.step()``.

  Returns:
    An optax schedule: update count -> float32 learning rate.
  """
  lr = _check_lr("exponential_lr", lr)
  gamma = _check_gamma("exponential_lr", gamma)
  steps_per_epoch = _checks.positive_integer("exponential_lr", "steps_per_epoch", steps_per_epoch)

  def schedule(count):
    return powers(gamma, _epoch(count, steps_per_epoch), scale=lr)

  return schedule


def cosine_annealing_lr(
  lr: float,
  T_max: int,
  eta_min: float = 0.0,
  *,
  steps_per_epoch: int = 1,  # noqa: N803
) -> optax.Schedule:
  """``torch.optim.lr_scheduler.CosineAnnealingLR``.

  ``lr(k) = eta_min + (lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``.

  torch computes it recursively (its chainable form), which follows this closed
  form beyond ``T_max`` too: the learning rate climbs back up, with period
  ``2 * T_max``; ``optax.cosine_decay_schedule`` instead stays at its minimum.
  ``eta_min`` may exceed ``lr`` (the rate then rises from ``lr`` to ``eta_min``).

  Float32 evaluation, within 1e-6 relative of torch for every ``lr`` and
  ``eta_min``: with ``r = epoch mod 2 * T_max``, the closed form is the sum of two
  non-negative terms (an identity)::

    lr(k) = lr * sin(pi * (T_max - r) / (2 * T_max)) ** 2
            + eta_min * sin(pi * min(r, 2 * T_max - r) / (2 * T_max)) ** 2

  Each angle is an exact integer times ``float32(pi / (2 * T_max))``, in ``[-pi/2,
  pi/2]``, where ``sin`` is accurate to its argument's relative error; and no
  term cancels. The direct form ``eta_min + (lr - eta_min) * c`` cancels near
  ``lr`` when ``eta_min > lr``: float32 rounding of ``eta_min``, a few 1e-9
  absolute, is 4.5e-6 of ``lr = 3e-4`` with ``eta_min = 0.05``. (``1 + cos``
  cancels the same way near the minimum for ``eta_min < lr``.)

  Args:
    lr: the initial learning rate, ``>= 0``.
    T_max: half-period, in epochs.
    eta_min: minimum learning rate (the maximum when above ``lr``), ``>= 0``.
    steps_per_epoch: optimizer updates per ``scheduler.step()``.

  Returns:
    An optax schedule: update count -> float32 learning rate.
  """
  lr = _check_lr("cosine_annealing_lr", lr)
  T_max = _checks.positive_integer("cosine_annealing_lr", "T_max", T_max)  # noqa: N806
  # torch checks nothing; a negative eta_min makes negative learning rates.
  eta_min = _checks.finite_nonnegative("cosine_annealing_lr", "eta_min", eta_min)
  steps_per_epoch = _checks.positive_integer(
    "cosine_annealing_lr", "steps_per_epoch", steps_per_epoch
  )
  quarter_turn = np.float32(math.pi / (2 * T_max))

  def schedule(count):
    r = _epoch(count, steps_per_epoch) % (2 * T_max)
    from_lr = jnp.sin((T_max - r).astype(jnp.float32) * quarter_turn) ** 2
    to_eta = jnp.sin(jnp.minimum(r, 2 * T_max - r).astype(jnp.float32) * quarter_turn) ** 2
    return np.float32(lr) * from_lr + np.float32(eta_min) * to_eta

  return schedule
