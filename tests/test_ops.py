"""jaxtrain.ops against XLA's own convolution/pooling and against torch 2.13.0.

Reference values: ``lax.conv_general_dilated`` (same backend, autodiff gradients),
``torch.nn.functional.conv2d`` / ``max_pool2d`` (torch 2.13.0, CPU, float64 for
the values and ``torch.autograd.grad`` for the gradients) on NCHW-transposed data.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from jax import lax

from jaxtrain import ops

# (N, H, W, C_in, C_out, k, padding): odd sizes, channels 1/3/32, paddings 0, 2, 'SAME',
# explicit asymmetric pairs and a pad wider than k - 1 (a crop in the backward pass).
CONV_CASES = [
  (2, 7, 9, 3, 4, 5, 2),
  (3, 8, 8, 1, 2, 3, 0),
  (2, 6, 5, 32, 3, 4, "SAME"),
  (2, 9, 7, 3, 5, 3, "SAME"),
  (1, 5, 6, 2, 2, 3, ((3, 1), (0, 4))),
  (2, 11, 11, 32, 8, 5, 2),
  (2, 5, 5, 3, 2, 5, "VALID"),
  (1, 4, 6, 1, 1, 1, (1, 2)),
  # Images no larger than the kernel (the im2col path): the CNN's 4x4 and 2x2
  # maps on 8x8 digits, and an asymmetric pad.
  (2, 4, 4, 32, 8, 5, 2),
  (3, 2, 2, 6, 4, 5, 2),
  (1, 3, 4, 2, 3, 5, ((2, 1), (0, 3))),
]


def _rand(rng, shape):
  return jnp.asarray(rng.standard_normal(shape), jnp.float32)


def _case(case, seed=0):
  n, h, w, ci, co, k, padding = case
  rng = np.random.default_rng(seed)
  x, k_, b = _rand(rng, (n, h, w, ci)), _rand(rng, (k, k, ci, co)), _rand(rng, (co,))
  return x, k_, b, padding


def _lax_conv(x, w, b, padding):
  pads = ops._pads(padding, w.shape[:2])
  y = lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return y + b


def _close(a, b, rtol=1e-5, atol=1e-5):
  # atol relative to the scale of the reference, so sums of many products compare fairly.
  b = np.asarray(b)
  np.testing.assert_allclose(
    np.asarray(a), b, rtol=rtol, atol=atol * max(1.0, float(np.abs(b).max()))
  )


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv2d_matches_lax_value_and_grads(case):
  x, w, b, padding = _case(case)
  ours = lambda x, w, b: ops.conv2d(x, w, b, padding=padding)
  ref = lambda x, w, b: _lax_conv(x, w, b, padding)
  y, vjp = jax.vjp(ours, x, w, b)
  y_ref, vjp_ref = jax.vjp(ref, x, w, b)
  _close(y, y_ref)
  ct = _rand(np.random.default_rng(1), y.shape)
  for g, g_ref in zip(vjp(ct), vjp_ref(ct)):
    _close(g, g_ref)
    assert np.all(np.isfinite(np.asarray(g)))


def _torch_padding(padding, k):
  """The case's padding as a torch F.pad on NCHW + conv padding 0."""
  (top, bottom), (left, right) = ops._pads(padding, (k, k))
  return (left, right, top, bottom)


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
@pytest.mark.filterwarnings(
  "ignore:Using padding='same':UserWarning"
)  # torch's note on even kernels
def test_conv2d_matches_torch(case):
  x, w, b, padding = _case(case)
  k = w.shape[0]
  # torch 2.13.0 F.conv2d in float64 on NCHW / OIHW, explicit F.pad for asymmetric pads.
  xt = torch.tensor(np.asarray(x), dtype=torch.float64).permute(0, 3, 1, 2).requires_grad_()
  wt = torch.tensor(np.asarray(w), dtype=torch.float64).permute(3, 2, 0, 1).requires_grad_()
  bt = torch.tensor(np.asarray(b), dtype=torch.float64).requires_grad_()
  if padding == "SAME":  # torch's own 'same' (extra pad of an even kernel at the end)
    yt = F.conv2d(xt, wt, bt, padding="same")
  else:
    yt = F.conv2d(F.pad(xt, _torch_padding(padding, k)), wt, bt)
  ct = np.random.default_rng(1).standard_normal(tuple(yt.permute(0, 2, 3, 1).shape))
  gx, gw, gb = torch.autograd.grad(yt, (xt, wt, bt), torch.tensor(ct).permute(0, 3, 1, 2))

  y, vjp = jax.vjp(lambda x, w, b: ops.conv2d(x, w, b, padding=padding), x, w, b)
  dx, dw, db = vjp(jnp.asarray(ct, jnp.float32))
  _close(y, yt.detach().permute(0, 2, 3, 1).numpy())
  _close(dx, gx.permute(0, 2, 3, 1).numpy())
  _close(dw, gw.permute(2, 3, 1, 0).numpy())
  _close(db, gb.numpy())


