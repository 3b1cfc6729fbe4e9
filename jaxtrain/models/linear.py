"""The notes' linear models: a small regression net and softmax regression."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxtrain.models._util import Linear, check_features, check_sizes, flatten, torch_linear


class RegressionNet(nnx.Module):
  """``Sequential(Linear(10, 5), ReLU(), Linear(5, 1))``, 002_be92e9498db7b7c3.txt.

  61 parameters at the default sizes, torch's default initialisation.

  Args:
    in_features: input features.
    hidden: width of the hidden layer.
    rngs: ``nnx.Rngs`` with a ``params`` stream.

  Call:
    ``model(x)`` with ``x`` of shape ``(N, in_features)`` returns ``(N, 1)``, as
    torch's (pair it with targets of shape ``(N, 1)`` for ``mse_loss``).
  """

  def __init__(self, *, in_features: int = 10, hidden: int = 5, rngs: nnx.Rngs):
    check_sizes("RegressionNet", in_features=in_features, hidden=hidden)
    self.in_features = in_features
    self.linear1 = torch_linear(in_features, hidden, rngs=rngs)
    self.linear2 = torch_linear(hidden, 1, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """``(N, in_features) -> (N, 1)``.

    Raises:
      ValueError: if ``x`` is not ``(N, in_features)``.
    """
    shape = tuple(jnp.shape(x))
    if len(shape) != 2 or shape[1] != self.in_features:
      raise ValueError(
        f"RegressionNet: x must have shape (N, {self.in_features}) "
        f"(in_features={self.in_features}), got shape {shape}"
      )
    return self.linear2(jax.nn.relu(self.linear1(x)))


class SoftmaxRegression(nnx.Module):
  """d2l's softmax regression (003_e24e918ed2af1c93.txt): ``Flatten()``, one ``Linear``.

  Returns logits; the softmax lives in the loss (``cross_entropy``), as in d2l.
  7,850 parameters at the default sizes.

  Initialisation is d2l's: weights ``N(0, 0.01**2)``, bias zero (the from-scratch
  chapter's ``W = torch.normal(0, 0.01, ...)``, ``b = torch.zeros(...)``; the
  concise chapter's ``nn.init.normal_(m.weight, std=0.01)`` leaves the bias at
  torch's uniform default).

  Args:
    in_features: input features (784 for 28x28 images).
    num_classes: logits per example.
    rngs: ``nnx.Rngs`` with a ``params`` stream.

  Call:
    ``model(x)`` with ``x`` of shape ``(N, in_features)`` or images
    ``(N, H, W, C)`` (flattened in ``(H, W, C)`` order) returns ``(N, num_classes)``.
  """

  def __init__(self, *, in_features: int = 784, num_classes: int = 10, rngs: nnx.Rngs):
    check_sizes("SoftmaxRegression", in_features=in_features, num_classes=num_classes)
    self.in_features = in_features
    self.linear = Linear(
      in_features,
      num_classes,
      kernel_init=nnx.initializers.normal(stddev=0.01),
      bias_init=nnx.initializers.zeros_init(),
      rngs=rngs,
    )

  def __call__(self, x: jax.Array) -> jax.Array:
    """``(N, in_features)`` or ``(N, H, W, C)`` -> ``(N, num_classes)``.

    Raises:
      ValueError: if ``x`` is not a batch of ``in_features`` features per example.
    """
    check_features(x, self.in_features, "SoftmaxRegression")
    return self.linear(flatten(jnp.asarray(x)))
