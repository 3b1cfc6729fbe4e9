"""jaxtrain.optim's schedules against torch 2.13.0's lr_scheduler.

Reference: the learning rate torch's optimizer uses at each ``optimizer.step()``
(``scheduler.get_last_lr()`` just before it) for ``StepLR``, ``MultiStepLR``,
``ExponentialLR`` and ``CosineAnnealingLR``, over 50 epochs of ``BATCHES``
batches, with ``scheduler.step()`` called once per epoch (as intended) or once
per batch (the mistake in ../shared/seeds/000_*.txt). jaxtrain's schedule is
evaluated at every update count with ``steps_per_epoch=BATCHES`` or 1.

Tolerance: ``rtol=1e-6`` (a few float32 ulps: jaxtrain computes in float32,
torch in float64), for every hyper-parameter value, and an absolute 1e-30, below
which float32 cannot follow torch's float64 (0.1 ** 70 underflows to 0). For
``CosineAnnealingLR`` the absolute tolerance is ``1e-12 * max(lr, eta_min)``:
torch's recursive float64 form drifts from the closed form, by -7.6e-16 where
the exact value is 0 after 13 periods (``lr=0, eta_min=0.01, T_max=7``), while
every non-zero value of these cosine schedules is at least 1e-8.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from oracle import assert_close
from torch.optim import lr_scheduler

from jaxtrain.optim import schedules

EPOCHS = 50
BATCHES = 7
RTOL = 1e-6
ATOL = 1e-30

CASES = [
  # (jaxtrain schedule, torch scheduler, initial lr, scheduler arguments)
  (schedules.step_lr, lr_scheduler.StepLR, 0.01, dict(step_size=5, gamma=0.1)),
  (schedules.step_lr, lr_scheduler.StepLR, 0.1, dict(step_size=3, gamma=0.9)),
  (schedules.step_lr, lr_scheduler.StepLR, 0.5, dict(step_size=1)),
  (schedules.multistep_lr, lr_scheduler.MultiStepLR, 0.1, dict(milestones=[10, 25, 25, 40])),
  (schedules.multistep_lr, lr_scheduler.MultiStepLR, 0.05, dict(milestones=[7, 3], gamma=0.9)),
  (schedules.exponential_lr, lr_scheduler.ExponentialLR, 0.1, dict(gamma=0.95)),
  (schedules.exponential_lr, lr_scheduler.ExponentialLR, 1.0, dict(gamma=0.9)),
  (schedules.exponential_lr, lr_scheduler.ExponentialLR, 1e-3, dict(gamma=1.02)),
  (schedules.cosine_annealing_lr, lr_scheduler.CosineAnnealingLR, 0.1, dict(T_max=50)),
  (
    schedules.cosine_annealing_lr,
    lr_scheduler.CosineAnnealingLR,
    0.2,
    dict(T_max=10, eta_min=1e-3),
  ),
  (schedules.cosine_annealing_lr, lr_scheduler.CosineAnnealingLR, 0.05, dict(T_max=7)),
]

# The same rtol for every hyper-parameter value: eta_min above, equal to and just below
# lr (the learning rate then rises from lr to eta_min; (lr - eta_min) cancels), far
# above it, tiny; a T_max longer than the run; gamma 0 (lr 0 after the first decay),
# 1 (constant), just below 1 (many ulps of float32(gamma) accumulate over the powers)
# and above 1 (a rising lr); a milestone at epoch 0.
SWEEP = [
  (schedules.cosine_annealing_lr, lr_scheduler.CosineAnnealingLR, lr, dict(T_max=t, eta_min=e))
  for lr, e in [
    (3e-4, 0.05),
    (0.1, 0.1),
    (0.1, 0.0999),
    (0.1, 2.0),
    (0.05, 1e-8),
    (1.0, 0.5),
    (0.0, 0.01),
  ]
  for t in (1, 7, 120)
] + [
  (factory, scheduler, lr, dict(extra, gamma=g))
  for factory, scheduler, extra in [
    (schedules.exponential_lr, lr_scheduler.ExponentialLR, {}),
    (schedules.step_lr, lr_scheduler.StepLR, dict(step_size=3)),
    (schedules.multistep_lr, lr_scheduler.MultiStepLR, dict(milestones=[0, 4, 4, 30])),
  ]
  for g in (0.0, 0.3, 0.99, 0.999, 1.0, 1.05)
  for lr in (3e-4, 0.1)
]


def torch_lrs(scheduler_cls, lr, kwargs, *, epochs, batches, per_batch):
  """torch's lr at every optimizer.step() of a standard training loop."""
  param = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([param], lr=lr)
  scheduler = scheduler_cls(opt, **kwargs)
  lrs = []
  for _ in range(epochs):
    for _ in range(batches):
      lrs.append(scheduler.get_last_lr()[0])
      opt.step()
      if per_batch:
        scheduler.step()
    if not per_batch:
      scheduler.step()
  return np.asarray(lrs)


