"""Classification losses: likelihoods over classes, binary targets and margins.

Every function mirrors its ``torch.nn.functional`` namesake: same argument names,
defaults and values, with hyper-parameters keyword-only. Where torch puts classes
on dimension 1 (``cross_entropy``, ``nll_loss``), an ``axis`` keyword lets
channels-last callers name another dimension without transposing.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero
from jax.scipy.special import xlogy

from jaxtrain.losses._checks import (
  INDEX_DTYPES,
  INDEX_OR_BYTE_DTYPES,
  check_broadcastable,
  check_class_range,
  check_int,
  check_same_shape,
  gather_classes,
  is_concrete,
  plain_when_concrete,
)
from jaxtrain.losses._logistic import log_sigmoid_pair, softplus
from jaxtrain.losses._reduction import as_float, check_same_dtype, float_dtypes, reduce_loss
from jaxtrain.losses._softmax import log_sum_exp


def _class_axis(ndim: int, axis: int | None, loss: str) -> int:
  """torch's class dimension (1, or 0 for unbatched input), or ``axis`` normalised."""
  if ndim == 0:
    raise ValueError(f"{loss}: input must have at least 1 dimension (the classes), got a scalar")
  if axis is None:
    return 1 if ndim >= 2 else 0
  if not -ndim <= axis < ndim:
    raise ValueError(f"{loss}: axis={axis} is out of range for input with {ndim} dimensions")
  return axis % ndim


def _class_weight(weight, num_classes: int, loss: str, input_dtype, dtype):
  """``weight`` checked (``(C,)``, floating, the input's dtype as torch's kernels require)
  and converted to the compute ``dtype``."""
  if weight is None:
    return None
  if jnp.shape(weight) != (num_classes,):
    raise ValueError(
      f"{loss}: weight must have shape ({num_classes},), one entry per class, got "
      f"{tuple(jnp.shape(weight))}"
    )
  float_dtypes(weight, names=("weight",), loss=loss)
  check_same_dtype(input_dtype, jnp.result_type(weight), names=("input", "weight"), loss=loss)
  return jnp.asarray(weight, dtype)


def _broadcast_on_axis(v, ndim: int, axis: int):
  """A ``(C,)`` vector shaped to broadcast along ``axis`` of an ``ndim`` array."""
  shape = [1] * ndim
  shape[axis] = v.shape[0]
  return v.reshape(shape)


def _unbatched_target(input, target):
  """torch reads a ``(1,)`` target of an unbatched ``(C,)`` input as its 0-d class."""
  if input.ndim == 1 and jnp.shape(target) == (1,):
    return jnp.reshape(target, ())
  return target


def _nll_terms(logp, target, weight, ignore_index, axis, loss, shift=()):
  """Per-element ``-w[t] * logp[t]`` and the weights ``w[t]`` (0 where ignored).

  With ``shift`` (arrays of the target's shape), ``logp[t] - shift[0] - shift[1] ...``
  replaces ``logp[t]``: the same numbers as gathering from ``logp - shift[0] - ...``
  broadcast, without that array.
  """
  check_int(target, name="target", loss=loss, allowed=INDEX_OR_BYTE_DTYPES)
  expected = logp.shape[:axis] + logp.shape[axis + 1 :]
  if jnp.shape(target) != expected:
    raise ValueError(
      f"{loss}: target shape {tuple(jnp.shape(target))} must equal input shape "
      f"{logp.shape} without its class dimension {axis}, that is {expected}"
    )
  num_classes = logp.shape[axis]
  check_class_range(target, num_classes, ignore_index=ignore_index, loss=loss)
  target = jnp.asarray(target)
  if target.dtype == jnp.uint8:  # ignore_index may be negative
    target = target.astype(jnp.int32)
  valid = target != ignore_index
  index = jnp.where(valid, target, 0)
  if weight is None:
    w = valid.astype(logp.dtype)
  else:
    w = jnp.where(valid, jnp.take(weight, index, mode="fill", fill_value=jnp.nan), 0.0)
  # where, not w * ...: an ignored position must give 0 even if its logp is -inf.
  picked = gather_classes(logp, index, axis)
  for s in shift:
    picked = picked - s
  terms = jnp.where(valid, -w * picked, 0.0)
  return terms, w, valid


