"""jaxtrain.optim's schedules against torch 2.13.0's lr_scheduler.

Reference: the learning rate torch's optimizer uses at each ``optimizer.step()``
(``scheduler.get_last_lr()`` just before it) for ``StepLR``, ``MultiStepLR``,
``ExponentialLR`` and ``CosineAnnealingLR``, over 50 epochs of ``BATCHES``
batches, with ``scheduler.step()`` called once per epoch (as intended) or once
per batch (the mistake in ../shared/seeds/000_*.txt). jaxtrain's schedule is
evaluated at every update count with ``steps_per_epoch=BATCHES`` or 1.

Tolerance: ``rtol=1e-6`` (a few float32 ulps: jaxtrain computes in float32,
torch in float64) and an absolute 1e-30, below which float32 cannot follow
torch's float64 (0.1 ** 70 underflows to 0).
"""

from __future__ import annotations

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
    (schedules.cosine_annealing_lr, lr_scheduler.CosineAnnealingLR,
     0.2, dict(T_max=10, eta_min=1e-3)),
    (schedules.cosine_annealing_lr, lr_scheduler.CosineAnnealingLR, 0.05, dict(T_max=7)),
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


def jax_lrs(schedule, updates):
  return np.asarray(jax.jit(jax.vmap(schedule))(jnp.arange(updates)))


@pytest.mark.parametrize("stepping", ["per_epoch", "per_batch"])
@pytest.mark.parametrize(
    ("jax_schedule", "torch_scheduler", "lr", "kwargs"),
    CASES,
    ids=[f"{c[0].__name__}({c[2]},{','.join(f'{k}={v}' for k, v in c[3].items())})" for c in CASES],
)
def test_lr_sequence_equals_torch(jax_schedule, torch_scheduler, lr, kwargs, stepping):
  per_batch = stepping == "per_batch"
  expected = torch_lrs(
      torch_scheduler, lr, kwargs, epochs=EPOCHS, batches=BATCHES, per_batch=per_batch
  )
  schedule = jax_schedule(lr, **kwargs, steps_per_epoch=1 if per_batch else BATCHES)
  actual = jax_lrs(schedule, EPOCHS * BATCHES)
  assert actual.dtype == np.float32
  assert_close(actual, expected, rtol=RTOL, atol=ATOL, what=stepping)
  # Unjitted, at a Python int count, gives the same numbers.
  assert_close(schedule(EPOCHS * BATCHES - 1), expected[-1], rtol=RTOL, atol=ATOL)


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


@pytest.mark.parametrize(
    ("factory", "kwargs", "message"),
    [
        (schedules.step_lr, dict(lr=0.1, step_size=0), "step_size must be a positive integer"),
        (schedules.step_lr, dict(lr=0.1, step_size=2, steps_per_epoch=0), "steps_per_epoch"),
        (schedules.exponential_lr, dict(lr=-0.1, gamma=0.9), "Invalid learning rate: -0.1"),
        (schedules.cosine_annealing_lr, dict(lr=0.1, T_max=0), "T_max must be a positive integer"),
        (schedules.multistep_lr, dict(lr=0.1, milestones=[2], steps_per_epoch=2.5), "steps_per_ep"),
    ],
)
def test_bad_arguments(factory, kwargs, message):
  with pytest.raises(ValueError, match=message):
    factory(**kwargs)
