"""Helpers shared by the models: torch's default initialisers, parameter counting."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from jaxtrain import ops


def check_sizes(model: str, **sizes) -> None:
  """Raises ``ValueError`` naming the first size that is not a positive integer.

  A model built with ``in_channels=0`` would otherwise fail later, far from the
  cause (a division by zero in the initialiser, an empty matmul).
  """
  for name, value in sizes.items():
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"{model}: {name} must be a positive integer, got {value!r}")


def torch_uniform(fan_in: int) -> nnx.Initializer:
  """``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``: torch's default for Linear/Conv weights and biases.

  ``nn.Linear`` and ``nn.Conv2d`` initialise weights with
  ``kaiming_uniform_(a=sqrt(5))``, whose bound ``gain * sqrt(3 / fan_in)`` with
  ``gain = sqrt(2 / (1 + 5))`` simplifies to ``1 / sqrt(fan_in)``; biases use the
  same bound. ``fan_in`` is ``in_features`` for Linear, ``C_in * kh * kw`` for Conv2d.
  """
  bound = 1.0 / math.sqrt(fan_in)

  def init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


class Linear(nnx.Linear):
  """``nnx.Linear`` computed by :func:`jaxtrain.ops.linear`: torch's rounding under autocast.

  The same parameters (``kernel (in, out)``, ``bias (out,)``) and, in float32, the
  same ``x @ kernel + bias``; under ``jaxtrain.amp``'s bfloat16 / float16 the bias
  is added before the result is rounded, as torch's kernels do.
  """

  def __call__(self, x: jax.Array) -> jax.Array:
    return ops.linear(x, self.kernel[...], self.bias[...])


def torch_linear(in_features: int, out_features: int, *, rngs: nnx.Rngs) -> Linear:
  """``nn.Linear(in_features, out_features)`` with torch's default initialisation.

  The kernel is stored ``(in, out)``, the transpose of torch's ``weight``.
  """
  init = torch_uniform(in_features)
  return Linear(in_features, out_features, kernel_init=init, bias_init=init, rngs=rngs)


def flatten(x: jax.Array) -> jax.Array:
  """``(N, ...) -> (N, prod(...))``, torch's ``nn.Flatten()``."""
  return x.reshape(x.shape[0], -1)


def check_features(x, in_features: int, model: str) -> None:
  """Raises ``ValueError`` unless ``x`` is a batch of ``in_features`` features per example.

  Accepts ``(N, in_features)`` or any ``(N, ...)`` whose trailing axes multiply to
  ``in_features`` (images, flattened as torch's ``nn.Flatten()``). Shapes are
  static under ``jit``: the check runs once per compile, never per step.
  """
  shape = tuple(jnp.shape(x))
  expected = (
    f"(N, {in_features}) or (N, H, W, C) with H * W * C == {in_features} "
    f"(in_features={in_features})"
  )
  if len(shape) < 2:
    raise ValueError(
      f"{model}: x must be a batch {expected}, got shape {shape}"
      + (" (one example? add the batch axis: x[None])" if shape == (in_features,) else "")
    )
  features = math.prod(shape[1:])
  if features != in_features:
    raise ValueError(
      f"{model}: x of shape {shape} has {features} features per example; expected {expected}"
    )


def count_params(model: nnx.Module) -> int:
  """Number of trainable scalars, as torch's ``sum(p.numel() for p in model.parameters())``.

  Counts every ``nnx.Param`` of ``model`` (buffers and other variables are left out,
  as torch's ``parameters()`` leaves out buffers).
  """
  return sum(int(leaf.size) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)))