def test_conv2d_inside_scan_matches_top_level():
  # The reason for the custom_vjp: the same gradients when the conv sits in a loop body.
  x, w, b, _ = _case((2, 8, 8, 3, 4, 5, 2))
  xs = jnp.stack([x, 2 * x, -x])

  def loss(w, x):
    return jnp.sum(jnp.tanh(ops.conv2d(x, w, b, padding=2)))

  def body(w, x):
    g = jax.grad(loss)(w, x)
    return w - 0.1 * g, g

  w_scan, gs_scan = jax.jit(lambda w, xs: lax.scan(body, w, xs))(w, xs)
  w_loop, gs = w, []
  for i in range(3):
    w_loop, g = jax.jit(body)(w_loop, xs[i])
    gs.append(g)
  _close(gs_scan, jnp.stack(gs))
  _close(w_scan, w_loop)


def test_conv2d_backward_is_canonical_in_scan():
  # Every convolution of the differentiated scan body is NHWC/HWIO -> NHWC
  # (b01f_01io->b01f), the layout XLA:CPU keeps fast inside while loops.
  x, w, b, _ = _case((2, 8, 8, 3, 4, 5, 2))

  def body(w, x):
    dx, dw = jax.grad(lambda x, w: jnp.sum(ops.conv2d(x, w, padding=2) ** 2), (0, 1))(x, w)
    return w - dw, dx

  hlo = jax.jit(lambda w, xs: lax.scan(body, w, xs)).lower(w, jnp.stack([x, x])).as_text()
  convs = [line for line in hlo.splitlines() if "stablehlo.convolution" in line]
  assert len(convs) == 3  # forward, d_input, d_kernel
  assert all("[b, 0, 1, f]x[0, 1, i, o]->[b, 0, 1, f]" in line for line in convs), convs


def test_conv2d_dtype_and_errors():
  x, w, b, _ = _case((1, 6, 6, 3, 2, 3, 1))
  assert ops.conv2d(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), padding=1).dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="channels"):
    ops.conv2d(x, w[:, :, :2], padding=1)
  with pytest.raises(ValueError, match="padding"):
    ops.conv2d(x, w, padding="FULL")
  with pytest.raises(ValueError, match=">= 0"):
    ops.conv2d(x, w, padding=-1)
  with pytest.raises(ValueError, match="expects"):
    ops.conv2d(x[0], w)


def test_conv2d_compiles_once():
  traces = []

  @jax.jit
  def f(x, w):
    traces.append(1)
    return jax.grad(lambda x, w: jnp.sum(ops.conv2d(x, w, padding=2)), argnums=(0, 1))(x, w)

  x, w, _, _ = _case((2, 6, 6, 3, 4, 5, 2))
  f(x, w)
  f(x + 1, w * 2)
  assert len(traces) == 1


def _torch_pool(x, window, ct):
  """torch 2.13.0 F.max_pool2d on NCHW (values and gradient), back in NHWC."""
  xt = torch.tensor(np.asarray(x)).permute(0, 3, 1, 2).requires_grad_()
  yt = F.max_pool2d(xt, window)
  (gx,) = torch.autograd.grad(yt, xt, torch.tensor(np.asarray(ct)).permute(0, 3, 1, 2))
  return yt.detach().permute(0, 2, 3, 1).numpy(), gx.permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize(
  "shape,window",
  [
    ((2, 8, 8, 3), 2),
    ((2, 7, 9, 1), 2),  # odd sizes: floor mode drops the last row/column
    ((1, 11, 10, 32), 3),
    ((3, 4, 4, 5), 4),
  ],
)
def test_max_pool2d_matches_torch(shape, window):
  rng = np.random.default_rng(0)
  x = _rand(rng, shape)
  y, vjp = jax.vjp(lambda x: ops.max_pool2d(x, window), x)
  ct = _rand(rng, y.shape)
  y_t, g_t = _torch_pool(x, window, ct)
  np.testing.assert_array_equal(np.asarray(y), y_t)
  np.testing.assert_array_equal(np.asarray(vjp(ct)[0]), g_t)


def test_max_pool2d_ties_follow_torch():
  # ReLU outputs: many windows of tied zeros (and some tied positives). torch sends
  # each window's gradient to its first maximum; jnp.max would split it.
  rng = np.random.default_rng(0)
  x = jnp.maximum(jnp.round(_rand(rng, (2, 6, 6, 4))), 0.0)
  ct = _rand(rng, (2, 3, 3, 4))
  _, g_t = _torch_pool(x, 2, ct)
  _, vjp = jax.vjp(lambda x: ops.max_pool2d(x, 2), x)
  np.testing.assert_array_equal(np.asarray(vjp(ct)[0]), g_t)


def test_max_pool2d_nan_follows_torch():
  # torch 2.13.0: a NaN in the window is the max, and the last NaN gets the gradient.
  x = jnp.array([1.0, jnp.nan, 2.0, jnp.nan, 5.0, 0.0, 5.0, 1.0]).reshape(2, 2, 2, 1)
  ct = jnp.array([3.0, 4.0]).reshape(2, 1, 1, 1)
  y_t, g_t = _torch_pool(x, 2, ct)
  y, vjp = jax.vjp(lambda x: ops.max_pool2d(x, 2), x)
  np.testing.assert_array_equal(np.asarray(y), y_t)
  np.testing.assert_array_equal(np.asarray(vjp(ct)[0]), g_t)