def nll_loss(
  input,
  target,
  *,
  weight=None,
  ignore_index: int = -100,
  reduction: str = "mean",
  axis: int | None = None,
) -> jax.Array:
  r"""Negative log likelihood of class indices, ``torch.nn.functional.nll_loss``.

  .. math:: \ell_n = -w_{y_n} \, x_{n, y_n} \qquad (0 \text{ where } y_n = \text{ignore\_index})

  ``'mean'`` divides the sum by :math:`\sum_n w_{y_n}` over non-ignored targets
  (the count of them without ``weight``).

  Args:
    input: log-probabilities, ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)``.
    target: class indices (int64, int32 or uint8, as torch), ``input``'s shape without
      the class dimension; a ``(1,)`` target of a ``(C,)`` input is read as 0-d.
    weight: optional ``(C,)`` class weights.
    ignore_index: a target value that contributes neither loss nor weight.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    axis: the class dimension; ``None`` is torch's (1, or 0 for unbatched input).

  Returns:
    A scalar, or ``target``'s shape for ``'none'``.

  Note:
    When every target is ignored, ``'mean'`` is NaN (0/0) and the gradient is 0,
    as in torch. Out-of-range targets raise ``ValueError`` on concrete arrays and
    give NaN under ``jit``.
  """
  (input,), out_dtype = as_float(input, names=("input",), loss="nll_loss")
  axis = _class_axis(input.ndim, axis, "nll_loss")
  weight = _class_weight(weight, input.shape[axis], "nll_loss", out_dtype, input.dtype)
  target = _unbatched_target(input, target)
  terms, w, _ = _nll_terms(input, target, weight, ignore_index, axis, "nll_loss")
  return reduce_loss(terms, reduction, denominator=jnp.sum(w), out_dtype=out_dtype)


def _cross_entropy_probabilities(
  input, target, weight, ignore_index, reduction, label_smoothing, axis
):
  """``cross_entropy`` with class-probability targets (``target`` shaped like ``input``)."""
  # torch computes -sum(log_softmax(x) * q * w): the three dtypes promote.
  names = ("input", "target") + (() if weight is None else ("weight",))
  arrays = (input, target) + (() if weight is None else (weight,))
  out_dtype, compute = float_dtypes(*arrays, names=names, loss="cross_entropy")
  input = jnp.asarray(input).astype(compute)
  axis = _class_axis(input.ndim, axis, "cross_entropy")
  num_classes = input.shape[axis]
  if weight is not None:
    weight = _class_weight(weight, num_classes, "cross_entropy", jnp.result_type(weight), compute)
  w_c = None if weight is None else _broadcast_on_axis(weight, input.ndim, axis)
  logp = jax.nn.log_softmax(input, axis=axis)
  if ignore_index >= 0:
    raise ValueError(
      f"cross_entropy: ignore_index={ignore_index} is not supported with class-probability "
      "targets; pass a negative ignore_index"
    )
  q = jnp.asarray(target, input.dtype)
  if label_smoothing > 0:
    q = q * (1 - label_smoothing) + label_smoothing / num_classes
  prod = logp * q if w_c is None else logp * q * w_c
  terms = -jnp.sum(prod, axis=axis)
  return reduce_loss(terms, reduction, denominator=terms.size, out_dtype=out_dtype)


