"""The one reduction helper every loss uses, and the dtype policy they share.

torch's ``reduction`` argument:

* ``'none'``: the per-element (or per-sample) loss, unreduced.
* ``'sum'``: the sum of that array.
* ``'mean'``: its mean, or ``sum / denominator`` where the loss defines its own
  denominator (the summed class weights of ``nll_loss``/``cross_entropy``).
* ``'batchmean'`` (``kl_div`` only): ``sum / batch size``.

Dtypes follow torch: the result has the promoted dtype of the floating inputs
(``bfloat16`` in, ``bfloat16`` out), while the arithmetic runs in at least float32,
as torch's CPU kernels accumulate half-precision losses in float.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

REDUCTIONS = ("none", "mean", "sum")


def check_reduction(reduction: str, allowed: Sequence[str] = REDUCTIONS) -> str:
  """Returns ``reduction`` if it is one of ``allowed``, else raises ``ValueError``."""
  if not isinstance(reduction, str) or reduction not in allowed:
    expected = ", ".join(repr(r) for r in allowed)
    raise ValueError(f"reduction={reduction!r} is not valid; expected one of {expected}")
  return reduction


def reduce_loss(
    loss: jax.Array,
    reduction: str,
    *,
    denominator: jax.Array | None = None,
    allowed: Sequence[str] = REDUCTIONS,
    out_dtype=None,
) -> jax.Array:
  """Applies torch's ``reduction`` to an unreduced loss.

  Args:
    loss: the unreduced loss, any shape.
    reduction: ``'none'``, ``'mean'``, ``'sum'`` (or ``'batchmean'`` where allowed).
    denominator: what ``'mean'`` divides the sum by; the element count when None.
    allowed: the reductions the calling loss accepts.
    out_dtype: dtype of the result (the inputs' dtype); ``loss.dtype`` when None.

  Returns:
    ``loss`` itself for ``'none'``, else a scalar.
  """
  check_reduction(reduction, allowed)
  if reduction == "none":
    out = loss
  elif reduction == "sum":
    out = jnp.sum(loss)
  elif reduction == "batchmean":
    # torch divides by input.size(0); a 0-d or 1-d loss has batch size 1 or its length.
    out = jnp.sum(loss) / (loss.shape[0] if loss.ndim else 1)
  elif denominator is None:
    out = jnp.mean(loss)
  else:
    out = jnp.sum(loss) / denominator
  return out if out_dtype is None else out.astype(out_dtype)


def float_dtypes(*arrays, names: Sequence[str]) -> tuple[jnp.dtype, jnp.dtype]:
  """The result dtype of floating inputs and the dtype to compute in.

  Raises ``TypeError`` naming the argument when one is not floating point.

  Returns:
    ``(out_dtype, compute_dtype)``: the promoted input dtype, and that dtype
    widened to at least float32.
  """
  for array, name in zip(arrays, names):
    dtype = jnp.result_type(array)
    if not jnp.issubdtype(dtype, jnp.floating):
      raise TypeError(f"{name} must be a floating-point array, got dtype {dtype}")
  out_dtype = jnp.result_type(*arrays)
  return out_dtype, jnp.promote_types(out_dtype, jnp.float32)


def as_float(*arrays, names: Sequence[str]):
  """Converts floating inputs to their compute dtype (at least float32).

  Returns:
    ``(converted arrays as a tuple, out_dtype)``.
  """
  out_dtype, compute = float_dtypes(*arrays, names=names)
  return tuple(jnp.asarray(a, compute) for a in arrays), out_dtype


def as_labels(target, dtype) -> jax.Array:
  """±1 label targets may be integer or floating; returns them in ``dtype``."""
  return jnp.asarray(target).astype(dtype)
