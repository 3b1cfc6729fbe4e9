"""Ranking and embedding losses: margins between scores, pairs and triplets.

Every function mirrors its ``torch.nn.functional`` namesake: same argument names,
defaults and values, with hyper-parameters keyword-only.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxtrain.losses._reduction import as_float, as_labels, reduce_loss


def _clamp_min0(z: jax.Array) -> jax.Array:
  # torch's clamp_min(z, 0): its gradient passes where z >= 0, including z == 0
  # (jnp.maximum would split it in half there).
  return jnp.where(z >= 0, z, 0.0)


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
  _same_ndim("margin_ranking_loss", input1=input1, input2=input2, target=target)
  (input1, input2), out_dtype = as_float(input1, input2, names=("input1", "input2"))
  if jnp.issubdtype(jnp.result_type(target), jnp.floating):
    (target,), _ = as_float(target, names=("target",))
  else:
    target = as_labels(target, input1.dtype)
  loss = _clamp_min0(-target * (input1 - input2) + margin)
  return reduce_loss(loss, reduction, out_dtype=out_dtype)


def hinge_embedding_loss(input, target, *, margin: float = 1.0, reduction: str = "mean") -> jax.Array:
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
  (input,), out_dtype = as_float(input, names=("input",))
  target = jnp.asarray(target)
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
  (input1, input2), out_dtype = as_float(input1, input2, names=("input1", "input2"))
  target = jnp.asarray(target)
  prod = jnp.sum(input1 * input2, axis=-1)
  mag1 = jnp.sum(input1 * input1, axis=-1) + _COSINE_EPSILON
  mag2 = jnp.sum(input2 * input2, axis=-1) + _COSINE_EPSILON
  cos = prod / jnp.sqrt(mag1 * mag2)
  loss = jnp.where(target == 1, 1 - cos, 0.0) + jnp.where(
      target == -1, _clamp_min0(cos - margin), 0.0
  )
  return reduce_loss(loss, reduction, out_dtype=out_dtype)


def _norm(d: jax.Array, p: float) -> jax.Array:
  """The p-norm over the last axis, with torch's gradient 0 at a zero vector."""
  if p == jnp.inf:
    return jnp.max(jnp.abs(d), axis=-1)
  if p == 1:
    return jnp.sum(jnp.sign(d) * d, axis=-1)  # sign: gradient 0 at 0, as torch
  total = jnp.sum(jnp.abs(d) ** p, axis=-1)
  nonzero = total > 0
  # The double where keeps the gradient finite (0) at the zero vector.
  safe = jnp.where(nonzero, total, 1.0)
  return jnp.where(nonzero, safe ** (1.0 / p), 0.0)


def pairwise_distance(x1, x2, *, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
  r"""p-norm distance over the last dimension, ``torch.nn.functional.pairwise_distance``.

  .. math:: d_i = \| x^{(1)}_i - x^{(2)}_i + \epsilon \|_p

  Args:
    x1: ``(N, D)`` or ``(D,)``.
    x2: broadcastable to ``x1``.
    p: the norm degree, ``p >= 1`` or ``inf``.
    eps: added to the difference (not the norm), as torch.
    keepdim: keep the reduced dimension.

  Returns:
    ``(N,)`` or ``()`` distances (``(N, 1)`` with ``keepdim``).
  """
  if not p >= 1:
    raise ValueError(f"pairwise_distance: p must be >= 1, got p={p}")
  (x1, x2), _ = as_float(x1, x2, names=("x1", "x2"))
  d = _norm(x1 - x2 + eps, p)
  return d[..., None] if keepdim else d


def _triplet(dist_pos, dist_neg, dist_swap, margin, reduction, out_dtype):
  if dist_swap is not None:
    dist_neg = jnp.minimum(dist_neg, dist_swap)
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
  _check_triplet(anchor, positive, negative, margin, "triplet_margin_loss")
  (anchor, positive, negative), out_dtype = as_float(
      anchor, positive, negative, names=("anchor", "positive", "negative")
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
      anchor, positive, negative, names=("anchor", "positive", "negative")
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