def cross_entropy(
  input,
  target,
  *,
  weight=None,
  ignore_index: int = -100,
  reduction: str = "mean",
  label_smoothing: float = 0.0,
  axis: int | None = None,
) -> jax.Array:
  r"""Cross entropy of logits, ``torch.nn.functional.cross_entropy``.

  With class indices :math:`y_n` and :math:`p = \mathrm{log\_softmax}(x)` over classes:

  .. math::
     \ell_n = (1 - \varepsilon)\,(-w_{y_n} p_{n,y_n})
              + \frac{\varepsilon}{C} \sum_c (-w_c\, p_{n,c})

  and ``'mean'`` divides by :math:`\sum_n w_{y_n}` over non-ignored targets. With
  class probabilities :math:`q` (``target`` shaped like ``input``, floating):

  .. math::
     \ell_n = -\sum_c w_c\, p_{n,c}\, \big((1 - \varepsilon) q_{n,c} + \varepsilon / C\big)

  and ``'mean'`` divides by the number of samples :math:`N \cdot d_1 \cdots`.

  Args:
    input: logits, ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)``.
    target: integer class indices (``input``'s shape without the class dimension),
      or floating class probabilities of ``input``'s shape.
    weight: optional ``(C,)`` class weights.
    ignore_index: a class-index target to skip (must be negative with probabilities).
    reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    label_smoothing: :math:`\varepsilon \in [0, 1]`.
    axis: the class dimension; ``None`` is torch's (1, or 0 for unbatched input).
      Pass ``axis=-1`` for channels-last ``(N, d1, ..., C)`` logits.

  Returns:
    A scalar, or the shape without the class dimension for ``'none'``.

  Example:
    >>> cross_entropy(jnp.array([[0.1, 0.2, 0.3]]), jnp.array([1]))  # 1.1019
    Array(1.1019429, dtype=float32)

  Note:
    torch's denominator for weighted ``'mean'`` is the summed weight of the
    targets, also for the label-smoothing term; with probability targets it is the
    sample count, weights or not.
  """
  if not 0.0 <= label_smoothing <= 1.0:
    raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
  _class_axis(jnp.ndim(input), axis, "cross_entropy")  # a 0-d input has no classes
  if jnp.shape(target) == jnp.shape(input):  # class probabilities, as torch decides
    return _cross_entropy_probabilities(
      input, target, weight, ignore_index, reduction, label_smoothing, axis
    )
  (input,), out_dtype = as_float(input, names=("input",), loss="cross_entropy")
  axis = _class_axis(input.ndim, axis, "cross_entropy")
  num_classes = input.shape[axis]

  weight = _class_weight(weight, num_classes, "cross_entropy", out_dtype, input.dtype)
  w_c = None if weight is None else _broadcast_on_axis(weight, input.ndim, axis)
  if label_smoothing > 0:
    # torch 2.13's label-smoothing path fails on both: its weighted mean gathers the
    # weights with the target as an index (no uint8), and it broadcasts a (1,) target
    # against the 0-d loss.
    if jnp.result_type(target) == jnp.uint8 and weight is not None and reduction == "mean":
      raise TypeError(
        "cross_entropy: a uint8 target is not supported with label_smoothing, "
        "weight and reduction='mean' (torch 2.13 rejects it); pass int64 or int32 "
        "class indices"
      )
    if input.ndim == 1 and jnp.shape(target) == (1,):
      raise ValueError(
        "cross_entropy: a target of shape (1,) for unbatched input of shape "
        f"{input.shape} is not supported with label_smoothing (torch 2.13 "
        "rejects it); pass a 0-d target"
      )
  target = _unbatched_target(input, target)

  # log_softmax's own steps (x shifted by its maximum, then the log of the sum of
  # exponentials), without forming log p = shifted - lse for every class: the
  # target's log p is shifted[target] - lse, the same operations on the same
  # numbers, with fewer passes over the logits (XLA:CPU pays per pass: docs/log.md); the loss
  # is -w log p as torch multiplies it (w lse - w shifted would be inf - inf = NaN for
  # an infinite weight where shifted is 0).
  # lse's gradient recomputes exp(shifted) rather than keeping it (see _softmax.py).
  m = jax.lax.stop_gradient(jnp.max(input, axis=axis, keepdims=True))
  lse = log_sum_exp(input, m, axis)
  # The target's shifted logit, gathered from the logits: XLA then need not write
  # out the shifted array for the gather (the gradient pass recomputes it).
  terms, w, valid = _nll_terms(
    input, target, weight, ignore_index, axis, "cross_entropy", shift=(jnp.squeeze(m, axis), lse)
  )
  if label_smoothing > 0:
    # -sum_c w_c log p_c, torch's smoothing term.
    shifted = input - m
    if w_c is None:  # = C lse - sum_c shifted_c
      smooth = num_classes * lse - jnp.sum(shifted, axis=axis)
    else:  # torch's order: an infinite weight times lse - shifted = 0 is NaN there too
      smooth = jnp.sum((jnp.expand_dims(lse, axis) - shifted) * w_c, axis=axis)
    terms = (1 - label_smoothing) * terms + (label_smoothing / num_classes) * jnp.where(
      valid, smooth, 0.0
    )
  return reduce_loss(terms, reduction, denominator=jnp.sum(w), out_dtype=out_dtype)


# torch's BCE backward divides by max(x (1 - x), EPSILON).
_BCE_EPSILON = 1e-12


@jax.custom_vjp
def _bce(x, y):
  # torch clamps each log at -100 so that x in {0, 1} gives a finite loss.
  return -(y * jnp.maximum(jnp.log(x), -100.0) + (1 - y) * jnp.maximum(jnp.log1p(-x), -100.0))


def _bce_fwd(x, y):
  return _bce(x, y), (x, y)


def _bce_bwd(res, g):
  # torch's formulas, not the derivative of the clamped forward: at x in {0, 1}
  # the input gradient is finite ((x - y) / 1e-12) and the target gradient is
  # -logit(x), infinite.
  x, y = res
  gx = g * (x - y) / jnp.maximum((1 - x) * x, _BCE_EPSILON)
  gy = g * (jnp.log1p(-x) - jnp.log(x))
  return gx, gy


_bce.defvjp(_bce_fwd, _bce_bwd)


