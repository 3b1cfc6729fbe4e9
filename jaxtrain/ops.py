"""Convolution and max pooling with torch's semantics, in the form each compiler wants.

Two channels-last (NHWC) primitives for the notes' CNN, numerically the same as
``lax.conv_general_dilated`` and torch's ``F.max_pool2d``. On GPU and TPU they
are exactly those programs: ``lax.conv_general_dilated`` and
``lax.reduce_window`` with their autodiff gradients, which cuDNN and the TPU
compiler are built for. On the CPU they take forms written around four
performance traps of XLA:CPU (measured with jaxlib 0.10.2; figures in
``benchmarks/RESULTS.md``):

* **Convolutions inside a while loop.** The trainer runs a whole epoch as one
  ``lax.scan``. XLA's conv canonicalisation only rewrites top-level convolutions,
  and autodiff emits the backward convolutions in non-canonical dimension orders
  (input-gradient with swapped kernel dims, kernel-gradient with the batch as the
  contraction), so inside a loop body they fall back to a naive loop emitter
  (jax-ml/jax#12868). The CPU form has a ``jax.custom_vjp`` whose backward pass is
  two canonical NHWC/HWIO forward convolutions plus explicit transposes, which
  every XLA:CPU code path handles well.
* **Max pooling's gradient.** ``lax.reduce_window`` differentiates into
  ``select_and_scatter``, which XLA:CPU runs far slower than pooling written as a
  reshape and a max; the CPU form is that reshape, with a ``custom_vjp`` that
  routes the gradient as torch does (to the first maximum of each window).
* **Odd channel counts.** XLA:CPU's convolutions are slow when a channel count is
  odd (RGB's 3); the CPU form zero-pads such channels to even. With at most 4
  input channels it instead folds the kernel's width into the channels
  (``_conv_rows``) and evens that count (RGB, 5x5: 15 -> 16).
* **Kernels as large as the image.** When the kernel covers the whole (unpadded)
  image, as the 5x5 kernels do on the 4x4 and 2x2 maps of the CNN on 8x8 digits,
  XLA:CPU's convolution takes a slow path; the CPU form is then patches (im2col)
  and one matmul, whose autodiff gradient is matmuls, pads and slices.

**Which form runs is decided when a program is lowered**, not from a process-wide
setting: each op is a ``lax.platform_dependent`` of its CPU form and its plain
form, so a program lowered for ``cuda`` or ``tpu`` holds only the plain form, and
the CPU program only the CPU form (a multi-platform export keeps both behind a
conditional that XLA resolves at compile time). Under autodiff of such an op, a
single-platform lowering still carries the other form's residuals as dead zero
constants (XLA removes them); a whole function can instead be dispatched once
with :func:`by_platform`, which traces it with each form and lowers only the one
for the target, as jaxtrain's train step does.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Padding = int | str | Sequence[int] | Sequence[tuple[int, int]]

_DIMS = ("NHWC", "HWIO", "NHWC")

FORMS = ("cpu", "plain")

# The form the ops take while a function is traced under ``use_forms`` (or
# ``by_platform``); None: each op dispatches on the lowering platform itself.
_forms: contextvars.ContextVar[str | None] = contextvars.ContextVar(
  "jaxtrain_ops_forms", default=None
)


@contextlib.contextmanager
def use_forms(forms: str) -> Iterator[None]:
  """Traces :func:`conv2d` and :func:`max_pool2d` in one form while the block runs.

  Args:
    forms: ``'cpu'`` (the XLA:CPU forms of the module docstring) or ``'plain'``
      (``lax.conv_general_dilated`` and ``lax.reduce_window`` with autodiff
      gradients). The choice is read when the ops are traced: a function jitted
      inside the block and cached keeps the form it was traced with.
  """
  if forms not in FORMS:
    raise ValueError(f"forms={forms!r} is not valid; expected one of {', '.join(FORMS)}")
  token = _forms.set(forms)
  try:
    yield
  finally:
    _forms.reset(token)


def by_platform(fn: Callable) -> Callable:
  """``fn`` traced once per form, the form chosen by the platform it is lowered for.

  ``by_platform(fn)(*args)`` is ``lax.platform_dependent(*args, cpu=fn with the CPU
  forms, default=fn with the plain forms)``: a program lowered for the CPU holds
  only the CPU forms, one lowered for ``cuda``, ``rocm`` or ``tpu`` only the plain
  ones. Unlike dispatching op by op, a gradient taken inside ``fn`` never crosses
  the dispatch, so neither program carries the other form's residuals.
  ``args`` are pytrees of arrays; ``fn`` returns one.
  """

  def with_forms(forms):
    def traced(*args):
      with use_forms(forms):
        return fn(*args)

    return traced

  @functools.wraps(fn)
  def dispatched(*args):
    if _forms.get() is not None:  # already inside a dispatched function
      return fn(*args)
    return lax.platform_dependent(*args, cpu=with_forms("cpu"), default=with_forms("plain"))

  return dispatched


def _dispatch(cpu: Callable, plain: Callable, *args):
  """``cpu(*args)`` or ``plain(*args)``: the form ``use_forms`` set, else by platform."""
  forms = _forms.get()
  if forms is None:
    return lax.platform_dependent(*args, cpu=cpu, default=plain)
  return cpu(*args) if forms == "cpu" else plain(*args)


def _pads(padding: Padding, kernel_hw: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
  """``padding`` as explicit ``((top, bottom), (left, right))`` for a stride-1 conv."""
  pads = _parse_pads(padding, kernel_hw)
  if any(p < 0 for pair in pads for p in pair):
    raise ValueError(f"padding={padding!r} is not valid; pads must be >= 0, as in torch")
  return pads


def _parse_pads(padding, kernel_hw):
  if isinstance(padding, str):
    mode = padding.upper()
    if mode == "VALID":
      return ((0, 0), (0, 0))
    if mode == "SAME":
      # torch's padding='same' (and XLA's SAME at stride 1): the extra row/column of an
      # even kernel goes at the end.
      return tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel_hw)  # type: ignore[return-value]
    raise ValueError(f"padding={padding!r} is not valid; expected an int, pairs, 'SAME' or 'VALID'")
  if isinstance(padding, int):
    return ((padding, padding), (padding, padding))
  padding = tuple(padding)
  if len(padding) == 2 and all(isinstance(p, int) for p in padding):  # torch's (ph, pw)
    return ((padding[0], padding[0]), (padding[1], padding[1]))
  if len(padding) == 2 and all(len(p) == 2 for p in padding):
    return tuple((int(lo), int(hi)) for lo, hi in padding)  # type: ignore[return-value]
  raise ValueError(f"padding={padding!r} is not valid; expected an int, pairs, 'SAME' or 'VALID'")


def _conv(x, w, pads):
  """The convolution as GPU and TPU compilers take it; autodiff gives its gradients."""
  return lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=_DIMS)


def _conv_padded(x, w, pads):
  """Stride-1 conv whose (possibly negative) padding is split into a crop and a pad."""
  # A negative pad (padding wider than kernel - 1 in the forward pass makes one in the
  # backward pass) becomes a slice, so the convolution itself only sees pads >= 0.
  crop = tuple(slice(max(-lo, 0), x.shape[1 + i] - max(-hi, 0)) for i, (lo, hi) in enumerate(pads))
  if any(s.start or s.stop != x.shape[1 + i] for i, s in enumerate(crop)):
    x = x[:, crop[0], crop[1], :]
  return _conv(x, w, tuple((max(lo, 0), max(hi, 0)) for lo, hi in pads))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_canonical(x, w, pads):
  return _conv(x, w, pads)


def _conv_canonical_fwd(x, w, pads):
  return _conv(x, w, pads), (x, w)


def _conv_canonical_bwd(pads, res, g):
  x, w = res
  kh, kw = w.shape[:2]
  # d_input: a full correlation of the cotangent with the kernel flipped in space and
  # with its in/out channels swapped (HWIO -> HW,O,I). Padding k - 1 - p on each side
  # turns the forward's (lo, hi) into the transposed conv's.
  w_t = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)
  dx_pads = ((kh - 1 - pads[0][0], kh - 1 - pads[0][1]), (kw - 1 - pads[1][0], kw - 1 - pads[1][1]))
  dx = _conv_padded(g, w_t, dx_pads)
  # d_kernel[u, v, i, o] = sum_{n,y,x} x_pad[n, y+u, x+v, i] * g[n, y, x, o]: a forward
  # conv with the input channels as the "batch" (x as C,H,W,N) and the batch as the
  # contraction (g as Ho,Wo,N,O, read as an HWIO kernel); its output (I,kh,kw,O)
  # is transposed back to HWIO. Only these layouts stay canonical inside a loop.
  dw = _conv(x.transpose(3, 1, 2, 0), g.transpose(1, 2, 0, 3), pads).transpose(1, 2, 0, 3)
  return dx.astype(x.dtype), dw.astype(w.dtype)


_conv_canonical.defvjp(_conv_canonical_fwd, _conv_canonical_bwd)


def _conv_im2col(x, w, pads):
  """The convolution as patches and one matmul, for images no larger than the kernel."""
  kh, kw, c_in, c_out = w.shape
  xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  ho, wo = xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
  # (N, Ho, Wo, kh*kw, C_in), patch entries in HWI order, as w.reshape(-1, C_out).
  cols = jnp.stack([xp[:, i : i + ho, j : j + wo, :] for i in range(kh) for j in range(kw)], axis=3)
  return cols.reshape(x.shape[0], ho, wo, kh * kw * c_in) @ w.reshape(kh * kw * c_in, c_out)


# Inputs with at most this many channels (RGB's 3, grey's 1) are convolved in the
# row-patch form of _conv_rows.
_ROWS_MAX_CHANNELS = 4


def _conv_rows(x, w, pads):
  """The convolution with the kernel's width folded into the channels.

  ``kw`` shifted copies of the width-padded input, side by side on the channel
  axis (``(N, H, Wo, kw * C_in)``, in ``w.reshape``'s ``(kw, C_in)`` order),
  convolved with the ``(kh, 1, kw * C_in, C_out)`` kernel: the same sums. For
  3-channel input XLA:CPU's convolution uses the cores poorly, and this form is
  faster for value and kernel gradient (benchmarks/RESULTS.md). An odd folded
  channel count (RGB's 5 x 3 = 15) gets one zero channel, and a zero row in the
  kernel: 16 channels, where evening the input first (3 -> 4) would fold to 20,
  which measured slower.
  """
  kh, kw, c_in, c_out = w.shape
  xp = jnp.pad(x, ((0, 0), (0, 0), pads[1], (0, 0)))
  wo = xp.shape[2] - kw + 1
  parts = [xp[:, :, j : j + wo, :] for j in range(kw)]
  folded = kw * c_in
  w_rows = w.reshape(kh, 1, folded, c_out)
  if _even(folded) != folded:
    parts.append(jnp.zeros(xp.shape[:2] + (wo, 1), xp.dtype))
    w_rows = jnp.pad(w_rows, ((0, 0), (0, 0), (0, 1), (0, 0)))
  xw = jnp.concatenate(parts, axis=-1)
  return _conv_canonical(xw, w_rows, (pads[0], (0, 0)))


def _even(c: int) -> int:
  return c + 1 if c > 1 and c % 2 else c


def conv2d(
  x: jax.Array, w: jax.Array, b: jax.Array | None = None, *, padding: Padding = 0
) -> jax.Array:
  """Stride-1 2-D convolution (cross-correlation, as torch's), channels-last.

  On GPU and TPU this is ``lax.conv_general_dilated(x, w, (1, 1), padding,
  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))`` (plus ``b``) with its autodiff
  gradients; on the CPU the same value and gradients in the forms of the module
  docstring (fast inside ``lax.scan`` / ``fori_loop`` too).

  Args:
    x: input, shape ``(N, H, W, C_in)``.
    w: kernel, shape ``(kh, kw, C_in, C_out)`` (HWIO). torch stores
      ``(C_out, C_in, kh, kw)``: ``w = torch_w.permute(2, 3, 1, 0)``.
    b: optional bias, shape ``(C_out,)``.
    padding: zeros added around the image: an int (torch's ``padding=2``), a pair
      ``(ph, pw)``, explicit ``((top, bottom), (left, right))``, ``'SAME'`` or
      ``'VALID'``.

  Returns:
    Shape ``(N, H + top + bottom - kh + 1, W + left + right - kw + 1, C_out)``.

  Note:
    Stride and dilation are 1 and groups 1: all the notes' CNN uses.
  """
  if x.ndim != 4 or w.ndim != 4:
    raise ValueError(
      f"conv2d expects x (N, H, W, C) and w (kh, kw, C_in, C_out), got {x.shape} and {w.shape}"
    )
  if x.shape[-1] != w.shape[2]:
    raise ValueError(
      f"conv2d: x has {x.shape[-1]} channels but w expects {w.shape[2]} ({x.shape} vs {w.shape})"
    )
  pads = _pads(padding, w.shape[:2])
  x, w = jnp.asarray(x), jnp.asarray(w)
  dtype = jnp.result_type(x, w)
  x, w = x.astype(dtype), w.astype(dtype)
  b = None if b is None else jnp.asarray(b).astype(dtype)
  return _dispatch(
    functools.partial(_with_bias, functools.partial(_conv2d_cpu, pads=pads), cpu=True),
    functools.partial(_with_bias, functools.partial(_conv, pads=pads)),
    x,
    w,
    b,
  )


def linear(x: jax.Array, w: jax.Array, b: jax.Array | None = None) -> jax.Array:
  """``x @ w + b``: torch's ``F.linear(x, w.T, b)``, with its rounding in low precision.

  Args:
    x: ``(..., in_features)``.
    w: ``(in_features, out_features)``, torch's ``weight`` transposed.
    b: optional ``(out_features,)``.

  Returns:
    ``(..., out_features)``. For bfloat16 / float16 inputs (under ``jaxtrain.amp``'s
    autocast) the CPU program accumulates in float32 and rounds once, after the
    bias, as torch's oneDNN kernels do (see :func:`conv2d`'s note).
  """
  x, w = jnp.asarray(x), jnp.asarray(w)
  dtype = jnp.result_type(x, w)
  x, w = x.astype(dtype), w.astype(dtype)
  b = None if b is None else jnp.asarray(b).astype(dtype)
  if not _is_low(dtype):
    return _with_bias(jnp.matmul, x, w, b)  # one program for every platform
  return _dispatch(
    functools.partial(_with_bias, jnp.matmul, cpu=True),
    functools.partial(_with_bias, jnp.matmul),
    x,
    w,
    b,
  )


def _is_low(dtype) -> bool:
  return dtype in (jnp.bfloat16, jnp.float16)


def _with_bias(op: Callable, x, w, b, *, cpu: bool = False):
  """``op(x, w) + b``; on the ``cpu``, low-precision inputs in float32, rounded once at the end.

  XLA:CPU runs a bfloat16 or float16 convolution or matmul in float32 anyway
  (converting its operands and rounding its result); rounding once after the
  bias, rather than before and after it, is what torch's oneDNN kernels (and
  cuDNN's and cuBLAS's fused bias epilogues) give. Products of two bfloat16
  values are exact in float32, so this is the low-precision op with float32
  accumulation, as the hardware's bfloat16 units compute it. GPU and TPU
  programs keep the plain low-precision op, whose bias their compilers fuse.
  """
  if not (cpu and _is_low(x.dtype)):
    y = op(x, w)
    return y if b is None else y + b
  y = op(x.astype(jnp.float32), w.astype(jnp.float32))
  if b is not None:
    y = y + b.astype(jnp.float32)
  return y.astype(x.dtype)


def _conv2d_cpu(x, w, *, pads):
  """The same sums in XLA:CPU's fast forms (see the module docstring)."""
  # XLA:CPU's convolutions are several times slower with an odd channel count
  # above 1 (benchmarks/RESULTS.md). Zero channels add exact zeros to every sum,
  # and autodiff of the pad/slice returns the gradients of the real channels.
  # The row-patch form evens its own, folded, channel count.
  c_in, c_out = w.shape[2], w.shape[3]
  c_in_even, c_out_even = _even(c_in), _even(c_out)
  if c_out_even != c_out:
    w = jnp.pad(w, ((0, 0), (0, 0), (0, 0), (0, c_out_even - c_out)))
  small_image = x.shape[1] * x.shape[2] <= w.shape[0] * w.shape[1]
  if not small_image and c_in <= _ROWS_MAX_CHANNELS and w.shape[1] > 1 and min(pads[1]) >= 0:
    y = _conv_rows(x, w, pads)
  else:
    if c_in_even != c_in:
      x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, c_in_even - c_in)))
      w = jnp.pad(w, ((0, 0), (0, 0), (0, c_in_even - c_in), (0, 0)))
    y = _conv_im2col(x, w, pads) if small_image else _conv_canonical(x, w, pads)
  if c_out_even != c_out:
    y = y[..., :c_out]
  return y


