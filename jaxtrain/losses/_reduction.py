"""The one reduction helper every loss uses, and the dtype policy they share.

torch's ``reduction`` argument:

* ``'none'``: the per-element (or per-sample) loss, unreduced.
* ``'sum'``: the sum of that array.
* ``'mean'``: its mean, or ``sum / denominator`` where the loss defines its own
  denominator (the summed class weights of ``nll_loss``/``cross_entropy``).
* ``'batchmean'`` (``kl_div`` only): ``sum / batch size``.

Dtypes follow torch: the result has the promoted dtype of the floating inputs
(``bfloat16`` in, ``bfloat16`` out), while the arithmetic runs in at least float32,
as torch's CPU kernels accumulate half-precision losses in float. Integer (and, where
torch takes them, boolean) targets compute in the inputs' floating type; where
torch's kernel takes one dtype only (a class weight and its input, the input and
target of ``binary_cross_entropy``), another raises ``TypeError``.
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


def float_dtypes(
  *arrays,
  names: Sequence[str],
  loss: str,
  integers: Sequence[str] = (),
  booleans: Sequence[str] = (),
) -> tuple[jnp.dtype, jnp.dtype]:
  """The result dtype of the inputs and the dtype to compute in.

  Floating inputs set the result dtype (their promoted dtype, as torch's type
  promotion does). The arguments named in ``integers`` may hold integers, and those
  in ``booleans`` booleans, where torch takes them: they compute in the floating
  type and leave the result dtype alone (an int64 target of a float16 input gives
  float16). Any other non-floating input raises ``TypeError`` naming the loss, the
  argument and its dtype.

  Returns:
    ``(out_dtype, compute_dtype)``: the promoted floating dtype, and that dtype
    widened to at least float32.
  """
  floating = []
  for array, name in zip(arrays, names):
    dtype = jnp.result_type(array)
    if jnp.issubdtype(dtype, jnp.floating):
      floating.append(array)
    elif dtype == jnp.bool_ and name not in booleans:
      raise TypeError(
        f"{loss}: {name} must be a floating-point array, got dtype bool (torch 2.13 "
        "rejects a boolean " + name + " here)"
      )
    elif dtype != jnp.bool_ and (name not in integers or not jnp.issubdtype(dtype, jnp.integer)):
      raise TypeError(f"{loss}: {name} must be a floating-point array, got dtype {dtype}")
  out_dtype = jnp.result_type(*floating)
  return out_dtype, jnp.promote_types(out_dtype, jnp.float32)


def as_float(
  *arrays,
  names: Sequence[str],
  loss: str,
  integers: Sequence[str] = (),
  booleans: Sequence[str] = (),
):
  """Converts the inputs to their compute dtype (at least float32); see ``float_dtypes``.

  Returns:
    ``(converted arrays as a tuple, out_dtype)``.
  """
  out_dtype, compute = float_dtypes(
    *arrays, names=names, loss=loss, integers=integers, booleans=booleans
  )
  return tuple(jnp.asarray(a).astype(compute) for a in arrays), out_dtype


def check_same_dtype(a_dtype, b_dtype, *, names: tuple[str, str], loss: str) -> None:
  """Raises ``TypeError`` unless the two dtypes are equal (where torch's kernel takes no
  mixed types)."""
  a_dtype, b_dtype = jnp.dtype(a_dtype), jnp.dtype(b_dtype)
  if a_dtype != b_dtype:
    raise TypeError(
      f"{loss}: {names[1]} dtype {b_dtype} must equal {names[0]} dtype {a_dtype} "
      "(torch 2.13 does not promote here); cast one of them"
    )