def binary_cross_entropy(input, target, *, weight=None, reduction: str = "mean") -> jax.Array:
  r"""Binary cross entropy of probabilities, ``torch.nn.functional.binary_cross_entropy``.

  .. math:: \ell_i = -w_i \big(y_i \max(\log x_i, -100) + (1 - y_i) \max(\log(1 - x_i), -100)\big)

  Args:
    input: probabilities in :math:`[0, 1]`, any shape.
    target: targets in :math:`[0, 1]`, ``input``'s shape.
    weight: optional weights broadcastable to ``input``.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

  Returns:
    A scalar, or ``input``'s shape for ``'none'``.

  Note:
    torch clamps the logs at -100, so probabilities of exactly 0 and 1 give a
    finite loss (100 per wrong element). The gradients are torch's:
    :math:`\partial/\partial x = w (x - y) / \max(x (1 - x), 10^{-12})` and
    :math:`\partial/\partial y = -w\,\mathrm{logit}(x)`. Prefer
    ``binary_cross_entropy_with_logits`` on logits: it is stable.
  """
  check_same_shape(input, target, names=("input", "target"), loss="binary_cross_entropy")
  # torch's kernel takes input and target of one floating type; the weight multiplies
  # the loss in place, which keeps the input's type.
  float_dtypes(input, target, names=("input", "target"), loss="binary_cross_entropy")
  check_same_dtype(
    jnp.result_type(input),
    jnp.result_type(target),
    names=("input", "target"),
    loss="binary_cross_entropy",
  )
  (input, target), out_dtype = as_float(
    input, target, names=("input", "target"), loss="binary_cross_entropy"
  )
  # As torch's checks: a NaN is not between 0 and 1 either.
  for array, name in ((input, "input"), (target, "target")):
    if is_concrete(array) and not bool(jnp.all((array >= 0) & (array <= 1))):
      raise ValueError(f"binary_cross_entropy: all elements of {name} must be between 0 and 1")
  loss = _bce(input, target)
  if weight is not None:
    (weight,), _ = as_float(weight, names=("weight",), loss="binary_cross_entropy")
    _check_broadcasts_to(weight, loss.shape, name="weight", loss="binary_cross_entropy")
    loss = loss * jnp.broadcast_to(weight, loss.shape)
  return reduce_loss(loss, reduction, out_dtype=out_dtype)


def _check_broadcasts_to(x, shape, *, name: str, loss: str) -> None:
  """Raises ``ValueError`` unless ``x`` broadcasts to ``shape`` without growing it (torch
  applies these weights in place)."""
  try:
    ok = jnp.broadcast_shapes(jnp.shape(x), shape) == tuple(shape)
  except ValueError:
    ok = False
  if not ok:
    raise ValueError(
      f"{loss}: {name} shape {tuple(jnp.shape(x))} must broadcast to input shape {tuple(shape)}"
    )


@jax.custom_jvp
def _bce_logits(x, t):
  r"""``(1 - t) x - \log\sigma(x)``, elementwise, as torch's kernel writes it."""
  return (1 - t) * x - (jnp.minimum(x, 0) - jnp.log1p(jnp.exp(-jnp.abs(x))))


@jax.custom_jvp
def _bce_logits_pos(x, t, pos_weight):
  r"""``(1 - t) x - (1 + (p - 1) t) \log\sigma(x)``, elementwise, as torch's kernel."""
  log_sig = jnp.minimum(x, 0) - jnp.log1p(jnp.exp(-jnp.abs(x)))
  return (1 - t) * x - ((pos_weight - 1) * t + 1) * log_sig


def _bce_logits_jvp(primals, tangents):
  r"""torch's derivatives (its backward formulas, not autodiff of the value, so that
  NaN and infinities come out where torch's do): with :math:`p` the positive weight
  (1 without one), :math:`((p t + 1 - t) \sigma(x) - p t)` for the input,
  :math:`\log\sigma(-x) - p \log\sigma(x)` for the target (``-x`` without ``p``)
  and :math:`-t \log\sigma(x)` for :math:`p`. Tangents that are symbolic zeros add
  nothing (a zero times an infinite factor would add NaN)."""
  x, t = primals[:2]
  e = jnp.exp(-jnp.abs(x))
  r = 1 / (1 + e)
  lg = jnp.log1p(e)
  log_sig = jnp.minimum(x, 0) - lg
  sig = jnp.where(x >= 0, r, e * r)
  if len(primals) == 2:
    out = (1 - t) * x - log_sig
    d_x, d_t, d_p = sig - t, -x, None
  else:
    p = primals[2]
    out = (1 - t) * x - ((p - 1) * t + 1) * log_sig
    pt = p * t
    d_x = (pt + 1 - t) * sig - pt
    d_t = (jnp.minimum(-x, 0) - lg) - log_sig * p
    d_p = -t * log_sig
  tangent = jnp.zeros_like(out)
  for dv, coef in zip(tangents, (d_x, d_t, d_p)):
    if not isinstance(dv, SymbolicZero):
      tangent = tangent + dv * coef
  return out, tangent


