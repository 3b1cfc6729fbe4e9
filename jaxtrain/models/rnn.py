"""The notes' recurrent MNIST classifier (001_42dfbdd5dad21a82.txt)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from jaxtrain.models._util import check_sizes, torch_linear, torch_uniform


class RNNClassifier(nnx.Module):
  """``nn.RNN(input_size, hidden_size, batch_first=True)`` then ``Linear(hidden_size, 10)``.

  torch (001_42dfbdd5dad21a82.txt)::

    h0 = zeros(1, N, hidden); out, _ = self.rnn(x, h0); self.fc(out[:, -1, :])

  One tanh layer, ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``, with
  torch's two bias vectors kept (so the parameter count is torch's: 21,514 at the
  default sizes). Every RNN parameter is initialised ``U(-1/sqrt(hidden),
  1/sqrt(hidden))`` as torch's; the Linear uses torch's Linear default.

  Attributes:
    weight_ih: ``(input_size, hidden)``, torch's ``rnn.weight_ih_l0`` transposed.
    weight_hh: ``(hidden, hidden)``, torch's ``rnn.weight_hh_l0`` transposed.
    bias_ih, bias_hh: ``(hidden,)``, torch's ``rnn.bias_ih_l0`` and ``rnn.bias_hh_l0``.
    fc: the output ``nnx.Linear`` (kernel ``(hidden, num_classes)``).

  Args:
    input_size: features per time step (28: one image row).
    hidden_size: state size.
    num_classes: logits per example.
    rngs: ``nnx.Rngs`` with a ``params`` stream.

  Call:
    ``model(x)`` with ``x`` of shape ``(N, T, input_size)``, or images
    ``(N, H, W, C)`` read as ``H`` steps of ``W * C`` features (the notes'
    ``images.reshape(-1, 28, 28)`` for ``C == 1``); returns ``(N, num_classes)``.
  """

  def __init__(
    self, *, input_size: int = 28, hidden_size: int = 128, num_classes: int = 10, rngs: nnx.Rngs
  ):
    check_sizes(
      "RNNClassifier", input_size=input_size, hidden_size=hidden_size, num_classes=num_classes
    )
    init = torch_uniform(hidden_size)  # torch: every RNN weight and bias U(-1/sqrt(H), 1/sqrt(H))
    self.input_size = input_size
    self.weight_ih = nnx.Param(init(rngs.params(), (input_size, hidden_size)))
    self.weight_hh = nnx.Param(init(rngs.params(), (hidden_size, hidden_size)))
    self.bias_ih = nnx.Param(init(rngs.params(), (hidden_size,)))
    self.bias_hh = nnx.Param(init(rngs.params(), (hidden_size,)))
    self.fc = torch_linear(hidden_size, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """``(N, T, input_size)`` or ``(N, H, W, C)`` -> ``(N, num_classes)``."""
    x = jnp.asarray(x)
    shape = tuple(x.shape)
    if x.ndim == 4:
      x = x.reshape(x.shape[0], x.shape[1], -1)  # image rows as time steps
    if x.ndim != 3 or x.shape[-1] != self.input_size:
      raise ValueError(
        f"RNNClassifier expects x of shape (N, T, {self.input_size}) or images (N, H, W, C) "
        f"with W * C == {self.input_size} (input_size={self.input_size}), got shape {shape}"
      )
    w_hh = self.weight_hh[...]
    # The input projection of every step at once: one (N*T, in) x (in, H) matmul
    # outside the loop, both biases folded in, leaving only h @ W_hh in the scan.
    xw = x @ self.weight_ih[...] + (self.bias_ih[...] + self.bias_hh[...])

    def step(h, xw_t):
      return jnp.tanh(xw_t + h @ w_hh), None

    h0 = jnp.zeros((x.shape[0], w_hh.shape[0]), xw.dtype)  # torch's h0 = zeros
    h, _ = lax.scan(step, h0, jnp.swapaxes(xw, 0, 1))  # scan over time: (T, N, H)
    return self.fc(h)