def atol_for(torch_scheduler, lr, kwargs):
  if torch_scheduler is lr_scheduler.CosineAnnealingLR:
    return max(ATOL, 1e-12 * max(lr, kwargs.get("eta_min", 0.0)))
  return ATOL


def jax_lrs(schedule, updates):
  return np.asarray(jax.jit(jax.vmap(schedule))(jnp.arange(updates)))


def _case_id(case):
  return f"{case[0].__name__}({case[2]},{','.join(f'{k}={v}' for k, v in case[3].items())})"


@pytest.mark.parametrize("stepping", ["per_epoch", "per_batch"])
@pytest.mark.parametrize(
  ("jax_schedule", "torch_scheduler", "lr", "kwargs"),
  CASES + SWEEP,
  ids=[_case_id(c) for c in CASES + SWEEP],
)
def test_lr_sequence_equals_torch(jax_schedule, torch_scheduler, lr, kwargs, stepping):
  per_batch = stepping == "per_batch"
  expected = torch_lrs(
    torch_scheduler, lr, kwargs, epochs=EPOCHS, batches=BATCHES, per_batch=per_batch
  )
  schedule = jax_schedule(lr, **kwargs, steps_per_epoch=1 if per_batch else BATCHES)
  actual = jax_lrs(schedule, EPOCHS * BATCHES)
  assert actual.dtype == np.float32
  atol = atol_for(torch_scheduler, lr, kwargs)
  assert_close(actual, expected, rtol=RTOL, atol=atol, what=stepping)
  # Unjitted, at a Python int count, gives the same numbers.
  assert_close(schedule(EPOCHS * BATCHES - 1), expected[-1], rtol=RTOL, atol=atol)


def test_seed_000_per_batch_step_lr_collapses():
  """000_*.txt: StepLR(step_size=5, gamma=0.1) stepped per batch, 156 batches x 20 epochs.

  Its comment notices that the lr becomes tiny. Stepped per batch the lr is
  divided by 10 every 5 batches; stepped per epoch, every 5 epochs.
  """
  batches, epochs = 156, 20  # CIFAR-10 test set, batch 64, drop_last
  kwargs = dict(step_size=5, gamma=0.1)
  for per_batch, spe in ((True, 1), (False, batches)):
    expected = torch_lrs(
      lr_scheduler.StepLR, 0.01, kwargs, epochs=epochs, batches=batches, per_batch=per_batch
    )
    actual = jax_lrs(schedules.step_lr(0.01, **kwargs, steps_per_epoch=spe), epochs * batches)
    assert_close(actual, expected, rtol=RTOL, atol=ATOL, what=f"per_batch={per_batch}")
    if per_batch:
      # Past the first epoch the lr is below 1e-30: training stopped in epoch 1.
      assert expected[batches] < 1e-30 and actual[batches] < 1e-30
    else:
      assert expected[4 * batches] == 0.01 and expected[5 * batches] == pytest.approx(1e-3)


def test_cosine_annealing_restarts_after_t_max_like_torch():
  """torch's CosineAnnealingLR climbs back after T_max (optax's cosine decay stays at its floor)."""
  expected = torch_lrs(
    lr_scheduler.CosineAnnealingLR, 1.0, dict(T_max=5), epochs=20, batches=1, per_batch=False
  )
  actual = jax_lrs(schedules.cosine_annealing_lr(1.0, T_max=5), 20)
  assert_close(actual, expected, rtol=RTOL, atol=ATOL)
  assert expected[5] < 1e-12 and expected[10] == pytest.approx(1.0)


def test_cosine_annealing_with_eta_min_above_lr_starts_at_lr():
  """lr=3e-4, eta_min=0.05: the first learning rate is lr (torch 2.13.0: exactly 0.0003).

  Written as eta_min + (lr - eta_min) * c, the float32 rounding of eta_min and of
  (lr - eta_min), each ~4e-9 absolute, lands on a result 170 times smaller than
  eta_min: 0.000300001353, 4.5e-6 relative.
  """
  for t_max in (10, 100):
    expected = torch_lrs(
      lr_scheduler.CosineAnnealingLR,
      3e-4,
      dict(T_max=t_max, eta_min=0.05),
      epochs=2 * t_max + 1,
      batches=1,
      per_batch=True,
    )
    assert expected[0] == 3e-4 and expected[t_max] == pytest.approx(0.05, rel=1e-12)
    schedule = schedules.cosine_annealing_lr(3e-4, T_max=t_max, eta_min=0.05)
    assert_close(jax_lrs(schedule, 2 * t_max + 1), expected, rtol=RTOL, atol=ATOL)