_bce_logits.defjvp(_bce_logits_jvp, symbolic_zeros=True)
_bce_logits_pos.defjvp(_bce_logits_jvp, symbolic_zeros=True)
bce_logits = plain_when_concrete(_bce_logits)
bce_logits_pos = plain_when_concrete(_bce_logits_pos)


def binary_cross_entropy_with_logits(
  input, target, *, weight=None, reduction: str = "mean", pos_weight=None
) -> jax.Array:
  r"""Binary cross entropy of logits, ``torch.nn.functional.binary_cross_entropy_with_logits``.

  .. math::
     \ell_i = w_i \big((1 - y_i)\, x_i - (1 + (p_c - 1)\, y_i) \log\sigma(x_i)\big)

  which is :math:`-w_i (p_c y_i \log\sigma(x_i) + (1 - y_i)\log(1 - \sigma(x_i)))`
  computed without overflow (:math:`\log(1 - \sigma(x)) = \log\sigma(x) - x`).

  Args:
    input: logits, any shape.
    target: targets in :math:`[0, 1]`, ``input``'s shape.
    weight: optional weights broadcastable to ``input``.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    pos_weight: optional weight :math:`p_c` of positive examples, broadcast along
      the last dimension (one per class).

  Returns:
    A scalar, or ``input``'s shape for ``'none'``, in ``target``'s dtype (torch's
    kernel works in place on ``1 - target``).

  Note:
    The gradients are torch's formulas, :math:`w ((p_c y + 1 - y)\sigma(x) - p_c y)`
    for the input and :math:`w (\log\sigma(-x) - p_c \log\sigma(x))` for the
    target, so NaN and infinite targets or weights give torch's NaN and infinities.
  """
  loss_name = "binary_cross_entropy_with_logits"
  if jnp.shape(target) != jnp.shape(input):
    raise ValueError(
      f"{loss_name}: target size {tuple(jnp.shape(target))} must be the same as input size "
      f"{tuple(jnp.shape(input))}"
    )
  # torch's kernel starts from (1 - target) and works in place: the result has the
  # target's type (a float16 target of a float32 input gives float16).
  float_dtypes(input, target, names=("input", "target"), loss=loss_name)
  out_dtype = jnp.result_type(target)
  (input, target), _ = as_float(input, target, names=("input", "target"), loss=loss_name)
  if pos_weight is None:
    loss = bce_logits(input, target)
  else:
    (pos_weight,), _ = as_float(pos_weight, names=("pos_weight",), loss=loss_name)
    _check_broadcasts_to(pos_weight, input.shape, name="pos_weight", loss=loss_name)
    loss = bce_logits_pos(input, target, jnp.broadcast_to(pos_weight, input.shape))
  if weight is not None:
    (weight,), _ = as_float(weight, names=("weight",), loss=loss_name)
    _check_broadcasts_to(weight, input.shape, name="weight", loss=loss_name)
    loss = loss * weight
  return reduce_loss(loss, reduction, out_dtype=out_dtype)


def kl_div(input, target, *, reduction: str = "mean", log_target: bool = False) -> jax.Array:
  r"""Kullback-Leibler divergence, ``torch.nn.functional.kl_div``.

  With ``input`` the log-probabilities :math:`x` of the model and ``target`` the
  probabilities :math:`y` (or :math:`\log y` with ``log_target``):

  .. math:: \ell_i = y_i (\log y_i - x_i) \qquad (0 \text{ where } y_i = 0)

  Args:
    input: log-probabilities, any shape.
    target: probabilities (or log-probabilities), ``input``'s shape.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'`` | ``'batchmean'``.
    log_target: whether ``target`` is given in log space.

  Returns:
    A scalar, or ``input``'s shape for ``'none'``.

  Note:
    ``'mean'`` divides by every element, not by the batch; the KL divergence is
    ``'batchmean'`` (sum / ``input.shape[0]``). As torch, ``'mean'`` warns.
  """
  check_broadcastable("kl_div", input=input, target=target)
  (input, target), out_dtype = as_float(input, target, names=("input", "target"), loss="kl_div")
  if reduction == "mean":
    warnings.warn(
      "kl_div: reduction='mean' divides the total loss by both the batch size and the "
      "support size; 'batchmean' divides only by the batch size and is the KL divergence.",
      UserWarning,
      stacklevel=2,
    )
  if log_target:
    loss = jnp.exp(target) * (target - input)
  else:
    loss = xlogy(target, target) - target * input
  return reduce_loss(
    loss, reduction, allowed=("none", "mean", "sum", "batchmean"), out_dtype=out_dtype
  )