def _windows(x: jax.Array, window: int) -> jax.Array:
  """``(N, H, W, C)`` cropped to multiples of ``window``, as ``(N, Ho, k, Wo, k, C)``."""
  n, h, w, c = x.shape
  ho, wo = h // window, w // window
  x = x[:, : ho * window, : wo * window, :]  # floor mode: torch drops the remainder
  return x.reshape(n, ho, window, wo, window, c)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _max_pool(x, window):
  return jnp.max(_windows(x, window), axis=(2, 4))


def _first_argmax(xw, y, window):
  """Index ``dy * k + dx`` of the window element torch's max_pool2d picks, row-major."""
  # torch's CPU kernel scans the window in row-major order and takes an element when
  # ``val > maxval || isnan(val)``: the first of tied maxima, but the last NaN.
  # Both rules in one forward pass of elementwise selects (fused by XLA).
  idx = jnp.zeros(y.shape, jnp.int8 if window * window < 128 else jnp.int32)
  found = jnp.zeros(y.shape, bool)
  for j in range(window * window):
    xj = xw[:, :, j // window, :, j % window, :]
    is_max = xj == y
    idx = jnp.where((is_max & ~found) | jnp.isnan(xj), jnp.asarray(j, idx.dtype), idx)
    found = found | is_max
  return idx


def _max_pool_fwd(x, window):
  xw = _windows(x, window)
  y = jnp.max(xw, axis=(2, 4))
  # The residual is the argmax (int8, a quarter of the pooled output's bytes for
  # float32), not the input: cheaper to keep across a long scan body.
  return y, (_first_argmax(xw, y, window), x.shape)


def _max_pool_bwd(window, res, g):
  idx, shape = res
  n, h, w, c = shape
  ho, wo = idx.shape[1], idx.shape[2]
  # Scatter as a dense select: row dy of every window is the stack over dx of
  # where(idx == dy*k + dx, g, 0); XLA fuses the selects, stacks and reshapes.
  rows = []
  for dy in range(window):
    cols = [jnp.where(idx == dy * window + dx, g, jnp.zeros((), g.dtype)) for dx in range(window)]
    rows.append(jnp.stack(cols, axis=3).reshape(n, ho, wo * window, c))
  dx_ = jnp.stack(rows, axis=2).reshape(n, ho * window, wo * window, c)
  if (ho * window, wo * window) != (h, w):  # the cropped remainder gets no gradient
    dx_ = jnp.pad(dx_, ((0, 0), (0, h - ho * window), (0, w - wo * window), (0, 0)))
  return (dx_,)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def max_pool2d(x: jax.Array, window: int = 2) -> jax.Array:
  """Max pooling with stride = window, channels-last; torch's ``F.max_pool2d(x, k)``.

  On GPU and TPU this is ``lax.reduce_window`` (its gradient a select-and-scatter);
  on the CPU a reshape and a max with a custom gradient, since XLA:CPU runs
  select-and-scatter slowly (see the module docstring).

  Args:
    x: shape ``(N, H, W, C)``.
    window: the square window ``k`` and its stride.

  Returns:
    Shape ``(N, H // k, W // k, C)``. As torch's default ``ceil_mode=False``, rows
    and columns past the last full window are dropped (and get zero gradient).

  Note:
    The gradient goes to the first maximum of each window in row-major order,
    as torch's kernels do (both forms; plain ``jnp.max`` would split it equally
    among tied elements, which differs from torch after a ReLU, where windows of
    zeros tie). A window holding NaN: the CPU form sends the gradient to the last
    NaN, as torch's CPU kernel does; the plain form to the select-and-scatter's
    choice.
  """
  if x.ndim != 4:
    raise ValueError(f"max_pool2d expects x of shape (N, H, W, C), got {x.shape}")
  if not isinstance(window, int) or window < 1:
    raise ValueError(f"max_pool2d: window must be a positive int, got {window!r}")
  if x.shape[1] < window or x.shape[2] < window:
    raise ValueError(f"max_pool2d: window {window} is larger than the image {x.shape[1:3]}")
  return _dispatch(lambda x: _max_pool(x, window), lambda x: _max_pool_plain(x, window=window), x)


def _max_pool_plain(x, *, window):
  """``lax.reduce_window``: what GPU and TPU compilers pool with (autodiff: select-and-scatter)."""
  # A concrete (numpy) identity, so that JAX recognises the max monoid and uses
  # reduce_window_max, which has autodiff rules; 'VALID' windows drop the rows and
  # columns past the last full window, as torch's ceil_mode=False does.
  init = np.array(
    -np.inf if jnp.issubdtype(x.dtype, jnp.inexact) else jnp.iinfo(x.dtype).min, x.dtype
  )
  dims = (1, window, window, 1)
  return lax.reduce_window(x, init, lax.max, dims, dims, "VALID")
