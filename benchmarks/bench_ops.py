"""One CNN training step with flax's conv/pool vs :mod:`jaxtrain.ops`, per-step and in ``lax.scan``.

    python benchmarks/bench_ops.py [--batch 64] [--steps 8] [--repeats 5]

The notes' CIFAR-10 CNN (000_dc5555055295abc4.txt) at 32x32x3, one SGD step =
``value_and_grad`` of the mean cross-entropy + ``p - lr * g``. Variants:

* ``nnx``: ``nnx.Conv`` (XLA's convolution, autodiff's backward) + ``nnx.max_pool``
  (``lax.reduce_window``, whose gradient is ``select_and_scatter``);
* ``ops``: :class:`jaxtrain.models.CNN` (``ops.conv2d`` + ``ops.max_pool2d``);
* ablations: ``nnx.Conv`` + ``ops.max_pool2d``; ``ops.conv2d`` + pooling as a plain
  reshape + ``jnp.max`` (autodiff's tie-splitting gradient); ``ops`` without
  ``conv2d``'s zero-padding of the image's 3 channels to 4 (``ops_3ch``).

Each is timed two ways: ``per-step`` calls a jitted step ``--steps`` times from
Python; ``scan`` runs the same steps as one jitted ``lax.scan`` over stacked
batches (how the trainer runs an epoch). Reported: median ms per step over
``--repeats`` after a compiling warm-up. Every variant is compiled with the XLA
options jaxtrain's own programs get on this platform (``jaxtrain._xla_options``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import optax
from flax import nnx
from jax import lax

from jaxtrain import _xla_options, ops
from jaxtrain.models import CNN
from jaxtrain.models._util import flatten, torch_linear

LR = 0.01


class _Variant(nnx.Module):
  """The notes' CNN with a choice of convolution and pooling."""

  def __init__(self, conv: str, pool: str, *, rngs: nnx.Rngs):
    self.conv, self.pool = conv, pool
    chans = [(3, 32), (32, 32), (32, 64)]
    if conv == "nnx":
      self.convs = nnx.List([nnx.Conv(i, o, (5, 5), padding=2, rngs=rngs) for i, o in chans])
    else:
      from jaxtrain.models.cnn import Conv2d

      self.convs = nnx.List([Conv2d(i, o, 5, padding=2, rngs=rngs) for i, o in chans])
    self.fc1 = torch_linear(1024, 64, rngs=rngs)
    self.fc2 = torch_linear(64, 10, rngs=rngs)

  def __call__(self, x):
    for i, conv in enumerate(self.convs):
      if self.conv == "ops_3ch" and i == 0:
        # The custom_vjp conv without conv2d's 3 -> 4 channel padding.
        x = ops._conv_canonical(x, conv.kernel[...], ((2, 2), (2, 2))) + conv.bias[...]
      else:
        x = conv(x)
      if self.pool == "nnx":
        x = nnx.max_pool(x, (2, 2), strides=(2, 2))
      elif self.pool == "reshape":
        n, h, w, c = x.shape
        x = x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
      else:
        x = ops.max_pool2d(x, 2)
    return self.fc2(self.fc1(flatten(x)))


def _build(name: str):
  rngs = nnx.Rngs(0)
  if name == "ops":
    return CNN(rngs=rngs)
  conv, pool = {
    "nnx": ("nnx", "nnx"),
    "nnx_conv+ops_pool": ("nnx", "ops"),
    "ops_conv+reshape_pool": ("ops", "reshape"),
    "ops_3ch": ("ops_3ch", "ops"),
  }[name]
  return _Variant(conv, pool, rngs=rngs)


def _timed(fn, *args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))  # compile + warm up
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def bench(name: str, batch: int, steps: int, repeats: int) -> tuple[float, float]:
  graphdef, params = nnx.split(_build(name))
  key = jax.random.key(1)
  xs = jax.random.uniform(key, (steps, batch, 32, 32, 3))
  ys = jax.random.randint(jax.random.fold_in(key, 1), (steps, batch), 0, 10)

  def step(params, batch_xy):
    x, y = batch_xy

    def loss_fn(p):
      logits = nnx.merge(graphdef, p)(x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    return jax.tree.map(lambda p, g: p - LR * g, params, grads), loss

  options = _xla_options.for_platform(jax.devices()[0].platform)
  jit_step = jax.jit(step, compiler_options=options)

  xs_list = [xs[i] for i in range(steps)]  # slice outside the timed region
  ys_list = [ys[i] for i in range(steps)]

  def per_step_presliced(params):
    for x, y in zip(xs_list, ys_list):
      params, loss = jit_step(params, (x, y))
    return loss

  scan_epoch = jax.jit(lambda p, xs, ys: lax.scan(step, p, (xs, ys)), compiler_options=options)
  t_step = _timed(per_step_presliced, params, repeats=repeats) / steps
  t_scan = _timed(scan_epoch, params, xs, ys, repeats=repeats) / steps
  return t_step * 1e3, t_scan * 1e3


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--steps", type=int, default=8)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument(
    "--variants", default="nnx,ops,nnx_conv+ops_pool,ops_conv+reshape_pool,ops_3ch"
  )
  args = parser.parse_args()
  print(
    f"jax {jax.__version__} on {jax.devices()[0].platform}; batch {args.batch}, "
    f"{args.steps} steps; ms/step (median of {args.repeats})"
  )
  print(f"{'variant':<24}{'per-step':>10}{'scan':>10}")
  for name in args.variants.split(","):
    t_step, t_scan = bench(name, args.batch, args.steps, args.repeats)
    print(f"{name:<24}{t_step:>10.1f}{t_scan:>10.1f}", flush=True)


if __name__ == "__main__":
  main()