def soft_margin_loss(input, target, *, reduction: str = "mean") -> jax.Array:
  r"""Two-class logistic loss, ``torch.nn.functional.soft_margin_loss``.

  .. math:: \ell_i = \log(1 + e^{-y_i x_i})

  Args:
    input: scores, any shape.
    target: labels :math:`\pm 1` broadcastable to ``input`` (floating, integer or
      boolean, as torch takes them).
    reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

  Returns:
    A scalar, or the broadcast shape for ``'none'``.

  Note:
    Computed as ``softplus(-y x)``: where torch's ``log1p(exp(.))`` overflows to
    ``inf`` (:math:`-yx \gtrsim 89`) this gives the finite exact value, and a
    finite gradient where torch's is NaN. Elsewhere the two agree.
  """
  check_broadcastable("soft_margin_loss", input=input, target=target)
  # Integer and boolean labels compute in the input's type; the result has the
  # input's type (torch's kernel writes into a tensor like the input).
  out_dtype = jnp.result_type(input)
  (input, target), _ = as_float(
    input,
    target,
    names=("input", "target"),
    loss="soft_margin_loss",
    integers=("target",),
    booleans=("target",),
  )
  loss = softplus(-target * input)
  return reduce_loss(loss, reduction, out_dtype=out_dtype)


def multilabel_soft_margin_loss(
  input, target, *, weight=None, reduction: str = "mean"
) -> jax.Array:
  r"""One-versus-all logistic loss, ``torch.nn.functional.multilabel_soft_margin_loss``.

  .. math::
     \ell_n = -\frac1C \sum_c w_c \big(y_{nc} \log\sigma(x_{nc})
              + (1 - y_{nc}) \log\sigma(-x_{nc})\big)

  Args:
    input: scores, ``(C,)`` or ``(N, C)``.
    target: 0/1 labels, ``input``'s shape, floating or integer (not boolean: torch
      subtracts them).
    weight: optional weights broadcastable to ``input`` (typically ``(C,)``).
    reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

  Returns:
    A scalar, or ``(N,)`` for ``'none'``.
  """
  check_broadcastable("multilabel_soft_margin_loss", input=input, target=target)
  loss_name = "multilabel_soft_margin_loss"
  arrays, names = (input, target), ("input", "target")
  if weight is not None:
    arrays, names = arrays + (weight,), names + ("weight",)
  # Integer labels compute in the input's type (torch subtracts boolean ones: no).
  arrays, out_dtype = as_float(*arrays, names=names, loss=loss_name, integers=("target",))
  input, target = arrays[:2]
  if input.ndim == 0:
    raise ValueError(
      f"{loss_name}: input must have at least 1 dimension (the classes), got a scalar"
    )
  # torch's formula term by term, so that NaN and infinite labels or weights give its
  # NaN (the shorter (1 - y) x - log sigmoid(x) gives +-inf for an infinite label).
  # Both log sigmoids come from one exp and one log1p.
  log_sig, log_sig_neg = log_sigmoid_pair(input)
  loss = -(target * log_sig + (1 - target) * log_sig_neg)
  if weight is not None:
    loss = loss * arrays[2]
  loss = jnp.sum(loss, axis=-1) / input.shape[-1]
  return reduce_loss(loss, reduction, out_dtype=out_dtype)


def _check_margin_shapes(input, loss: str):
  """torch's margin kernels take ``()``, ``(C,)`` (one sample) or ``(N, C)``."""
  if input.ndim > 2:
    raise ValueError(f"{loss}: input must be (C,) or (N, C) (or 0-d), got shape {input.shape}")


