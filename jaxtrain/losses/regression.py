"""Regression losses: torch's elementwise distances and likelihoods.

Every function mirrors its ``torch.nn.functional`` namesake: same argument names,
defaults and values, with hyper-parameters keyword-only. Inputs may have any shape;
``reduction`` is ``'none'``, ``'mean'`` (default) or ``'sum'``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxtrain.losses._checks import (
  broadcast_with_warning,
  check_broadcastable,
  check_same_shape,
  is_concrete,
  plain_when_concrete,
)
from jaxtrain.losses._reduction import as_float, reduce_loss


@jax.custom_jvp
def _abs_rule(d: jax.Array) -> jax.Array:
  return jnp.abs(d)


@_abs_rule.defjvp
def _abs_jvp(primals, tangents):
  # torch's l1 backward, sign(d), with torch's sign: 0 at 0 (where jnp.abs's
  # derivative is 1) and 0 at NaN (where jnp.sign is NaN). (A rule, not
  # stop_gradient(sign) * d: XLA kept two input-sized temporaries for that one.)
  (d,), (dd,) = primals, tangents
  return jnp.abs(d), ((d > 0).astype(d.dtype) - (d < 0).astype(d.dtype)) * dd


_abs = plain_when_concrete(_abs_rule)


def _pointwise(name, input, target, weight, fn, *, booleans=("target",)):
  """``fn(input - target)`` times the optional ``weight``; returns ``(loss, weight, out_dtype)``.

  An integer (or, where ``booleans`` names it, boolean) target computes in the
  input's floating type, as torch promotes it.
  """
  (input, target), out_dtype = as_float(
    input, target, names=("input", "target"), loss=name, integers=("target",), booleans=booleans
  )
  input, target = broadcast_with_warning(input, target, loss=name)
  # Rematerialized: the gradient recomputes ``input - target`` from the inputs
  # instead of keeping it, so the value is one fused pass (difference, ``fn`` and
  # the reduction) and the gradient another, with no (N, ...) buffer between them,
  # which XLA:CPU would write out and read back (measurements: docs/log.md,
  # 2026-11-22, session 5; current loss timings: benchmarks/RESULTS.md).
  # (Concrete arrays, where nothing is differentiated, skip the checkpoint's tracing.)
  diff = lambda x, y: fn(x - y)  # noqa: E731
  loss = plain_when_concrete(jax.checkpoint(diff), diff)(input, target)
  if weight is not None:
    check_same_shape(input, weight, names=("input", "weight"), loss=name)
    (weight,), weight_dtype = as_float(weight, names=("weight",), loss=name)
    loss = loss * weight
    out_dtype = jnp.promote_types(out_dtype, weight_dtype)  # torch multiplies: promotes
  return loss, weight, out_dtype


def _summed(weight):
  return None if weight is None else jnp.sum(weight)


def l1_loss(input, target, *, reduction: str = "mean", weight=None) -> jax.Array:
  r"""Mean absolute error, ``torch.nn.functional.l1_loss``.

  .. math:: \ell_i = w_i \, |x_i - y_i|

  ``'mean'`` divides the sum by the element count, or by :math:`\sum_i w_i` when
  ``weight`` is given (torch 2.13's weighted form).

  Args:
    input: predictions :math:`x`, any shape.
    target: targets :math:`y`, the shape of ``input`` (other broadcastable shapes
      warn, as in torch).
    reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    weight: optional per-element weights, the shape of ``input``.

  Returns:
    The loss: a scalar, or the shape of ``input`` for ``'none'``.

  Example:
    >>> l1_loss(jnp.array([1., 2., 3.]), jnp.array([1., 2., 5.]))  # 0.6667
    Array(0.6666667, dtype=float32)
    >>> l1_loss(jnp.array([1., 2., 3.]), jnp.array([1., 2., 5.]), reduction='sum')  # 2.
    Array(2., dtype=float32)

  Note:
    The gradient at ``x == y`` is 0, as torch's (``jnp.abs`` would give 1).
  """
  # torch 2.13 subtracts a boolean target, which it rejects.
  loss, weight, out_dtype = _pointwise("l1_loss", input, target, weight, _abs, booleans=())
  return reduce_loss(loss, reduction, denominator=_summed(weight), out_dtype=out_dtype)


def mse_loss(input, target, *, reduction: str = "mean", weight=None) -> jax.Array:
  r"""Mean squared error, ``torch.nn.functional.mse_loss``.

  .. math:: \ell_i = w_i \, (x_i - y_i)^2

  ``'mean'`` divides the sum by the element count, or by :math:`\sum_i w_i` when
  ``weight`` is given (torch 2.13's weighted form).

  Args:
    input: predictions, any shape.
    target: targets, the shape of ``input`` (other broadcastable shapes warn).
    reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    weight: optional per-element weights, the shape of ``input``.

  Returns:
    The loss: a scalar, or the shape of ``input`` for ``'none'``.

  Example:
    >>> mse_loss(jnp.array([1., 2., 3.]), jnp.array([1., 2., 5.]))  # 1.3333
    Array(1.3333334, dtype=float32)
  """
  # torch 2.13 takes a boolean target, except in its weighted form (which subtracts it).
  loss, weight, out_dtype = _pointwise(
    "mse_loss", input, target, weight, jnp.square, booleans=("target",) if weight is None else ()
  )
  return reduce_loss(loss, reduction, denominator=_summed(weight), out_dtype=out_dtype)


def smooth_l1_loss(input, target, *, reduction: str = "mean", beta: float = 1.0) -> jax.Array:
  r"""Smooth L1 loss, ``torch.nn.functional.smooth_l1_loss``.

  .. math::
     \ell_i = \begin{cases} 0.5 (x_i - y_i)^2 / \beta & |x_i - y_i| < \beta \\
                            |x_i - y_i| - 0.5 \beta & \text{otherwise} \end{cases}

  Args:
    input: predictions, any shape.
    target: targets, the shape of ``input``.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    beta: the threshold; ``beta == 0`` is ``l1_loss``. Must be non-negative.

  Returns:
    The loss: a scalar, or the shape of ``input`` for ``'none'``.

  Note:
    ``smooth_l1_loss(x, y, beta=b) == huber_loss(x, y, delta=b) / b`` for ``b > 0``.
  """
  if beta < 0:
    raise ValueError(f"smooth_l1_loss: beta must be non-negative, got beta={beta}")
  if beta == 0:
    return l1_loss(input, target, reduction=reduction)

  def pointwise(d):
    z = _abs(d)
    # The quadratic branch sees d only where it is taken: an infinite d would make
    # its gradient 0 * inf = NaN. NaN takes it, as in torch's backward (d / beta * grad).
    quadratic = ~(z >= beta)
    dq = jnp.where(quadratic, d, 0.0)
    return jnp.where(quadratic, 0.5 * dq * dq / beta, z - 0.5 * beta)

  loss, _, out_dtype = _pointwise("smooth_l1_loss", input, target, None, pointwise)
  return reduce_loss(loss, reduction, out_dtype=out_dtype)


def huber_loss(
  input, target, *, reduction: str = "mean", delta: float = 1.0, weight=None
) -> jax.Array:
  r"""Huber loss, ``torch.nn.functional.huber_loss``.

  .. math::
     \ell_i = w_i \begin{cases} 0.5 (x_i - y_i)^2 & |x_i - y_i| < \delta \\
                  \delta (|x_i - y_i| - 0.5 \delta) & \text{otherwise} \end{cases}

  Args:
    input: predictions, any shape.
    target: targets, the shape of ``input``.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    delta: the threshold, positive.
    weight: optional per-element weights, the shape of ``input``.

  Returns:
    The loss: a scalar, or the shape of ``input`` for ``'none'``.

  Note:
    With ``weight``, torch's ``'mean'`` is the plain mean of the weighted losses
    (unlike ``l1_loss``/``mse_loss``, which divide by the summed weights).
  """
  if delta <= 0:
    raise ValueError(f"huber_loss: delta must be positive, got delta={delta}")

  def pointwise(d):
    z = _abs(d)
    # As in smooth_l1_loss: NaN takes the quadratic branch (torch's d * grad, NaN).
    quadratic = ~(z >= delta)
    dq = jnp.where(quadratic, d, 0.0)
    return jnp.where(quadratic, 0.5 * dq * dq, delta * (z - 0.5 * delta))

  loss, _, out_dtype = _pointwise("huber_loss", input, target, weight, pointwise)
  return reduce_loss(loss, reduction, out_dtype=out_dtype)


def poisson_nll_loss(
  input,
  target,
  *,
  log_input: bool = True,
  full: bool = False,
  eps: float = 1e-8,
  reduction: str = "mean",
) -> jax.Array:
  r"""Negative log likelihood of a Poisson target, ``torch.nn.functional.poisson_nll_loss``.

  .. math::
     \ell_i = \begin{cases} e^{x_i} - y_i x_i & \text{log\_input} \\
                            x_i - y_i \log(x_i + \epsilon) & \text{otherwise} \end{cases}
     \;+\; [\text{full} \wedge y_i > 1] \left(y_i \log y_i - y_i + \tfrac12 \log(2\pi y_i)\right)

  Args:
    input: the rate's log (``log_input=True``) or the rate itself, any shape.
    target: counts :math:`y`, broadcastable to ``input``.
    log_input: whether ``input`` is the log of the rate.
    full: add the Stirling approximation term of :math:`\log(y!)` where :math:`y > 1`.
    eps: added to the rate before the log when ``log_input=False``.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

  Returns:
    The loss: a scalar, or the broadcast shape for ``'none'``.
  """
  check_broadcastable("poisson_nll_loss", input=input, target=target)
  # Integer counts compute in the input's type, as torch; a boolean target also,
  # except with full=True (torch subtracts it there).
  (input, target), out_dtype = as_float(
    input,
    target,
    names=("input", "target"),
    loss="poisson_nll_loss",
    integers=("target",),
    booleans=() if full else ("target",),
  )
  if log_input:
    loss = jnp.exp(input) - target * input
  else:
    loss = input - target * jnp.log(input + eps)
  if full:
    # Evaluate the Stirling term at a safe y where it is masked, so that its
    # gradient there is 0, not 0 * inf. torch masks where y <= 1: NaN stays in.
    big = ~(target <= 1)
    y = jnp.where(big, target, 2.0)
    stirling = y * jnp.log(y) - y + 0.5 * jnp.log(2 * math.pi * y)
    loss = loss + jnp.where(big, stirling, 0.0)
  return reduce_loss(loss, reduction, out_dtype=out_dtype)


def _gaussian_var_shape(input_shape, var_shape):
  """torch's accepted shapes of ``var``; returns the shape to reshape it to."""
  if var_shape == input_shape:
    return var_shape
  if input_shape[:-1] == var_shape:  # one variance per row of the last dimension
    return var_shape + (1,)
  if len(input_shape) == len(var_shape):
    mismatched = [v for i, v in zip(input_shape, var_shape) if i != v]
    if sum(mismatched) == 1:  # exactly one dimension where var has size 1
      return var_shape
  raise ValueError(
    f"gaussian_nll_loss: var shape {var_shape} is of incorrect size for input shape "
    f"{input_shape}; expected {input_shape}, {input_shape[:-1]}, or {input_shape} with "
    "one dimension of size 1"
  )


def gaussian_nll_loss(
  input,
  target,
  var,
  *,
  full: bool = False,
  eps: float = 1e-6,
  reduction: str = "mean",
) -> jax.Array:
  r"""Gaussian negative log likelihood, ``torch.nn.functional.gaussian_nll_loss``.

  .. math::
     \ell_i = \tfrac12 \left(\log \max(\sigma^2_i, \epsilon)
              + \frac{(x_i - y_i)^2}{\max(\sigma^2_i, \epsilon)}\right)
              \;+\; [\text{full}]\, \tfrac12 \log 2\pi

  Args:
    input: predicted means, ``(N, *)``.
    target: targets, ``(N, *)`` (broadcastable to ``input``).
    var: predicted variances: the shape of ``input``, ``input.shape[:-1]``, the
      shape of ``input`` with one dimension of size 1, or a Python float.
    full: include the constant.
    eps: lower clamp of ``var``.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

  Returns:
    The loss: a scalar, or the broadcast shape for ``'none'``.

  Note:
    As torch, ``var`` is clamped to ``eps`` without gradient: where it is clamped,
    the gradient flows to ``var`` as if it were not. Negative variances raise
    ``ValueError`` when ``var`` is concrete (outside ``jit``).
  """
  check_broadcastable("gaussian_nll_loss", input=input, target=target)
  if isinstance(var, (int, float)):
    if var < 0:
      raise ValueError(f"gaussian_nll_loss: var has negative entry/entries (var={var})")
    var = jnp.full(jnp.shape(input), var, jnp.result_type(input))
  elif is_concrete(var) and bool(jnp.any(jnp.asarray(var) < 0)):
    raise ValueError("gaussian_nll_loss: var has negative entry/entries")
  (input, target, var), out_dtype = as_float(
    input,
    target,
    var,
    names=("input", "target", "var"),
    loss="gaussian_nll_loss",
    integers=("target",),
  )
  var = var.reshape(_gaussian_var_shape(input.shape, var.shape))
  # max(var, eps) with the gradient of var itself: var - stop_gradient(var) is 0 with
  # var's gradient (not var + (max - var), which is NaN at var = inf).
  var = jnp.where(var < eps, eps + (var - jax.lax.stop_gradient(var)), var)
  loss = 0.5 * (jnp.log(var) + jnp.square(input - target) / var)
  if full:
    loss = loss + 0.5 * math.log(2 * math.pi)
  return reduce_loss(loss, reduction, out_dtype=out_dtype)
