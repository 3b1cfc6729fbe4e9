"""The notes' multilayer perceptron (004_3b1cf40aed2d068d.txt)."""

from __future__ import annotations

import jax
from flax import nnx

from jaxtrain.models._util import check_features, check_sizes, flatten, torch_linear


class MLP(nnx.Module):
  """``hidden = Linear(784, 256)``, ReLU, ``output = Linear(256, 10)``, as the notes' ``MLP``.

  torch (004_3b1cf40aed2d068d.txt)::

    self.hidden = nn.Linear(784, 256); self.act = nn.ReLU(); self.output = nn.Linear(256, 10)
    forward: self.output(self.act(self.hidden(x)))

  203,530 parameters at the default sizes, torch's default initialisation.

  Args:
    in_features: input features (784 for 28x28 MNIST images).
    hidden: width of the hidden layer.
    num_classes: logits per example.
    rngs: ``nnx.Rngs`` with a ``params`` stream.

  Call:
    ``model(x)`` with ``x`` of shape ``(N, in_features)``, or images
    ``(N, H, W, C)`` with ``H * W * C == in_features``, flattened in ``(H, W, C)``
    order (the same as torch's ``(C, H, W)`` for one channel); returns logits
    ``(N, num_classes)``.
  """

  def __init__(
    self, *, in_features: int = 784, hidden: int = 256, num_classes: int = 10, rngs: nnx.Rngs
  ):
    check_sizes("MLP", in_features=in_features, hidden=hidden, num_classes=num_classes)
    self.in_features = in_features
    self.hidden = torch_linear(in_features, hidden, rngs=rngs)
    self.output = torch_linear(hidden, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """``(N, in_features)`` or ``(N, H, W, C)`` -> ``(N, num_classes)``.

    Raises:
      ValueError: if ``x`` is not a batch of ``in_features`` features per example.
    """
    check_features(x, self.in_features, "MLP")
    return self.output(jax.nn.relu(self.hidden(flatten(x))))