def multi_margin_loss(
  input,
  target,
  *,
  p: int = 1,
  margin: float = 1.0,
  weight=None,
  reduction: str = "mean",
) -> jax.Array:
  r"""Multi-class hinge loss, ``torch.nn.functional.multi_margin_loss``.

  .. math:: \ell_n = \frac1C \sum_{c \ne y_n} w_{y_n} \max(0, \text{margin} - x_{n,y_n} + x_{n,c})^p

  Args:
    input: scores, ``(C,)`` or ``(N, C)``; a 0-d input is one sample of one class.
    target: integer classes (int64 or int32): ``(N,)``, or ``()`` or ``(1,)`` for one
      sample.
    p: 1 or 2.
    margin: the margin.
    weight: optional ``(C,)`` weights, indexed by the target class, of ``input``'s dtype.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

  Returns:
    A scalar, or ``(N,)`` for ``'none'`` (one sample: the target's shape).

  Note:
    As torch's kernel, a term counts only where its margin violation
    :math:`z = \text{margin} - x_{n,y_n} + x_{n,c}` is positive: a NaN score adds
    nothing (torch's kernel skips it), and neither does an infinite weight times a
    term that is not counted.
  """
  loss_name = "multi_margin_loss"
  if p not in (1, 2):
    raise ValueError(f"{loss_name}: p must be 1 or 2, got p={p}")
  (input,), out_dtype = as_float(input, names=("input",), loss=loss_name)
  _check_margin_shapes(input, loss_name)
  check_int(target, name="target", loss=loss_name, allowed=INDEX_DTYPES)
  target = jnp.asarray(target)
  if input.ndim <= 1:  # one sample: a 0-d or (1,) target, which gives the output's shape
    if target.shape not in ((), (1,)):
      raise ValueError(
        f"{loss_name}: target shape {target.shape} must be () or (1,) for input shape {input.shape}"
      )
    out_shape, input, target = target.shape, input.reshape(1, -1), target.reshape(1)
  elif target.shape != input.shape[:1]:
    raise ValueError(
      f"{loss_name}: target shape {target.shape} must be {input.shape[:1]} for input shape "
      f"{input.shape}"
    )
  else:
    out_shape = target.shape
  num_classes = input.shape[-1]
  check_class_range(target, num_classes, ignore_index=None, loss=loss_name)
  if weight is not None and jnp.ndim(weight) != 1:
    raise ValueError(f"{loss_name}: weight must be one-dimensional, got shape {jnp.shape(weight)}")
  weight = _class_weight(weight, num_classes, loss_name, out_dtype, input.dtype)
  x_y = gather_classes(input, target, -1)
  z = margin - x_y[..., None] + input
  # torch's kernel adds a term only where z > 0 (its gradient there too), never the
  # target's own class. The inner where keeps an uncounted z out of the product, whose
  # gradient would be 0 * weight, NaN for an infinite weight.
  counted = (z > 0) & (jnp.arange(num_classes) != target[..., None])
  z = jnp.where(counted, z, 0.0)
  h = z if p == 1 else z * z
  if weight is not None:
    h = h * jnp.take(weight, target)[..., None]
  h = jnp.where(counted, h, 0.0)
  loss = jnp.sum(h, axis=-1) / num_classes
  # An out-of-range class (possible only under jit) gives NaN, not the 0 of a skipped row.
  loss = jnp.where((target < 0) | (target >= num_classes), jnp.nan, loss).reshape(out_shape)
  return reduce_loss(loss, reduction, out_dtype=out_dtype)


# Pairs (row, target slot, class) per block of rows of the pairwise form: a block's
# intermediates stay in cache, where the unblocked form's do not. A sorted
# O(C log C) form does not pay: XLA:CPU's sort is slow (measurements: docs/log.md).
_MULTILABEL_BLOCK_PAIRS = 64 * 100 * 100
# Target slots of the shortest form; the others have 4x as many each, up to C. A
# call takes the shortest that holds every row's listed targets (multi-label data
# typically lists a few), so its work follows the targets listed rather than C, as
# torch's loop over the listed targets does (docs/log.md, 2026-11-22, session 4).
_MULTILABEL_FEWEST_SLOTS = 4


def _multilabel_margin_pairs(x, target, listed):
  """The per-sample loss over all (target slot, class) pairs: ``(R, C) -> (R,)``.

  ``target`` and ``listed`` are ``(R, S)``: the first ``S`` slots, which hold every
  listed target of these rows.
  """
  num_classes = x.shape[-1]
  index = jnp.where(listed, target, 0)
  is_target = jnp.any(
    (index[..., :, None] == jnp.arange(num_classes)) & listed[..., :, None], axis=-2
  )
  # (R, S): the score of each listed target class (NaN out of range, under jit).
  x_j = jnp.take_along_axis(x, index, axis=-1, mode="fill", fill_value=jnp.nan)
  z = 1.0 - x_j[..., :, None] + x[..., None, :]  # (R, S, C)
  # As torch's kernel: a pair counts only where z > 0 (a NaN score adds nothing).
  mask = listed[..., :, None] & ~is_target[..., None, :] & (z > 0)
  return jnp.sum(jnp.where(mask, z, 0.0), axis=(-2, -1)) / num_classes


