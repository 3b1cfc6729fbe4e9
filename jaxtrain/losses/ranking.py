"""Ranking and embedding losses: margins between scores, pairs and triplets.

Every function mirrors its ``torch.nn.functional`` namesake: same argument names,
defaults and values, with hyper-parameters keyword-only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxtrain.losses._checks import check_broadcastable, plain_when_concrete
from jaxtrain.losses._reduction import as_float, reduce_loss


def _clamp_min0(z: jax.Array) -> jax.Array:
  """torch's ``clamp_min(z, 0)``: NaN stays NaN, and the gradient passes where z >= 0,
  including z == 0 (``jnp.maximum`` would split it in half there), and not at NaN."""
  # The maximum of a constant only makes the value NaN where z is: XLA's max
  # propagates NaN. One more elementwise operation in the same fused loop.
  return jnp.where(z >= 0, z, jnp.maximum(jax.lax.stop_gradient(z), 0.0))


@jax.custom_jvp
def _minimum_rule(a: jax.Array, b: jax.Array) -> jax.Array:
  """``torch.minimum``: NaN propagates; its gradient goes to the smaller argument, half
  to each at a tie, and in full to both where either is NaN (torch's masks)."""
  return jnp.minimum(a, b)


@_minimum_rule.defjvp
def _minimum_jvp(primals, tangents):
  (a, b), (da, db) = primals, tangents
  tie = a == b
  wa = jnp.where(tie, 0.5, jnp.where(a > b, 0.0, 1.0))
  wb = jnp.where(tie, 0.5, jnp.where(a < b, 0.0, 1.0))
  return jnp.minimum(a, b), wa * da + wb * db


_minimum = plain_when_concrete(_minimum_rule)


def _same_ndim(loss: str, **arrays) -> None:
  dims = {name: jnp.ndim(a) for name, a in arrays.items()}
  if len(set(dims.values())) > 1:
    shapes = ", ".join(f"{name} {tuple(jnp.shape(a))}" for name, a in arrays.items())
    raise ValueError(f"{loss}: all inputs must have the same number of dimensions, got {shapes}")


def margin_ranking_loss(
  input1, input2, target, *, margin: float = 0.0, reduction: str = "mean"
) -> jax.Array:
  r"""Pairwise ranking hinge, ``torch.nn.functional.margin_ranking_loss``.

  .. math:: \ell_i = \max(0, -y_i (x^{(1)}_i - x^{(2)}_i) + \text{margin})

  Args:
    input1: scores :math:`x^{(1)}`, any shape.
    input2: scores :math:`x^{(2)}`, same number of dimensions (broadcastable).
    target: :math:`y = 1` where ``input1`` should rank higher, :math:`-1` otherwise;
      same number of dimensions.
    margin: the margin.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

  Returns:
    A scalar, or the broadcast shape for ``'none'``.
  """
  check_broadcastable("margin_ranking_loss", input1=input1, input2=input2, target=target)
  _same_ndim("margin_ranking_loss", input1=input1, input2=input2, target=target)
  # Integer labels compute in the inputs' type (torch negates a boolean one: no).
  (input1, input2, target), out_dtype = as_float(
    input1,
    input2,
    target,
    names=("input1", "input2", "target"),
    loss="margin_ranking_loss",
    integers=("target",),
  )
  loss = _clamp_min0(-target * (input1 - input2) + margin)
  return reduce_loss(loss, reduction, out_dtype=out_dtype)


def hinge_embedding_loss(
  input, target, *, margin: float = 1.0, reduction: str = "mean"
) -> jax.Array:
  r"""Hinge loss on distances, ``torch.nn.functional.hinge_embedding_loss``.

  .. math::
     \ell_i = [y_i \ne -1]\; x_i \;+\; [y_i \ne 1] \max(0, \text{margin} - x_i)

  Args:
    input: distances :math:`x` (usually non-negative), any shape.
    target: labels :math:`\pm 1`, broadcastable to ``input``.
    margin: the margin.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

  Returns:
    A scalar, or the broadcast shape for ``'none'``.

  Note:
    As in torch, a label that is neither 1 nor -1 takes both terms.
  """
  check_broadcastable("hinge_embedding_loss", input=input, target=target)
  # torch only compares the labels with 1 and -1: integer and boolean ones too, and
  # their type leaves the result's alone.
  input_dtype = jnp.result_type(input)
  (input, target), _ = as_float(
    input,
    target,
    names=("input", "target"),
    loss="hinge_embedding_loss",
    integers=("target",),
    booleans=("target",),
  )
  out_dtype = input_dtype
  loss = jnp.where(target != 1, _clamp_min0(margin - input), 0.0) + jnp.where(
    target != -1, input, 0.0
  )
  return reduce_loss(loss, reduction, out_dtype=out_dtype)


# torch adds this to each squared norm before the square root.
_COSINE_EPSILON = 1e-12


def cosine_embedding_loss(
  input1, input2, target, *, margin: float = 0.0, reduction: str = "mean"
) -> jax.Array:
  r"""Cosine similarity hinge, ``torch.nn.functional.cosine_embedding_loss``.

  .. math::
     \cos_i = \frac{x^{(1)}_i \cdot x^{(2)}_i}
                   {\sqrt{(\|x^{(1)}_i\|^2 + 10^{-12})(\|x^{(2)}_i\|^2 + 10^{-12})}}, \qquad
     \ell_i = \begin{cases} 1 - \cos_i & y_i = 1 \\
                            \max(0, \cos_i - \text{margin}) & y_i = -1 \end{cases}

  Args:
    input1: embeddings, ``(N, D)`` or ``(D,)``.
    input2: embeddings, ``input1``'s shape.
    target: labels :math:`\pm 1`, ``(N,)`` or ``()``.
    margin: the margin, in :math:`[-1, 1]`.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

  Returns:
    A scalar, or ``(N,)`` for ``'none'``.
  """
  check_broadcastable("cosine_embedding_loss", input1=input1, input2=input2)
  target_ndim = jnp.ndim(target)
  if target_ndim not in (0, 1):
    raise ValueError(
      f"cosine_embedding_loss: target must be 0-D or 1-D, got shape {tuple(jnp.shape(target))}"
    )
  if jnp.ndim(input1) != target_ndim + 1 or jnp.ndim(input2) != target_ndim + 1:
    raise ValueError(
      f"cosine_embedding_loss: a {target_ndim}-D target expects {target_ndim + 1}-D input1 and "
      f"input2, got shapes {tuple(jnp.shape(input1))} and {tuple(jnp.shape(input2))}"
    )
  # torch only compares the labels with 1 and -1: integer and boolean ones too, and
  # their type leaves the result's alone.
  out_dtype = jnp.result_type(input1, input2)
  (input1, input2, target), _ = as_float(
    input1,
    input2,
    target,
    names=("input1", "input2", "target"),
    loss="cosine_embedding_loss",
    integers=("target",),
    booleans=("target",),
  )
  prod = jnp.sum(input1 * input2, axis=-1)
  mag1 = jnp.sum(input1 * input1, axis=-1) + _COSINE_EPSILON
  mag2 = jnp.sum(input2 * input2, axis=-1) + _COSINE_EPSILON
  cos = prod / jnp.sqrt(mag1 * mag2)
  loss = jnp.where(target == 1, 1 - cos, 0.0) + jnp.where(
    target == -1, _clamp_min0(cos - margin), 0.0
  )
  return reduce_loss(loss, reduction, out_dtype=out_dtype)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _norm_rule(d: jax.Array, p: float) -> jax.Array:
  """``torch.linalg.vector_norm(d, p, dim=-1)`` (a 0-d ``d``: its absolute value)."""
  a = jnp.abs(d)
  if d.ndim == 0:
    a = a[None]
  if p == 0:  # the count of nonzero entries (NaN counts)
    return jnp.sum(a != 0, axis=-1).astype(d.dtype)
  if p == jnp.inf:
    return jnp.max(a, axis=-1)
  if p == -jnp.inf:
    return jnp.min(a, axis=-1)
  if p == 1:
    return jnp.sum(a, axis=-1)
  if p == 2:
    return jnp.sqrt(jnp.sum(a * a, axis=-1))
  return jnp.sum(a**p, axis=-1) ** (1.0 / p)


@_norm_rule.defjvp
def _norm_jvp(p, primals, tangents):
  """torch's ``linalg_vector_norm_backward``, case by case, so that zeros, NaN and
  infinities give its gradients: 0 at a zero vector, NaN where a NaN or an infinite
  entry meets them (autodiff of the value would give other NaN)."""
  (d,), (dd,) = primals, tangents
  norm = _norm_rule.fun(d, p)
  n = norm[..., None] if d.ndim else norm
  # torch's sgn: 0 at 0 and at NaN.
  sgn = (d > 0).astype(d.dtype) - (d < 0).astype(d.dtype)
  a = jnp.abs(d)
  if p == 0:
    coef = jnp.zeros_like(d)
  elif p == 1:
    coef = sgn
  elif p == 2:
    coef = jnp.where(n == 0, 0.0, d / n)
  elif abs(p) == jnp.inf:
    mask = (a == n) | jnp.isnan(a)
    count = jnp.sum(mask, axis=-1, keepdims=True) if d.ndim else mask.astype(d.dtype)
    coef = sgn * mask / count
  elif p < 1:
    coef = sgn * jnp.where(d == 0, 0.0, a ** (p - 1)) * n ** (1 - p)
  else:
    scaled = sgn * a ** (p - 1) if p < 2 else d * a ** (p - 2)
    coef = scaled * jnp.where(n == 0, 0.0, 1 / n ** (p - 1))
  return norm, jnp.sum(coef * dd, axis=-1) if d.ndim else coef * dd


_norm = plain_when_concrete(_norm_rule)


def pairwise_distance(x1, x2, *, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
  r"""p-norm distance over the last dimension, ``torch.nn.functional.pairwise_distance``.

  .. math:: d_i = \| x^{(1)}_i - x^{(2)}_i + \epsilon \|_p

  Args:
    x1: ``(N, D)``, ``(D,)`` or 0-d.
    x2: broadcastable to ``x1``.
    p: the norm degree, any real number or ``±inf``, as torch's
      ``linalg.vector_norm``: ``p = 0`` counts the nonzero entries, ``inf`` is the
      largest magnitude, ``-inf`` the smallest, other ``p`` give
      :math:`(\sum_j |d_j|^p)^{1/p}` (not a norm below 1).
    eps: added to the difference (not the norm), as torch.
    keepdim: keep the reduced dimension.

  Returns:
    ``(N,)`` or ``()`` distances (``(N, 1)`` with ``keepdim``), in the inputs' dtype.
  """
  check_broadcastable("pairwise_distance", x1=x1, x2=x2)
  (x1, x2), out_dtype = as_float(x1, x2, names=("x1", "x2"), loss="pairwise_distance")
  d = _norm(x1 - x2 + eps, float(p))
  return (d[..., None] if keepdim and (x1.ndim or x2.ndim) else d).astype(out_dtype)


def _triplet(dist_pos, dist_neg, dist_swap, margin, reduction, out_dtype):
  if dist_swap is not None:
    dist_neg = _minimum(dist_neg, dist_swap)
  loss = _clamp_min0(margin + dist_pos - dist_neg)
  return reduce_loss(loss, reduction, out_dtype=out_dtype)


def _check_triplet(anchor, positive, negative, margin, loss):
  if margin <= 0:
    raise ValueError(f"{loss}: margin must be greater than 0, got margin={margin}")
  _same_ndim(loss, anchor=anchor, positive=positive, negative=negative)


def triplet_margin_loss(
  anchor,
  positive,
  negative,
  *,
  margin: float = 1.0,
  p: float = 2.0,
  eps: float = 1e-6,
  swap: bool = False,
  reduction: str = "mean",
) -> jax.Array:
  r"""Triplet loss with p-norm distances, ``torch.nn.functional.triplet_margin_loss``.

  .. math:: \ell_i = \max(0, \text{margin} + d(a_i, p_i) - d(a_i, n_i))

  with :math:`d` = ``pairwise_distance(., ., p=p, eps=eps)``; with ``swap``,
  :math:`d(a_i, n_i)` is replaced by :math:`\min(d(a_i, n_i), d(p_i, n_i))`.

  Args:
    anchor: ``(N, D)`` or ``(D,)``.
    positive: same number of dimensions as ``anchor``.
    negative: same number of dimensions as ``anchor``.
    margin: positive margin.
    p: the norm degree.
    eps: added to differences inside the norm.
    swap: use the distance swap of Balntas et al.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

  Returns:
    A scalar, or ``(N,)`` for ``'none'``.
  """
  check_broadcastable("triplet_margin_loss", anchor=anchor, positive=positive, negative=negative)
  _check_triplet(anchor, positive, negative, margin, "triplet_margin_loss")
  (anchor, positive, negative), out_dtype = as_float(
    anchor,
    positive,
    negative,
    names=("anchor", "positive", "negative"),
    loss="triplet_margin_loss",
  )
  dist = lambda x, y: pairwise_distance(x, y, p=p, eps=eps)  # noqa: E731
  return _triplet(
    dist(anchor, positive),
    dist(anchor, negative),
    dist(positive, negative) if swap else None,
    margin,
    reduction,
    out_dtype,
  )


def triplet_margin_with_distance_loss(
  anchor,
  positive,
  negative,
  *,
  distance_function: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
  margin: float = 1.0,
  swap: bool = False,
  reduction: str = "mean",
) -> jax.Array:
  r"""Triplet loss with any distance, ``torch.nn.functional.triplet_margin_with_distance_loss``.

  .. math:: \ell_i = \max(0, \text{margin} + d(a_i, p_i) - d(a_i, n_i))

  Args:
    anchor: ``(N, D)`` or ``(D,)`` (any shape ``distance_function`` accepts).
    positive: same number of dimensions as ``anchor``.
    negative: same number of dimensions as ``anchor``.
    distance_function: a JAX function of two arrays returning non-negative
      distances; default ``pairwise_distance`` (Euclidean, ``eps=1e-6``).
    margin: positive margin.
    swap: use the distance swap of Balntas et al.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'``.

  Returns:
    A scalar, or the distances' shape for ``'none'``.
  """
  _check_triplet(anchor, positive, negative, margin, "triplet_margin_with_distance_loss")
  (anchor, positive, negative), out_dtype = as_float(
    anchor,
    positive,
    negative,
    names=("anchor", "positive", "negative"),
    loss="triplet_margin_with_distance_loss",
  )
  dist = pairwise_distance if distance_function is None else distance_function
  return _triplet(
    dist(anchor, positive),
    dist(anchor, negative),
    dist(positive, negative) if swap else None,
    margin,
    reduction,
    out_dtype,
  )
