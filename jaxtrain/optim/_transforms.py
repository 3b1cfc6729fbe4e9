"""The few gradient transformations optax has no torch-exact version of.

Everything else in :mod:`jaxtrain.optim` is composed from optax's own transforms;
these exist because optax's nearest transform differs from ``torch.optim``
in a way that changes the parameter trajectory:

* :func:`trace_with_dampening`: SGD momentum with ``dampening``. ``optax.trace``
  has no dampening, and torch's first momentum buffer is the raw gradient, not
  ``(1 - dampening) * g``.
* :func:`scale_by_torch_adam`: Adam/AdamW scaling. optax's AMSGrad takes the
  maximum of the *bias-corrected* second moment (torch: of the raw one), and
  ``optax.scale_by_adam`` computes the bias correction ``1 - beta2**t`` in float32,
  where ``float32(0.999)`` is off by 1.3e-5 relatively, so every early update is
  off by ~6e-6: a systematic drift torch (which computes it in float64) does not have.
* :func:`scale_by_torch_adagrad`: Adagrad scaling. ``optax.scale_by_rss`` puts
  ``eps`` inside the square root; torch adds it outside.
* :func:`scale_by_inverse_time_decay`: Adagrad's ``lr_decay``, a function of
  Adagrad's own step count. A schedule of optax's update count would be the same
  numbers, except after a step :func:`jaxtrain.optim.grad_scaler` skips: the
  schedule's count advances then, as torch's scheduler steps, and torch's
  Adagrad step count does not.
* :func:`powers`: ``scale * base ** k`` in float32 within a few ulps, used by
  the schedules.

Every transform follows torch's operation order so that float32 rounding stays
within a few ulps per step of ``torch.optim``'s single-tensor CPU implementation.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax


def powers(base: float, k: jax.typing.ArrayLike, scale: float = 1.0) -> jax.Array:
  """``scale * base ** k`` in float32, for Python floats and an integer ``k >= 0``.

  ``jnp.power(float32(base), k)`` carries ``k`` times the rounding error of
  ``float32(base)``: 1e-5 relative for ``0.9 ** 350``. torch computes these powers
  in float64 (its schedulers multiply a Python float ``epoch`` times). Here ``k``
  is split into its four bytes, ``k = d0 + 256 d1 + 256**2 d2 + 256**3 d3``, and
  ``scale * base ** d0``, ``base ** (256 d1)``, ... are looked up in tables
  computed in float64 on the host and rounded once to float32: four roundings of
  table entries and three of products, at most 3.5 float32 ulps (4.2e-7) from
  the exact value for every ``k``.

  When ``base > 1`` the factors only grow, and when ``base < 1`` they only shrink,
  so no product overflows or underflows before the result does; a single table
  entry can (``base ** (256 d1)`` beyond float32's range while ``scale`` is tiny
  enough to bring the result back), which is far outside any learning-rate
  schedule.

  Args:
    base: a non-negative Python float.
    k: a non-negative integer scalar (array or Python int), at most ``2**31 - 1``.
    scale: a Python float multiplied in (the schedule's initial learning rate).

  Returns:
    A float32 scalar.
  """
  k = jnp.asarray(k, jnp.int32)
  digits = np.arange(256, dtype=np.float64)
  out = None
  for j in range(4):
    # base ** (256**j * d) in float64; entries beyond float32's range round to 0 or
    # inf, which is also where the exact result has gone.
    with np.errstate(over="ignore", under="ignore"):
      table = np.power(np.float64(base), digits * 256.0**j)
      if j == 0:
        table = table * scale
      table32 = table.astype(np.float32)
    factor = jnp.asarray(table32)[(k >> (8 * j)) & 255]
    out = factor if out is None else out * factor
  return out


def one_minus_power(decay: float, count: jax.typing.ArrayLike) -> jax.Array:
  """``1 - decay ** count`` in float32, accurate where it is small.

  torch computes Adam's bias corrections ``1 - beta ** step`` in float64. In
  float32, ``1 - float32(0.999) ** 1`` is off by 1.3e-5 relatively. Writing it as
  ``-expm1(count * log(decay))`` with ``log(decay)`` taken in float64 keeps the
  relative error near float32's epsilon for every ``count``.
  """
  count = jnp.asarray(count, jnp.float32)
  if decay == 0.0:
    return jnp.ones_like(count)
  return -jnp.expm1(count * jnp.float32(math.log(decay)))


class TraceWithDampeningState(NamedTuple):
  """State of :func:`trace_with_dampening`."""

  count: jax.Array  # int32 scalar: updates made so far.
  trace: optax.Updates  # torch's `momentum_buffer`.


def trace_with_dampening(
  momentum: float, dampening: float = 0.0, nesterov: bool = False
) -> optax.GradientTransformation:
  """SGD momentum with dampening, as ``torch.optim.SGD``.

  torch's rule (``_single_tensor_sgd``), with ``g`` the (weight-decayed) gradient::

    b_1 = g_1                                      (first step: no dampening)
    b_t = momentum * b_{t-1} + (1 - dampening) * g_t
    update = g_t + momentum * b_t   if nesterov   else   b_t

  With ``dampening == 0`` this is exactly ``optax.trace(momentum, nesterov)``,
  which :func:`jaxtrain.optim.sgd` uses in that case.

  Args:
    momentum: the momentum factor.
    dampening: the dampening for momentum (torch applies it from the second step).
    nesterov: whether to use Nesterov momentum.

  Returns:
    An ``optax.GradientTransformation``.
  """

  def init_fn(params):
    return TraceWithDampeningState(
      count=jnp.zeros([], jnp.int32), trace=optax.tree.zeros_like(params)
    )

  def update_fn(updates, state, params=None):
    del params
    first = state.count == 0
    # torch: buf.mul_(momentum).add_(grad, alpha=1 - dampening); the first buffer
    # is a clone of the gradient.
    trace = jax.tree.map(
      lambda g, b: jnp.where(first, g, b * momentum + g * (1 - dampening)).astype(b.dtype),
      updates,
      state.trace,
    )
    if nesterov:
      updates = jax.tree.map(lambda g, b: g + b * momentum, updates, trace)
    else:
      updates = trace
    return updates, TraceWithDampeningState(count=optax.safe_increment(state.count), trace=trace)

  return optax.GradientTransformation(init_fn, update_fn)


class ScaleByTorchAdamState(NamedTuple):
  """State of :func:`scale_by_torch_adam`."""

  count: jax.Array  # int32 scalar: torch's `step`.
  mu: optax.Updates  # torch's `exp_avg`.
  nu: optax.Updates  # torch's `exp_avg_sq`.
  nu_max: Any  # torch's `max_exp_avg_sq` (AMSGrad), None otherwise.


def scale_by_torch_adam(
  b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, amsgrad: bool = False
) -> optax.GradientTransformation:
  """Adam's scaling as ``torch.optim.Adam`` computes it (without the ``-lr``).

  torch's rule (``_single_tensor_adam``), step ``t`` from 1::

    m_t = lerp(m_{t-1}, g_t, 1 - b1)            = b1 m_{t-1} + (1 - b1) g_t
    v_t = b2 v_{t-1} + (1 - b2) g_t^2
    vmax_t = max(vmax_{t-1}, v_t)               (AMSGrad only, on the RAW v)
    denom = sqrt(v_t or vmax_t) / sqrt(1 - b2^t) + eps
    update = (m_t / (1 - b1^t)) / denom

  Differences from optax that this transform removes: ``optax.scale_by_amsgrad``
  takes the maximum of the bias-corrected ``v_t / (1 - b2^t)``, which is a
  different algorithm (0.33 max abs difference after 20 steps on an MLP), and
  optax's bias corrections ``1 - b^t`` are computed from ``float32(b)``; see
  :func:`one_minus_power`.

  Args:
    b1: torch's ``betas[0]``.
    b2: torch's ``betas[1]``.
    eps: added to the denominator, outside the square root (as optax and torch).
    amsgrad: keep the running maximum of the raw second moment.

  Returns:
    An ``optax.GradientTransformation``.
  """

  def init_fn(params):
    return ScaleByTorchAdamState(
      count=jnp.zeros([], jnp.int32),
      mu=optax.tree.zeros_like(params),
      nu=optax.tree.zeros_like(params),
      nu_max=optax.tree.zeros_like(params) if amsgrad else None,
    )

  def update_fn(updates, state, params=None):
    del params
    count = optax.safe_increment(state.count)
    # torch: exp_avg.lerp_(grad, 1 - beta1), whose CPU kernel for weights below
    # 0.5 computes m + w * (g - m).
    mu = jax.tree.map(lambda g, m: m + (1 - b1) * (g - m), updates, state.mu)
    # torch: exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2).
    nu = jax.tree.map(lambda g, v: v * b2 + (1 - b2) * g * g, updates, state.nu)
    if amsgrad:
      nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
      second = nu_max
    else:
      nu_max = None
      second = nu
    bc1 = one_minus_power(b1, count)
    sqrt_bc2 = jnp.sqrt(one_minus_power(b2, count))
    updates = jax.tree.map(
      lambda m, v: (m / bc1.astype(m.dtype)) / (jnp.sqrt(v) / sqrt_bc2.astype(v.dtype) + eps),
      mu,
      second,
    )
    return updates, ScaleByTorchAdamState(count=count, mu=mu, nu=nu, nu_max=nu_max)

  return optax.GradientTransformation(init_fn, update_fn)


class ScaleByTorchAdagradState(NamedTuple):
  """State of :func:`scale_by_torch_adagrad`."""

  sum_of_squares: optax.Updates  # torch's `sum`.


def scale_by_torch_adagrad(
  initial_accumulator_value: float = 0.0, eps: float = 1e-10
) -> optax.GradientTransformation:
  """Adagrad's scaling as ``torch.optim.Adagrad`` computes it (without the ``-lr``).

  torch's rule (``_single_tensor_adagrad``)::

    s_0 = initial_accumulator_value
    s_t = s_{t-1} + g_t^2
    update = g_t / (sqrt(s_t) + eps)

  ``optax.scale_by_rss`` computes ``g * rsqrt(s + eps)`` (``eps`` inside the square
  root, and 0 where ``s == 0``), which differs for small accumulators.

  Args:
    initial_accumulator_value: starting value of the sum of squares.
    eps: added to the square root of the sum.

  Returns:
    An ``optax.GradientTransformation``.
  """

  def init_fn(params):
    return ScaleByTorchAdagradState(
      sum_of_squares=optax.tree.full_like(params, initial_accumulator_value)
    )

  def update_fn(updates, state, params=None):
    del params
    # torch: state_sum.addcmul_(grad, grad, value=1).
    sums = jax.tree.map(lambda g, s: s + g * g, updates, state.sum_of_squares)
    updates = jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + eps), updates, sums)
    return updates, ScaleByTorchAdagradState(sum_of_squares=sums)

  return optax.GradientTransformation(init_fn, update_fn)


class ScaleByInverseTimeDecayState(NamedTuple):
  """State of :func:`scale_by_inverse_time_decay`."""

  count: jax.Array  # int32 scalar: updates made so far (torch's Adagrad `step` - 1).


def scale_by_inverse_time_decay(lr_decay: float) -> optax.GradientTransformation:
  """Adagrad's ``lr_decay``: divides the ``t``-th update by ``1 + (t - 1) * lr_decay``.

  torch (``_single_tensor_adagrad``) computes ``clr = lr / (1 + (step - 1) *
  lr_decay)`` with ``step`` its own step count, which does not advance when
  ``GradScaler`` skips ``optimizer.step()``. Placed before
  ``optax.scale_by_learning_rate(lr)``, this gives ``clr * update`` (to float32
  rounding) with the count of this transform, not the schedule's.

  Args:
    lr_decay: torch's ``lr_decay`` (>= 0).

  Returns:
    An ``optax.GradientTransformation``.
  """

  def init_fn(params):
    del params
    return ScaleByInverseTimeDecayState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None):
    del params
    denominator = 1 + state.count.astype(jnp.float32) * lr_decay
    updates = jax.tree.map(lambda u: u / denominator.astype(u.dtype), updates)
    return updates, ScaleByInverseTimeDecayState(count=optax.safe_increment(state.count))

  return optax.GradientTransformation(init_fn, update_fn)