def _multilabel_margin_blocks(x, target, listed):
  """``_multilabel_margin_pairs`` of ``(R, C)`` rows in blocks of rows (same values)."""
  (rows, num_classes), slots = x.shape, target.shape[-1]
  max_block = max(1, _MULTILABEL_BLOCK_PAIRS // (slots * num_classes))
  if rows <= max_block:
    return _multilabel_margin_pairs(x, target, listed)
  blocks = -(-rows // max_block)
  block = -(-rows // blocks)
  pad = ((0, blocks * block - rows), (0, 0))
  # Padded rows list no target: their loss is 0, and they are cut off below.
  parts = (jnp.pad(x, pad), jnp.pad(target, pad, constant_values=-1), jnp.pad(listed, pad))
  # checkpoint: the backward pass recomputes a block's pairs instead of storing them all.
  loss = jax.lax.map(
    jax.checkpoint(lambda a: _multilabel_margin_pairs(*a)),
    tuple(p.reshape(blocks, block, p.shape[-1]) for p in parts),
  )
  return loss.reshape(-1)[:rows]


def _multilabel_margin(x, target, listed):
  """The per-sample loss, ``(..., C) -> (...)``, over the fewest slots that hold the targets."""
  shape, num_classes = x.shape, x.shape[-1]
  x, target, listed = (a.reshape(-1, num_classes) for a in (x, target, listed))
  slots = [_MULTILABEL_FEWEST_SLOTS]
  while slots[-1] < num_classes:
    slots.append(4 * slots[-1])
  slots[-1] = num_classes  # the first width not below C becomes C itself
  forms = [
    lambda x, t, lengths, s=s: _multilabel_margin_blocks(x, t[:, :s], lengths[:, :s]) for s in slots
  ]
  if len(forms) == 1:
    loss = forms[0](x, target, listed)
  else:
    # Listed slots are a prefix, so the first `most` slots hold every row's targets.
    # (A switch's gradient keeps every branch's residuals, zeros for those not
    # taken: each form is blocked and checkpointed above _MULTILABEL_BLOCK_PAIRS,
    # which bounds them.)
    most = jnp.max(jnp.sum(listed, axis=-1), initial=0)
    branch = jnp.sum(most > jnp.asarray(slots[:-1]))
    loss = jax.lax.switch(branch, forms, x, target, listed)
  return loss.reshape(shape[:-1])


def multilabel_margin_loss(input, target, *, reduction: str = "mean") -> jax.Array:
  r"""Multi-label hinge loss, ``torch.nn.functional.multilabel_margin_loss``.

  .. math:: \ell_n = \frac1C \sum_{j \in Y_n} \sum_{k \notin Y_n} \max(0, 1 - (x_{n,j} - x_{n,k}))

  where :math:`Y_n` is the list of target classes of sample :math:`n`: the entries
  of ``target[n]`` before its first ``-1`` (a class listed twice counts twice).

  Args:
    input: scores, ``(C,)`` or ``(N, C)``; a 0-d input is one sample of one class.
    target: integer classes (int64 or int32) padded with ``-1``, ``input``'s shape.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

  Returns:
    A scalar, or ``(N,)`` (``()`` for unbatched input) for ``'none'``.

  Note:
    As torch's kernel, a pair counts only where :math:`1 - (x_{n,j} - x_{n,k}) > 0`:
    a NaN score adds nothing.
  """
  (input,), out_dtype = as_float(input, names=("input",), loss="multilabel_margin_loss")
  _check_margin_shapes(input, "multilabel_margin_loss")
  check_int(target, name="target", loss="multilabel_margin_loss", allowed=INDEX_DTYPES)
  check_same_shape(input, target, names=("input", "target"), loss="multilabel_margin_loss")
  out_shape, shape = input.shape[:-1], input.shape or (1,)  # 0-d: one sample, one class
  input, target = input.reshape(shape), jnp.asarray(target).reshape(shape)
  num_classes = input.shape[-1]
  # The entries before the first -1.
  first_free = jnp.min(jnp.where(target == -1, jnp.arange(num_classes), num_classes), axis=-1)
  listed = jnp.arange(num_classes) < first_free[..., None]
  if is_concrete(target):
    check_class_range(
      jnp.where(listed, target, 0), num_classes, ignore_index=None, loss="multilabel_margin_loss"
    )
  loss = _multilabel_margin(input, target, listed)
  # An out-of-range class (possible only under jit) gives NaN, not a row's skipped terms.
  out_of_range = jnp.any(listed & ((target < 0) | (target >= num_classes)), axis=-1)
  loss = jnp.where(out_of_range, jnp.nan, loss).reshape(out_shape)
  return reduce_loss(loss, reduction, out_dtype=out_dtype)
