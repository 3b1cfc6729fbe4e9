"""Gradient accumulation (jaxtrain.optim.accumulate).

Claim: k micro-batches of size b, each with a mean-reduced loss, accumulated by
``accumulate(opt, k)``, give the update of one batch of k * b. References: the
big-batch update of the same jaxtrain optimizer, and torch 2.13.0's usual
accumulation loop (``(loss / k).backward()`` per micro-batch, ``optimizer.step()``
every k) with ``torch.optim.SGD`` / ``torch.optim.Adam``.

Tolerance: ``rtol=1e-5``, ``atol=1e-6 * max(1, max|p|)`` (``oracle.assert_close``).
The model is a linear softmax classifier whose gradient entries are far from 0:
Adam-type updates g / (|g| + eps) turn the float32 rounding between a summed
and a one-batch gradient into an O(lr) difference for an entry within ~eps of 0.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from oracle import assert_close

from jaxtrain.optim import accumulate, adagrad, adam, adamw, rmsprop, sgd, step_lr

K, B, UPDATES = 4, 8, 6
FEATURES, CLASSES = 16, 5


def data(seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((UPDATES, K * B, FEATURES)).astype(np.float32) + 0.5
  y = rng.integers(0, CLASSES, (UPDATES, K * B))
  params = {
    "w": jnp.asarray(0.1 * rng.standard_normal((FEATURES, CLASSES)), jnp.float32),
    "b": jnp.zeros(CLASSES, jnp.float32),
  }
  return x, y, params


def mean_cross_entropy(params, x, y):
  logits = x @ params["w"] + params["b"]
  return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))


grad_fn = jax.jit(jax.grad(mean_cross_entropy))


def jit_step(opt):
  """One jitted (gradient, update, apply) step of ``opt`` on a batch."""

  @jax.jit
  def step(params, state, x, y):
    updates, state = opt.update(grad_fn(params, x, y), state, params)
    return optax.apply_updates(params, updates), state

  return step


OPTIMIZERS = {
  "sgd": lambda: sgd(lr=0.5, momentum=0.9, weight_decay=0.01),
  "rmsprop": lambda: rmsprop(lr=0.01, momentum=0.5, centered=True),
  "adam": lambda: adam(lr=0.05, weight_decay=0.01, amsgrad=True),
  "adamw": lambda: adamw(lr=0.05),
  "adagrad": lambda: adagrad(lr=0.1, lr_decay=0.1),
  "adam+step_lr": lambda: adam(lr=step_lr(0.05, step_size=2, gamma=0.5)),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_k_micro_batches_equal_one_big_batch(name):
  x, y, params = data()
  big_opt = OPTIMIZERS[name]()
  acc_opt = accumulate(OPTIMIZERS[name](), K)
  big_step, acc_step = jit_step(big_opt), jit_step(acc_opt)
  big, acc = params, params
  big_state, acc_state = big_opt.init(big), acc_opt.init(acc)
  for u in range(UPDATES):
    big, big_state = big_step(big, big_state, x[u], y[u])
    for i in range(K):
      micro = slice(i * B, (i + 1) * B)
      before = acc
      acc, acc_state = acc_step(acc, acc_state, x[u, micro], y[u, micro])
      if i < K - 1:  # no update until the k-th micro-batch
        assert_close(acc["w"], before["w"], rtol=0, atol=0, what="between updates")
    assert_close(acc["w"], big["w"], what=f"{name}, update {u}: w")
    assert_close(acc["b"], big["b"], what=f"{name}, update {u}: b")
  assert float(jnp.max(jnp.abs(big["w"] - params["w"]))) > 1e-2


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_accumulation_matches_torchs_accumulation_loop(name):
  """torch: (loss / k).backward() per micro-batch, optimizer.step() and scheduler.step() every k."""
  x, y, params = data(seed=1)
  linear = torch.nn.Linear(FEATURES, CLASSES)
  with torch.no_grad():
    linear.weight.copy_(torch.from_numpy(np.array(params["w"]).T))
    linear.bias.copy_(torch.from_numpy(np.array(params["b"])))
  if name == "sgd":
    torch_opt = torch.optim.SGD(linear.parameters(), lr=0.5, momentum=0.9, dampening=0.1)
    opt = accumulate(sgd(lr=step_lr(0.5, 2, 0.5), momentum=0.9, dampening=0.1), K)
  else:
    torch_opt = torch.optim.Adam(linear.parameters(), lr=0.05)
    opt = accumulate(adam(lr=step_lr(0.05, 2, 0.5)), K)
  scheduler = torch.optim.lr_scheduler.StepLR(torch_opt, step_size=2, gamma=0.5)
  step = jit_step(opt)
  state = opt.init(params)
  for u in range(UPDATES):
    for i in range(K):
      micro = slice(i * B, (i + 1) * B)
      loss = torch.nn.functional.cross_entropy(
        linear(torch.from_numpy(x[u, micro])), torch.from_numpy(y[u, micro])
      )
      (loss / K).backward()
      params, state = step(params, state, x[u, micro], y[u, micro])
    torch_opt.step()
    torch_opt.zero_grad()
    scheduler.step()
  assert_close(params["w"], linear.weight.detach().numpy().T, what="w")
  assert_close(params["b"], linear.bias.detach().numpy(), what="b")


def test_no_update_between_updates_even_for_an_inf_gradient():
  """torch adds an inf gradient to .grad and changes no parameter until optimizer.step()."""
  opt = accumulate(sgd(0.1, momentum=0.9), 3)
  params = jnp.ones(2)
  updates, state = opt.update(jnp.asarray([np.inf, 1.0]), opt.init(params), params)
  np.testing.assert_array_equal(np.asarray(updates), np.zeros(2))
  updates, state = opt.update(jnp.asarray([1.0, np.nan]), state, params)
  np.testing.assert_array_equal(np.asarray(updates), np.zeros(2))


def test_a_non_finite_micro_batch_spoils_only_its_own_update():
  """An inf or NaN gradient reaches the update of its window and no other.

  Inside, ``optax.apply_if_finite`` skips an update whose accumulated gradient is
  not finite (as grad_scaler does). Reference: torch 2.13.0, the accumulation
  loop with SGD, skipping ``optimizer.step()`` when ``.grad`` holds inf or NaN (as
  GradScaler does) and zeroing ``.grad`` after every k-th micro-batch.
  """
  k, windows = 3, 5
  rng = np.random.default_rng(2)
  grads = rng.standard_normal((windows * k, 4)).astype(np.float32)
  grads[1, 2] = np.inf  # window 0
  grads[9, 0] = np.nan  # window 3
  opt = accumulate(optax.apply_if_finite(sgd(0.1, momentum=0.9), max_consecutive_errors=10), k)
  params = jnp.zeros(4)
  state = opt.init(params)
  p = torch.nn.Parameter(torch.zeros(4))
  torch_opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
  update = jax.jit(opt.update)
  for i, g in enumerate(grads):
    updates, state = update(jnp.asarray(g), state, params)
    if i % k < k - 1:  # between updates: nothing moves, even after an inf
      np.testing.assert_array_equal(np.asarray(updates), np.zeros(4), err_msg=f"call {i}")
    params = optax.apply_updates(params, updates)
    g_over_k = torch.from_numpy(g) / k
    p.grad = g_over_k if p.grad is None else p.grad + g_over_k
    if i % k == k - 1:
      if torch.isfinite(p.grad).all():
        torch_opt.step()
      p.grad = None
      assert_close(params, p.detach().numpy(), what=f"after window {i // k}")
  assert np.all(np.isfinite(np.asarray(params)))
  assert np.max(np.abs(p.detach().numpy())) > 0.1


@pytest.mark.parametrize(
  ("optimizer", "every_k", "error", "message"),
  [
    (sgd(0.1), 0, ValueError, "accumulate: every_k must be a positive integer, got 0"),
    (sgd(0.1), -3, ValueError, "accumulate: every_k must be a positive integer, got -3"),
    (sgd(0.1), 2.0, TypeError, "accumulate: every_k must be an integer, got 2.0 (float)"),
    (sgd(0.1), True, TypeError, "accumulate: every_k must be an integer, got True (bool)"),
    (sgd(0.1), "4", TypeError, "accumulate: every_k must be an integer, got '4' (str)"),
    (
      sgd,
      4,
      TypeError,
      "accumulate: optimizer must be an optax.GradientTransformation (e.g. "
      "jaxtrain.optim.sgd(0.1)), got function",
    ),
    (None, 4, TypeError, "accumulate: optimizer must be an optax.GradientTransformation"),
  ],
  ids=["zero", "negative", "float", "bool", "str", "factory not optimizer", "none"],
)
def test_bad_arguments(optimizer, every_k, error, message):
  with pytest.raises(error, match=re.escape(message)):
    accumulate(optimizer, every_k)