# Long per-batch runs: gamma**k for large k (many set bits), cosine angles near 0 and
# pi/2 for a large T_max.
LONG = [
  (schedules.exponential_lr, lr_scheduler.ExponentialLR, 0.1, dict(gamma=0.999)),
  (schedules.exponential_lr, lr_scheduler.ExponentialLR, 1e-4, dict(gamma=1.0007)),
  (schedules.step_lr, lr_scheduler.StepLR, 0.1, dict(step_size=3, gamma=0.997)),
  (
    schedules.cosine_annealing_lr,
    lr_scheduler.CosineAnnealingLR,
    3e-4,
    dict(T_max=1500, eta_min=0.05),
  ),
  (schedules.cosine_annealing_lr, lr_scheduler.CosineAnnealingLR, 0.1, dict(T_max=1500)),
]


@pytest.mark.parametrize(
  ("jax_schedule", "torch_scheduler", "lr", "kwargs"), LONG, ids=[_case_id(c) for c in LONG]
)
def test_long_per_batch_runs(jax_schedule, torch_scheduler, lr, kwargs):
  """4000 updates, scheduler.step() after each."""
  expected = torch_lrs(torch_scheduler, lr, kwargs, epochs=4000, batches=1, per_batch=True)
  actual = jax_lrs(jax_schedule(lr, **kwargs), 4000)
  assert_close(actual, expected, rtol=RTOL, atol=atol_for(torch_scheduler, lr, kwargs))


NAN = float("nan")
STEP = schedules.step_lr


