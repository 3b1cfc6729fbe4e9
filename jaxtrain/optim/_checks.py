"""Argument checks shared by the optimizers, schedules and wrappers of :mod:`jaxtrain.optim`.

Every public builder checks its arguments when it is called, so that a bad one is
reported where it was written (``sgd("0.1")``), not at the first update with an
unrelated message. Each check names the function, the argument, the value and
what was expected; bad types raise ``TypeError``, bad values ``ValueError``.

What counts as a number: a Python ``int`` or ``float``, a numpy integer or
floating scalar, or a 0-d numpy or jax array of such a dtype. ``bool`` is not a
number here (``sgd(0.1, True)`` is a misplaced flag, not ``momentum=1``), and a
flag must be a ``bool`` (``amsgrad="no"`` would otherwise be true). A jax tracer
(a hyper-parameter that ``optax.inject_hyperparams`` passes as an array inside
``jit``) has its dtype and shape checked; its value cannot be, and was checked
when it was given as a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import numpy as np
import optax


def describe(value) -> str:
  """``'0.1' (str)``: the value and its type, for messages."""
  if isinstance(value, (np.ndarray, jax.Array)) and not isinstance(value, jax.core.Tracer):
    if value.ndim:
      return f"an array of shape {value.shape}"
    return f"{value.item()!r} (0-d {type(value).__name__} of dtype {value.dtype})"
  return f"{value!r} ({type(value).__name__})"


def is_traced(value) -> bool:
  return isinstance(value, jax.core.Tracer)


def _is_real_dtype(dtype) -> bool:
  return np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)


def number(fn: str, name: str, value, *, expected: str = "a number"):
  """Returns ``value`` if it is a real scalar number (see the module docstring).

  Raises:
    TypeError: for any other type, a bool, or an array of a non-real dtype.
    ValueError: for an array that is not 0-d.
  """
  if isinstance(value, (bool, np.bool_)):
    raise TypeError(f"{fn}: {name} must be {expected}, got {describe(value)}")
  if isinstance(value, (int, float, np.integer, np.floating)):
    return value
  if isinstance(value, (np.ndarray, jax.Array)):
    if not _is_real_dtype(value.dtype):
      raise TypeError(f"{fn}: {name} must be {expected}, got an array of dtype {value.dtype}")
    if value.ndim:
      raise ValueError(f"{fn}: {name} must be a scalar, got an array of shape {value.shape}")
    return value
  raise TypeError(f"{fn}: {name} must be {expected}, got {describe(value)}")


def concrete_number(fn: str, name: str, value) -> float:
  """A number known now (not traced), as a Python float: for host-side arithmetic."""
  number(fn, name, value)
  if is_traced(value):
    raise TypeError(f"{fn}: {name} must be a concrete number, got a traced array")
  return float(value)


def lr_or_schedule(fn: str, value):
  """An optimizer's ``lr``: a number or a schedule (any callable)."""
  if callable(value) and not isinstance(value, (np.ndarray, jax.Array)):
    return value
  return number(fn, "lr", value, expected="a number or a schedule (a function of the update count)")


def flag(fn: str, name: str, value) -> bool:
  if not isinstance(value, (bool, np.bool_)):
    raise TypeError(f"{fn}: {name} must be a bool, got {describe(value)}")
  return bool(value)


def integer(fn: str, name: str, value) -> int:
  """A Python or numpy integer (not a bool, not an integral float)."""
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
    raise TypeError(f"{fn}: {name} must be an integer, got {describe(value)}")
  return int(value)


def positive_integer(fn: str, name: str, value) -> int:
  value = integer(fn, name, value)
  if value < 1:
    raise ValueError(f"{fn}: {name} must be a positive integer, got {value}")
  return value


def check_value(ok: Callable[[float], bool], value, message: str) -> None:
  """Raises ``ValueError(message)`` unless ``ok(float(value))``; traced values pass."""
  if not is_traced(value) and not ok(float(value)):
    raise ValueError(message)


def finite_nonnegative(fn: str, name: str, value) -> float:
  """A concrete finite number >= 0, as a float (NaN and inf rejected)."""
  x = concrete_number(fn, name, value)
  if not (math.isfinite(x) and x >= 0.0):
    raise ValueError(f"{fn}: {name} must be a finite number >= 0, got {x!r}")
  return x


def pair(fn: str, name: str, value, *, expected: str) -> tuple:
  """A sequence of exactly two items (a tuple or list; not a string)."""
  if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
    raise TypeError(f"{fn}: {name} must be {expected}, got {describe(value)}")
  if len(value) != 2:
    raise ValueError(f"{fn}: {name} must be {expected}, got {value!r} of length {len(value)}")
  return tuple(value)


def transformation(fn: str, name: str, value, *, example: str) -> optax.GradientTransformation:
  if not isinstance(value, optax.GradientTransformation):
    raise TypeError(
      f"{fn}: {name} must be an optax.GradientTransformation (e.g. {example}), "
      f"got {type(value).__name__}"
    )
  return value