def test_max_pool2d_in_scan_and_jit():
  rng = np.random.default_rng(0)
  xs = _rand(rng, (3, 2, 6, 6, 4))
  grad = jax.grad(lambda x: jnp.sum(ops.max_pool2d(x) ** 2))
  scanned = jax.jit(lambda xs: lax.scan(lambda c, x: (c, grad(x)), 0, xs)[1])(xs)
  np.testing.assert_array_equal(np.asarray(scanned), np.stack([grad(x) for x in xs]))


def test_max_pool2d_errors():
  with pytest.raises(ValueError, match="larger"):
    ops.max_pool2d(jnp.zeros((1, 1, 4, 1)), 2)
  with pytest.raises(ValueError, match="positive"):
    ops.max_pool2d(jnp.zeros((1, 4, 4, 1)), 0)


# ------------------------------------------------------------ forms by platform


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv2d_cpu_and_plain_forms_agree(case):
  # The two forms each platform gets (ops.use_forms forces one on this CPU): the same
  # value and gradients, within float32 summation-order tolerance.
  x, w, b, padding = _case(case)
  ct = _rand(
    np.random.default_rng(1),
    jax.eval_shape(lambda x, w: ops.conv2d(x, w, padding=padding), x, w).shape,
  )
  out = {}
  for forms in ops.FORMS:

    def f(x, w, b, forms=forms):
      with ops.use_forms(forms):
        return ops.conv2d(x, w, b, padding=padding)

    y, vjp = jax.vjp(f, x, w, b)
    out[forms] = (y, *vjp(ct))
  for cpu, plain in zip(out["cpu"], out["plain"]):
    _close(cpu, plain)


@pytest.mark.parametrize("tied", [False, True])
def test_max_pool2d_cpu_and_plain_forms_agree(tied):
  # Gradients are routed to one element per window in both forms, the first maximum
  # (tied=True: ReLU-like windows of equal values), so they agree exactly.
  rng = np.random.default_rng(0)
  x = _rand(rng, (2, 9, 7, 4))
  if tied:
    x = jnp.maximum(jnp.round(x), 0.0)
  ct = _rand(rng, (2, 4, 3, 4))
  _, g_t = _torch_pool(x, 2, ct)
  for forms in ops.FORMS:

    def f(x, forms=forms):
      with ops.use_forms(forms):
        return ops.max_pool2d(x, 2)

    y, vjp = jax.vjp(f, x)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(ops._max_pool(x, 2)))
    np.testing.assert_array_equal(np.asarray(vjp(ct)[0]), g_t, err_msg=forms)


def _lowered(fn, *args, platform):
  return jax.jit(fn).trace(*args).lower(lowering_platforms=(platform,)).as_text()


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
def test_gpu_and_tpu_programs_hold_only_the_plain_forms(platform):
  # An RGB image, as CIFAR-10's first layer: the CPU row-patch form would fold it to
  # 16 channels with 5 concatenated shifted slices.
  x, w = jnp.zeros((4, 32, 32, 3)), jnp.zeros((5, 5, 3, 8))

  def loss(x, w):
    return jnp.sum(ops.max_pool2d(ops.conv2d(x, w, padding=2)) ** 2)

  grads = ops.by_platform(jax.grad(loss, argnums=(0, 1)))
  text = _lowered(grads, x, w, platform=platform)
  convs = [line for line in text.splitlines() if "stablehlo.convolution" in line]
  assert "(tensor<4x32x32x3xf32>, tensor<5x5x3x8xf32>)" in convs[0]
  assert len(convs) == 3  # forward, input gradient, kernel gradient: autodiff's
  assert "stablehlo.concatenate" not in text and "x16xf32>" not in text
  assert "stablehlo.reduce_window" in text and "stablehlo.select_and_scatter" in text
  # Differentiated op by op (no by_platform), the program is the same plus the CPU
  # form's residuals as dead zeros, which XLA removes when it compiles.
  assert (
    _lowered(jax.grad(loss, argnums=(0, 1)), x, w, platform=platform).count("stablehlo.convolution")
    == 3
  )


def test_cpu_program_holds_only_the_cpu_forms():
  x, w = jnp.zeros((4, 32, 32, 3)), jnp.zeros((5, 5, 3, 8))
  grads = ops.by_platform(jax.grad(lambda x, w: jnp.sum(ops.conv2d(x, w, padding=2) ** 2), 1))
  text = _lowered(grads, x, w, platform="cpu")
  convs = [line for line in text.splitlines() if "stablehlo.convolution" in line]
  assert "(tensor<4x32x32x16xf32>, tensor<5x1x16x8xf32>)" in convs[0]  # the row-patch form
  assert "stablehlo.concatenate" in text and "stablehlo.reduce_window" not in text


def test_use_forms_rejects_unknown_forms():
  with pytest.raises(ValueError, match="forms='gpu' is not valid; expected one of cpu, plain"):
    with ops.use_forms("gpu"):
      pass