# (factory, arguments, exception, message fragment). Each names the argument and what
# was expected. torch 2.13.0 checks none of these (StepLR(step_size=2.5), a NaN gamma,
# MultiStepLR(milestones=["3"]) are all accepted) except the bare int milestones
# (TypeError: 'int' object is not iterable); jaxtrain checks them when the schedule is
# built, not at the first update.
BAD_ARGUMENTS = [
  (STEP, dict(lr=0.1, step_size=0), ValueError, "step_size must be a positive integer, got 0"),
  (STEP, dict(lr=0.1, step_size=-2), ValueError, "step_size must be a positive integer, got -2"),
  (STEP, dict(lr=0.1, step_size=2.5), TypeError, "step_lr: step_size must be an integer, got 2.5"),
  (STEP, dict(lr=0.1, step_size=2.0), TypeError, "step_size must be an integer, got 2.0"),
  (STEP, dict(lr=0.1, step_size=True), TypeError, "step_size must be an integer, got True"),
  (STEP, dict(lr=0.1, step_size="5"), TypeError, "step_size must be an integer, got '5' (str)"),
  (
    STEP,
    dict(lr=0.1, step_size=2, steps_per_epoch=0),
    ValueError,
    "steps_per_epoch must be a positive integer, got 0",
  ),
  (
    schedules.multistep_lr,
    dict(lr=0.1, milestones=[2], steps_per_epoch=2.5),
    TypeError,
    "multistep_lr: steps_per_epoch must be an integer, got 2.5",
  ),
  (STEP, dict(lr="0.1", step_size=2), TypeError, "step_lr: lr must be a number, got '0.1' (str)"),
  (STEP, dict(lr=None, step_size=2), TypeError, "step_lr: lr must be a number, got None"),
  (STEP, dict(lr=lambda k: 0.1, step_size=2), TypeError, "step_lr: lr must be a number"),
  (schedules.exponential_lr, dict(lr=-0.1, gamma=0.9), ValueError, "Invalid learning rate: -0.1"),
  (schedules.exponential_lr, dict(lr=NAN, gamma=0.9), ValueError, "Invalid learning rate: nan"),
  (
    schedules.exponential_lr,
    dict(lr=float("inf"), gamma=0.9),
    ValueError,
    "Invalid learning rate: inf",
  ),
  (
    STEP,
    dict(lr=0.1, step_size=2, gamma=NAN),
    ValueError,
    "step_lr: gamma must be a finite number >= 0, got nan",
  ),
  (
    STEP,
    dict(lr=0.1, step_size=2, gamma=-0.5),
    ValueError,
    "step_lr: gamma must be a finite number >= 0, got -0.5",
  ),
  (
    STEP,
    dict(lr=0.1, step_size=2, gamma="0.1"),
    TypeError,
    "step_lr: gamma must be a number, got '0.1' (str)",
  ),
  (
    schedules.exponential_lr,
    dict(lr=0.1, gamma=None),
    TypeError,
    "exponential_lr: gamma must be a number, got None",
  ),
  (
    schedules.exponential_lr,
    dict(lr=0.1, gamma=float("inf")),
    ValueError,
    "exponential_lr: gamma must be a finite number >= 0, got inf",
  ),
  (
    schedules.multistep_lr,
    dict(lr=0.1, milestones=3),
    TypeError,
    "multistep_lr: milestones must be a sequence of integers, got 3",
  ),
  (
    schedules.multistep_lr,
    dict(lr=0.1, milestones="35"),
    TypeError,
    "multistep_lr: milestones must be a sequence of integers, got '35'",
  ),
  (
    schedules.multistep_lr,
    dict(lr=0.1, milestones=[3, "5"]),
    TypeError,
    "multistep_lr: milestones[1] must be an integer, got '5' (str)",
  ),
  (
    schedules.multistep_lr,
    dict(lr=0.1, milestones=[2.5]),
    TypeError,
    "multistep_lr: milestones[0] must be an integer, got 2.5",
  ),
  (
    schedules.multistep_lr,
    dict(lr=0.1, milestones=[3, -1]),
    ValueError,
    "multistep_lr: milestones[1] must be >= 0, got -1",
  ),
  (
    schedules.multistep_lr,
    dict(lr=0.1, milestones=[3], gamma=NAN),
    ValueError,
    "multistep_lr: gamma must be a finite number >= 0, got nan",
  ),
  (
    schedules.cosine_annealing_lr,
    dict(lr=0.1, T_max=0),
    ValueError,
    "T_max must be a positive integer, got 0",
  ),
  (
    schedules.cosine_annealing_lr,
    dict(lr=0.1, T_max=10.0),
    TypeError,
    "cosine_annealing_lr: T_max must be an integer, got 10.0",
  ),
  (
    schedules.cosine_annealing_lr,
    dict(lr=0.1, T_max=10, eta_min=NAN),
    ValueError,
    "cosine_annealing_lr: eta_min must be a finite number >= 0, got nan",
  ),
  (
    schedules.cosine_annealing_lr,
    dict(lr=0.1, T_max=10, eta_min=-1e-3),
    ValueError,
    "cosine_annealing_lr: eta_min must be a finite number >= 0, got -0.001",
  ),
  (
    schedules.cosine_annealing_lr,
    dict(lr=0.1, T_max=10, eta_min=float("inf")),
    ValueError,
    "cosine_annealing_lr: eta_min must be a finite number >= 0, got inf",
  ),
  (
    schedules.cosine_annealing_lr,
    dict(lr=0.1, T_max=10, eta_min="0"),
    TypeError,
    "cosine_annealing_lr: eta_min must be a number, got '0' (str)",
  ),
]


def _arg(value):
  return "<function>" if callable(value) else repr(value)


@pytest.mark.parametrize(
  ("factory", "kwargs", "error", "message"),
  BAD_ARGUMENTS,
  ids=[
    f"{c[0].__name__}({','.join(f'{k}={_arg(v)}' for k, v in c[1].items())})" for c in BAD_ARGUMENTS
  ],
)
def test_bad_arguments(factory, kwargs, error, message):
  with pytest.raises(error, match=re.escape(message)):
    factory(**kwargs)


def test_numbers_of_other_types_are_accepted():
  """numpy and 0-d jax numbers, and numpy integers, are numbers: the same schedule."""
  expected = jax_lrs(schedules.step_lr(0.1, 2, 0.5, steps_per_epoch=3), 20)
  for lr, step_size, gamma, spe in [
    (np.float32(0.1), np.int64(2), np.float64(0.5), np.int32(3)),
    (jnp.asarray(0.1), 2, jnp.asarray(0.5), 3),
    (np.asarray(0.1), 2, 0.5, 3),
  ]:
    actual = jax_lrs(schedules.step_lr(lr, step_size, gamma, steps_per_epoch=spe), 20)
    assert_close(actual, expected, rtol=1e-7, atol=0.0)
  assert_close(
    jax_lrs(schedules.multistep_lr(0.1, (np.int64(3),), 0.5), 6),
    [0.1, 0.1, 0.1, 0.05, 0.05, 0.05],
    rtol=1e-7,
    atol=0.0,
  )
