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
float32 to within a few ulps of torch's float64 values (torch multiplies its
chainable forms recursively; the closed forms here are the same numbers).
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

from jaxtrain.optim._transforms import powers


def _check_common(lr: float, steps_per_epoch: int) -> None:
  if not 0.0 <= lr:
    raise ValueError(f"Invalid learning rate: {lr}")
  if not isinstance(steps_per_epoch, (int, np.integer)) or steps_per_epoch < 1:
    raise ValueError(f"steps_per_epoch must be a positive integer, got {steps_per_epoch!r}")


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
  """
  _check_common(lr, steps_per_epoch)
  if not isinstance(step_size, (int, np.integer)) or step_size < 1:
    raise ValueError(f"step_size must be a positive integer, got {step_size!r}")

  def schedule(count):
    return lr * powers(gamma, _epoch(count, steps_per_epoch) // step_size)

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
  _check_common(lr, steps_per_epoch)
  marks = sorted(int(m) for m in milestones)
  # The only values the schedule takes, each computed in float64 and rounded once.
  values = jnp.asarray([lr * gamma**i for i in range(len(marks) + 1)], jnp.float32)
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
  _check_common(lr, steps_per_epoch)

  def schedule(count):
    return lr * powers(gamma, _epoch(count, steps_per_epoch))

  return schedule


def cosine_annealing_lr(
    lr: float, T_max: int, eta_min: float = 0.0, *, steps_per_epoch: int = 1  # noqa: N803
) -> optax.Schedule:
  """``torch.optim.lr_scheduler.CosineAnnealingLR``.

  ``lr(k) = eta_min + (lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``.

  torch computes it recursively (its chainable form), which follows this closed
  form beyond ``T_max`` too: the learning rate climbs back up, with period
  ``2 * T_max``; ``optax.cosine_decay_schedule`` instead stays at its minimum.
  To keep float32 accurate near the minimum, where ``1 + cos`` cancels, the
  value is computed as ``sin(pi * (T_max - r) / (2 * T_max)) ** 2`` with
  ``r = epoch mod 2 * T_max`` (an identity), whose argument is exact.

  Args:
    lr: the initial (maximum) learning rate.
    T_max: half-period, in epochs.
    eta_min: minimum learning rate.
    steps_per_epoch: optimizer updates per ``scheduler.step()``.

  Returns:
    An optax schedule: update count -> float32 learning rate.
  """
  _check_common(lr, steps_per_epoch)
  if not isinstance(T_max, (int, np.integer)) or T_max < 1:
    raise ValueError(f"T_max must be a positive integer, got {T_max!r}")

  def schedule(count):
    r = _epoch(count, steps_per_epoch) % (2 * T_max)
    half_cos = jnp.sin((T_max - r).astype(jnp.float32) * np.float32(math.pi / (2 * T_max))) ** 2
    return eta_min + (lr - eta_min) * half_cos

  return schedule
