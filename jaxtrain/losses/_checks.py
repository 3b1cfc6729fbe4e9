"""Trace-time input checks shared by the losses.

Shapes and dtypes are static under ``jax.jit``, so these checks cost nothing at run
time. Value checks (class indices in range) run only on concrete arrays, that is
outside ``jit``/``vmap``; under a transform an out-of-range index gives NaN instead
of a silently wrong number (see ``gather_classes``).
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
  """True when ``x`` holds values now (not a tracer inside jit, grad or vmap)."""
  return not isinstance(x, jax.core.Tracer)


def plain_when_concrete(rule, plain=None):
  """``rule`` (a ``jax.custom_jvp`` function, or any differentiation-friendly form)
  that runs ``plain`` instead when every argument is concrete.

  Outside ``jit``, ``grad`` and ``vmap`` nothing is differentiated or compiled, but
  a custom JVP or a ``jax.checkpoint`` traces its function anew on every such call,
  which costs far more than the plain operations on small eager inputs. ``plain``
  defaults to the custom JVP's own primal function (the same operations, so the
  same numbers).
  """
  plain = rule.fun if plain is None else plain

  @functools.wraps(plain)
  def call(*args):
    return plain(*args) if all(is_concrete(a) for a in args) else rule(*args)

  return call


def check_same_shape(a, b, *, names: tuple[str, str], loss: str) -> None:
  """Raises ``ValueError`` unless ``a`` and ``b`` have the same shape."""
  if jnp.shape(a) != jnp.shape(b):
    raise ValueError(
      f"{loss}: {names[1]} shape {tuple(jnp.shape(b))} must equal "
      f"{names[0]} shape {tuple(jnp.shape(a))}"
    )


def check_broadcastable(loss: str, **arrays) -> None:
  """Raises ``ValueError`` naming the arguments unless their shapes broadcast together.

  torch raises "The size of tensor a (3) must match the size of tensor b (4)"; JAX's
  own error would name an internal operation instead of the loss's arguments.
  """
  shapes = {name: tuple(jnp.shape(a)) for name, a in arrays.items() if a is not None}
  try:
    jnp.broadcast_shapes(*shapes.values())
  except ValueError:
    listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
    raise ValueError(
      f"{loss}: the shapes of {listed} do not broadcast together (each "
      "dimension must match or be 1)"
    ) from None


def broadcast_with_warning(input, target, *, loss: str):
  """torch's rule for elementwise regression losses: broadcast, but warn.

  torch warns "Using a target size that is different to the input size" and
  broadcasts; shapes that cannot broadcast raise ``ValueError`` naming both.
  """
  in_shape, t_shape = jnp.shape(input), jnp.shape(target)
  if in_shape == t_shape:
    return input, target
  try:
    shape = jnp.broadcast_shapes(in_shape, t_shape)
  except ValueError:
    raise ValueError(
      f"{loss}: target shape {tuple(t_shape)} cannot be broadcast with input shape "
      f"{tuple(in_shape)}"
    ) from None
  warnings.warn(
    f"{loss}: using a target size ({tuple(t_shape)}) that is different to the input size "
    f"({tuple(in_shape)}). This will likely lead to incorrect results due to "
    "broadcasting. Please ensure they have the same size.",
    UserWarning,
    stacklevel=3,
  )
  return jnp.broadcast_to(input, shape), jnp.broadcast_to(target, shape)


# The class-index dtypes each loss takes: torch's (int64 / Long, plus uint8 / Byte where
# its kernel takes it), with int32 for int64, which is what JAX makes of int64 arrays
# unless 64-bit mode is on (so int32 cannot be refused as torch refuses it).
INDEX_DTYPES = ("int32", "int64")
INDEX_OR_BYTE_DTYPES = ("int32", "int64", "uint8")


def check_int(x, *, name: str, loss: str, allowed: tuple[str, ...] | None = None) -> None:
  """Raises ``TypeError`` unless ``x`` holds integers (class indices) of an ``allowed``
  dtype (any integer dtype when None)."""
  dtype = jnp.result_type(x)
  if not jnp.issubdtype(dtype, jnp.integer):
    raise TypeError(
      f"{loss}: {name} must hold integer class indices, got dtype {dtype} "
      "(torch expects int64 / Long)"
    )
  if allowed is not None and dtype.name not in allowed:
    raise TypeError(
      f"{loss}: {name} must hold class indices of dtype {' or '.join(allowed)}, got dtype "
      f"{dtype} (torch 2.13 rejects it)"
    )


def check_class_range(target, num_classes: int, *, ignore_index: int | None, loss: str) -> None:
  """On concrete targets, raises ``ValueError`` for an index outside ``[0, C)``."""
  if not is_concrete(target):
    return
  t = np.asarray(target)
  if ignore_index is not None:
    t = t[t != ignore_index]
  bad = t[(t < 0) | (t >= num_classes)]
  if bad.size:
    raise ValueError(
      f"{loss}: target {int(bad.flat[0])} is out of bounds; expected class indices in "
      f"[0, {num_classes - 1}]"
      + ("" if ignore_index is None else f" or ignore_index={ignore_index}")
    )


def gather_classes(x, index, axis: int):
  """``x`` at class ``index`` along ``axis`` (``index`` has ``x``'s shape without ``axis``).

  Out-of-range indices give NaN (``mode='fill'``), never a clamped, wrong value.
  """
  picked = jnp.take_along_axis(
    x, jnp.expand_dims(index, axis), axis=axis, mode="fill", fill_value=jnp.nan
  )
  return jnp.squeeze(picked, axis)
