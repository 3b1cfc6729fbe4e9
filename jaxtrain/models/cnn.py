"""The notes' CIFAR-10 CNN (000_dc5555055295abc4.txt), channels-last, on :mod:`jaxtrain.ops`."""

from __future__ import annotations

import jax
from flax import nnx

from jaxtrain import ops
from jaxtrain.models._util import check_sizes, flatten, torch_linear, torch_uniform


class Conv2d(nnx.Module):
  """``nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding)``, stride 1, NHWC.

  Runs :func:`jaxtrain.ops.conv2d` (fast gradients inside ``lax.scan`` on CPU).

  Attributes:
    kernel: ``nnx.Param`` of shape ``(k, k, C_in, C_out)`` (HWIO); torch's ``weight``
      is ``(C_out, C_in, k, k)``, so ``kernel = weight.permute(2, 3, 1, 0)``.
    bias: ``nnx.Param`` of shape ``(C_out,)``.
  """

  def __init__(
    self,
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    padding: ops.Padding = 0,
    rngs: nnx.Rngs,
  ):
    check_sizes(
      "Conv2d", in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size
    )
    # torch's default: weights and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    # fan_in = C_in * k * k.
    init = torch_uniform(in_channels * kernel_size * kernel_size)
    self.kernel = nnx.Param(
      init(rngs.params(), (kernel_size, kernel_size, in_channels, out_channels))
    )
    self.bias = nnx.Param(init(rngs.params(), (out_channels,)))
    self.padding = padding

  def __call__(self, x: jax.Array) -> jax.Array:
    """``(N, H, W, C_in) -> (N, H', W', C_out)``."""
    return ops.conv2d(x, self.kernel[...], self.bias[...], padding=self.padding)


class CNN(nnx.Module):
  """The notes' ``Tudui`` CIFAR-10 network, layer for layer, channels-last.

  torch (000_dc5555055295abc4.txt)::

    Sequential(Conv2d(3, 32, 5, padding=2), MaxPool2d(2),
               Conv2d(32, 32, 5, padding=2), MaxPool2d(2),
               Conv2d(32, 64, 5, padding=2), MaxPool2d(2),
               Flatten(), Linear(1024, 64), Linear(64, 10))

  145,578 parameters at 32x32x3 (as torch counts), with torch's default
  initialisation. Note there is no activation between the layers, as in the notes.
  The first Linear takes ``64 * (image_size // 8) ** 2`` features (three floor-mode
  halvings), so the same class serves MNIST (28x28x1: 576) and scikit-learn's
  digits (8x8x1: 64).

  Note:
    torch flattens NCHW feature maps in ``(C, H, W)`` order; this model flattens
    NHWC in ``(H, W, C)`` order. The networks are the same up to a permutation of
    the rows of ``fc1``'s kernel: to load torch weights, reorder ``fc1.weight``'s
    columns from ``(C, H, W)`` to ``(H, W, C)``.

  Args:
    in_channels: image channels ``C``.
    image_size: the side ``H == W`` of the square input images.
    num_classes: logits per example.
    rngs: ``nnx.Rngs`` with a ``params`` stream.

  Call:
    ``model(x)`` with ``x`` of shape ``(N, image_size, image_size, in_channels)``
    returns logits ``(N, num_classes)``.
  """

  def __init__(
    self, *, in_channels: int = 3, image_size: int = 32, num_classes: int = 10, rngs: nnx.Rngs
  ):
    check_sizes("CNN", in_channels=in_channels, image_size=image_size, num_classes=num_classes)
    if image_size < 8:
      raise ValueError(
        f"CNN needs images of at least 8x8 (three 2x2 poolings), got image_size={image_size}"
      )
    self.image_size = image_size
    self.in_channels = in_channels
    self.conv1 = Conv2d(in_channels, 32, 5, padding=2, rngs=rngs)
    self.conv2 = Conv2d(32, 32, 5, padding=2, rngs=rngs)
    self.conv3 = Conv2d(32, 64, 5, padding=2, rngs=rngs)
    side = image_size // 8
    self.fc1 = torch_linear(64 * side * side, 64, rngs=rngs)
    self.fc2 = torch_linear(64, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """``(N, H, W, C) -> (N, num_classes)``."""
    s, c = self.image_size, self.in_channels
    shape = tuple(x.shape)
    if len(shape) != 4 or shape[1:] != (s, s, c):
      # The two mistakes torch users make, named: no channel axis (MNIST as
      # (N, 28, 28)), and channels-first (torch's NCHW) input.
      if shape[1:] == (s, s):
        hint = "; the channel axis is missing: use x[..., None]"
      elif len(shape) == 4 and shape[1:] == (c, s, s):
        hint = "; this looks channels-first (NCHW): use x.transpose(0, 2, 3, 1)"
      elif len(shape) == 4 and shape[1:3] == (s, s):
        hint = f"; {shape[3]} channels, but in_channels={c}"
      else:
        hint = ""
      raise ValueError(
        f"CNN expects images x of shape (N, {s}, {s}, {c}) (image_size={s}, in_channels={c}, "
        f"channels last), got shape {shape}{hint}"
      )
    x = ops.max_pool2d(self.conv1(x), 2)
    x = ops.max_pool2d(self.conv2(x), 2)
    x = ops.max_pool2d(self.conv3(x), 2)
    return self.fc2(self.fc1(flatten(x)))
