"""ctc_loss against torch 2.13.0 F.ctc_loss: values, gradients, transforms, errors.

Tolerances: float32 and float64 use the oracle's defaults (rtol 1e-5, atol
1e-6 * scale). Half-precision inputs are compared with torch's float32 result on
the same (rounded) values, at rtol = atol/scale = one ulp of the half type
(2**-8 for bfloat16, 2**-11 for float16), the rounding of the returned values.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from oracle import assert_close, compare_with_torch

from jaxtrain.losses.sequence import ctc_loss

REDUCTIONS = ("none", "mean", "sum")


def _log_softmax(rng, T, N, C):
  logits = rng.standard_normal((T, N, C)).astype(np.float32)
  return np.asarray(torch.from_numpy(logits).log_softmax(-1))


def _padded(target_list, width=None, pad=-7):
  """(N, S) padded targets; the padding value is deliberately not a valid label."""
  width = max(map(len, target_list)) + 1 if width is None else width
  out = np.full((len(target_list), width), pad, np.int64)
  for n, t in enumerate(target_list):
    out[n, : len(t)] = t
  return out


def _fns(reduction, zero_infinity, blank=0, *, unbatched_padded=False):
  def jax_fn(lp, tg, il, tl):
    return ctc_loss(lp, tg, il, tl, blank=blank, reduction=reduction, zero_infinity=zero_infinity)

  def torch_fn(lp, tg, il, tl):
    # torch reads unbatched 1-D targets as concatenated; its padded unbatched form is (1, S).
    tg = tg[None] if unbatched_padded else tg
    return F.ctc_loss(lp, tg, il, tl, blank=blank, reduction=reduction, zero_infinity=zero_infinity)

  return jax_fn, torch_fn


# A batch with a repeated label (needs a blank between), a longer target, an empty
# target and a target too long for its input (3 repeats need 5 frames, 4 given): its
# loss is inf, or 0 under zero_infinity. Finite 'mean'/'sum' without zero_infinity
# are covered by test_unnormalised_log_probs_give_torchs_gradient.
_TARGETS = [[1, 1], [2, 3, 4, 1], [], [3, 3, 3]]


@pytest.mark.parametrize("form", ["padded", "concatenated"])
@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_batched_matches_torch(reduction, zero_infinity, form):
  # torch 2.13.0 F.ctc_loss
  rng = np.random.default_rng(0)
  lp = _log_softmax(rng, 8, 4, 5)
  tl = np.array([len(t) for t in _TARGETS])
  tg = _padded(_TARGETS) if form == "padded" else np.concatenate(_TARGETS).astype(np.int64)
  if form == "padded":
    tg[1, -1] = 99  # padding, like the -7 elsewhere: torch ignores it, whatever it holds
  il = np.array([8, 7, 3, 4])
  j, _ = compare_with_torch(*_fns(reduction, zero_infinity), [lp, tg, il, tl])
  if reduction == "none":
    assert np.isfinite(j[:3]).all() and (j[3] == 0 if zero_infinity else np.isinf(j[3]))
  else:
    assert np.isinf(j) != zero_infinity


@pytest.mark.parametrize("form", ["padded", "exact"])
@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_unbatched_matches_torch(reduction, zero_infinity, form):
  # torch 2.13.0 F.ctc_loss on (T, C) log_probs, 0-d length tensors. The target [2, 2, 3]
  # needs 4 frames: feasible (7 frames) without zero_infinity, impossible (3) with it.
  rng = np.random.default_rng(1)
  lp = _log_softmax(rng, 7, 1, 4)[:, 0]
  target = [2, 2, 3]
  tg = _padded([target], width=5)[0] if form == "padded" else np.array(target)
  il = np.array(3 if zero_infinity else 7)
  j, _ = compare_with_torch(
    *_fns(reduction, zero_infinity, unbatched_padded=form == "padded"),
    [lp, tg, il, np.array(len(target))],
  )
  assert j.shape == () and (j == 0) == zero_infinity


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_unnormalised_log_probs_give_torchs_gradient(reduction):
  # torch 2.13.0 F.ctc_loss: its backward is exp(x) - gamma, not the true -gamma.
  rng = np.random.default_rng(2)
  lp = (2 * rng.standard_normal((6, 3, 4))).astype(np.float32)
  tg, il, tl = _padded([[1, 2], [3], [1, 1]]), np.array([6, 5, 4]), np.array([2, 1, 2])
  jax_fn, torch_fn = _fns(reduction, False)
  compare_with_torch(jax_fn, torch_fn, [lp, tg, il, tl])
  if reduction == "sum":
    # The pinned quirk: the gradient is not the derivative of the value but that plus
    # exp(log_probs); the derivative is a central difference of torch's float64 value.
    def torch_sum(x):
      args = (torch.from_numpy(a) for a in (x, tg, il, tl))
      return float(F.ctc_loss(*args, reduction="sum"))

    g = jax.jit(jax.grad(lambda x: ctc_loss(x, tg, il, tl, reduction="sum")))(lp)
    eps, probe = 1e-4, np.zeros(lp.shape)
    probe[0, 0, 0] = eps
    lp64 = lp.astype(np.float64)
    fd = (torch_sum(lp64 + probe) - torch_sum(lp64 - probe)) / (2 * eps)
    assert abs(float(g[0, 0, 0]) - (fd + np.exp(lp64[0, 0, 0]))) < 1e-5
    assert abs(float(g[0, 0, 0]) - fd) > 0.1


@pytest.mark.parametrize("blank", [2, 4])
def test_blank_not_zero(blank):
  # torch 2.13.0 F.ctc_loss with blank=2 (middle) and blank=C-1
  rng = np.random.default_rng(3)
  lp = _log_softmax(rng, 9, 3, 5)
  labels = [c for c in range(5) if c != blank]
  targets = [[labels[0], labels[0], labels[1]], [labels[2]], [labels[3], labels[1]]]
  tg, tl = _padded(targets), np.array([3, 1, 2])
  compare_with_torch(*_fns("none", False, blank), [lp, tg, np.array([9, 5, 6]), tl])


def test_label_equal_to_blank_inside_target():
  # torch 2.13.0 F.ctc_loss accepts the blank as a label and treats it like any other,
  # except in its gradient at the last step when the last label is the blank (sample 0).
  rng = np.random.default_rng(4)
  lp = _log_softmax(rng, 6, 2, 4)
  tg, il, tl = np.array([[0, 0, 2], [1, 0, 3]]), np.array([6, 5]), np.array([2, 3])
  compare_with_torch(*_fns("none", False), [lp, tg, il, tl])


def test_zero_lengths():
  # torch 2.13.0 F.ctc_loss: input length 0 gives loss 0 for an empty target, else inf;
  # target length 0 gives -sum of blank log-probs.
  rng = np.random.default_rng(5)
  lp = _log_softmax(rng, 5, 4, 3)
  tg, il, tl = _padded([[], [1], [], [2, 1]]), np.array([0, 0, 5, 3]), np.array([0, 1, 0, 2])
  j, _ = compare_with_torch(*_fns("none", False), [lp, tg, il, tl])
  assert j[0] == 0 and np.isinf(j[1])
  np.testing.assert_allclose(j[2], -lp[:, 2, 0].sum(), rtol=1e-6)


def test_all_targets_empty_concatenated():
  # torch 2.13.0 F.ctc_loss with an empty concatenated target array
  rng = np.random.default_rng(6)
  lp = _log_softmax(rng, 4, 2, 3)
  tg = np.zeros((0,), np.int64)
  compare_with_torch(*_fns("mean", False), [lp, tg, np.array([4, 2]), np.array([0, 0])])


def test_infinite_loss_gradient_is_nan_even_under_zero_cotangent():
  # torch 2.13.0 F.ctc_loss: grad of 0 * loss is NaN at the valid steps of an inf sample.
  rng = np.random.default_rng(7)
  lp = _log_softmax(rng, 4, 2, 3)
  tg, il, tl = _padded([[1, 2], [1, 1]]), np.array([4, 2]), np.array([2, 2])
  x = torch.from_numpy(lp).requires_grad_()
  out = F.ctc_loss(
    x, torch.from_numpy(tg), torch.from_numpy(il), torch.from_numpy(tl), reduction="none"
  )
  (tg_grad,) = torch.autograd.grad((out * torch.tensor([1.0, 0.0])).sum(), x)
  j_grad = jax.jit(
    jax.grad(lambda x: jnp.sum(ctc_loss(x, tg, il, tl, reduction="none") * jnp.array([1.0, 0.0])))
  )(lp)
  tg_grad = tg_grad.numpy()
  assert np.isnan(tg_grad[:2, 1]).all() and (tg_grad[2:, 1] == 0).all()
  assert_close(j_grad, tg_grad, what="gradient")


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_computed_in_float32(dtype):
  # torch 2.13.0 F.ctc_loss in float32 on the same rounded values (torch's CPU kernel
  # rejects half types); tolerance: one ulp of the half type.
  with pytest.raises(NotImplementedError, match="not implemented"):
    F.ctc_loss(torch.zeros(3, 1, 3, dtype=getattr(torch, dtype)), torch.tensor([[1]]), [3], [1])
  rng = np.random.default_rng(8)
  lp32 = _log_softmax(rng, 7, 3, 4)
  lp = jnp.asarray(lp32, dtype)
  tg, il, tl = _padded([[1, 1], [2, 3, 1], [3]]), np.array([7, 6, 3]), np.array([2, 3, 1])
  cot = np.array([0.5, -1.0, 2.0], np.float32)
  out, pullback = jax.vjp(jax.jit(lambda x: ctc_loss(x, tg, il, tl, reduction="none")), lp)
  (grad,) = pullback(jnp.asarray(cot, dtype))
  assert out.dtype == grad.dtype == jnp.dtype(dtype)
  x = torch.from_numpy(np.asarray(lp, np.float32)).requires_grad_()
  t_out = F.ctc_loss(
    x, torch.from_numpy(tg), torch.from_numpy(il), torch.from_numpy(tl), reduction="none"
  )
  # The cotangent as the half type holds it, so only output rounding differs.
  t_cot = torch.from_numpy(np.asarray(jnp.asarray(cot, dtype), np.float32))
  (t_grad,) = torch.autograd.grad((t_out * t_cot).sum(), x)
  tol = 2.0**-8 if dtype == "bfloat16" else 2.0**-11
  assert_close(out, t_out.detach().numpy(), rtol=tol, atol=tol, what="value")
  assert_close(grad, t_grad.numpy(), rtol=tol, atol=tol, what="gradient")


def test_float64_under_x64():
  # torch 2.13.0 F.ctc_loss in float64
  rng = np.random.default_rng(9)
  lp = _log_softmax(rng, 6, 2, 4).astype(np.float64)
  tg, il, tl = _padded([[1, 2, 1], [3, 3]]), np.array([6, 5]), np.array([3, 2])
  with jax.enable_x64(True):
    # The oracle reads torch's result as float32, so its default tolerance applies ...
    j, _ = compare_with_torch(*_fns("none", False), [lp, tg, il, tl])
  assert j.dtype == np.float64
  # ... and float64 agreement of the value is checked here.
  t = F.ctc_loss(*(torch.from_numpy(a) for a in (lp, tg, il, tl)), reduction="none").numpy()
  np.testing.assert_allclose(j, t, rtol=1e-12)


def test_jit_concatenated_traced_lengths_equals_eager():
  # torch 2.13.0 F.ctc_loss; jit pads concatenated targets to their full length,
  # eager to the longest target: both must give torch's value.
  rng = np.random.default_rng(10)
  lp = _log_softmax(rng, 8, 3, 5)
  tg, il, tl = np.array([1, 1, 4, 2, 3, 4]), np.array([8, 2, 6]), np.array([2, 1, 3])
  torch_val = F.ctc_loss(
    torch.from_numpy(lp),
    torch.from_numpy(tg),
    torch.from_numpy(il),
    torch.from_numpy(tl),
    reduction="none",
  ).numpy()
  eager = ctc_loss(lp, tg, il, tl, reduction="none")
  jitted = jax.jit(lambda *a: ctc_loss(*a, reduction="none"))(lp, tg, il, tl)
  assert_close(eager, torch_val, what="eager")
  assert_close(jitted, torch_val, what="jit")


def test_vmap_of_unbatched_equals_batched():
  # torch 2.13.0 F.ctc_loss on the batch; vmap of the unbatched form (value and grad)
  rng = np.random.default_rng(11)
  lp = _log_softmax(rng, 8, 3, 4)
  tg, il, tl = _padded([[1, 1], [2, 3, 1], [3]]), np.array([8, 6, 3]), np.array([2, 3, 1])
  x = torch.from_numpy(lp).requires_grad_()
  t_out = F.ctc_loss(
    x, torch.from_numpy(tg), torch.from_numpy(il), torch.from_numpy(tl), reduction="sum"
  )
  (t_grad,) = torch.autograd.grad(t_out, x)

  def single(lp_n, tg_n, il_n, tl_n):
    return ctc_loss(lp_n, tg_n, il_n, tl_n, reduction="sum")

  per_sample = jax.jit(jax.vmap(jax.value_and_grad(single), in_axes=(1, 0, 0, 0), out_axes=(0, 1)))
  vals, grads = per_sample(lp, tg, il, tl)
  assert vals.shape == (3,)
  assert_close(jnp.sum(vals), t_out.detach().numpy(), what="value")
  assert_close(grads, t_grad.numpy(), what="gradient")


def test_traced_inconsistent_lengths_give_nan():
  # jaxtrain's documented behaviour (torch raises on these; values cannot be checked
  # under jit): input length > T or target length > S yields NaN, not a wrong number.
  lp = _log_softmax(np.random.default_rng(12), 4, 2, 3)
  tg = _padded([[1], [2]], width=1)
  out = jax.jit(lambda il, tl: ctc_loss(lp, tg, il, tl, reduction="none"))(
    jnp.array([5, 4]), jnp.array([1, 2])
  )
  assert np.isnan(out).all()


# Each bad input with the error jaxtrain raises and a fragment of its message, and
# whether torch 2.13.0 F.ctc_loss rejects it too (True), accepts it (False: float
# targets, which it casts), or is not asked (None: out-of-range labels, which it reads
# out of bounds).
_LP = np.zeros((5, 2, 4), np.float32)
_TG = np.array([[1, 1, 2], [1, 2, 3]])
_BAD = [
  ("reduction", dict(reduction="avg"), ValueError, "reduction='avg'", True),
  ("log_probs 4-D", dict(lp=_LP[None]), ValueError, "log_probs must be 3-D", True),
  ("log_probs 1-D", dict(lp=_LP[:, 0, 0]), ValueError, "log_probs must be 3-D", True),
  (
    "log_probs empty",
    dict(lp=_LP[:, :0], tg=_TG[:0], il=[], tl=[]),
    ValueError,
    "must not be empty",
    True,
  ),
  ("log_probs int", dict(lp=_LP.astype(np.int32)), TypeError, "log_probs must be a floating", True),
  ("input_lengths size", dict(il=[5, 3, 3]), ValueError, "input_lengths must have one entry", True),
  ("target_lengths size", dict(tl=[2]), ValueError, "target_lengths must have one entry", True),
  ("targets batch", dict(tg=_TG[:1]), ValueError, "padded targets must have shape (N, S)", True),
  (
    "targets narrow",
    dict(tg=_TG[:, :2], tl=[2, 3]),
    ValueError,
    "width S >= max(target_lengths) = 3",
    True,
  ),
  ("targets 3-D", dict(tg=_TG[None]), ValueError, "targets must be 1-D", True),
  ("concat short", dict(tg=np.array([1, 1, 1, 2])), ValueError, "sum(target_lengths) = 5", True),
  (
    "concat long",
    dict(tg=np.array([1, 1, 1, 2, 3, 3])),
    ValueError,
    "sum(target_lengths) = 5",
    True,
  ),
  (
    "float targets",
    dict(tg=_TG.astype(np.float32)),
    TypeError,
    "targets must hold integers",
    False,
  ),
  (
    "float input_lengths",
    dict(il=np.array([5.0, 3.0])),
    TypeError,
    "input_lengths must hold integers",
    True,
  ),
  (
    "float target_lengths",
    dict(tl=[2.0, 3.0]),
    TypeError,
    "target_lengths must hold integers",
    True,
  ),
  ("input_length > T", dict(il=[6, 3]), ValueError, "input_lengths must be at most T = 5", True),
  (
    "negative input_length",
    dict(il=[-1, 3]),
    ValueError,
    "input_lengths must be non-negative",
    True,
  ),
  (
    "negative target_length",
    dict(tl=[-1, 3]),
    ValueError,
    "target_lengths must be non-negative",
    True,
  ),
  ("blank = C", dict(blank=4), ValueError, "blank=4 must be in label range", True),
  ("blank < 0", dict(blank=-1), ValueError, "blank=-1 must be in label range", True),
  (
    "label >= C",
    dict(tg=np.array([[1, 7, 2], [1, 2, 3]])),
    ValueError,
    "targets hold label 7",
    None,
  ),
  (
    "label < 0",
    dict(tg=np.array([[1, -1, 2], [1, 2, 3]])),
    ValueError,
    "targets hold label -1",
    None,
  ),
  (
    "unbatched lengths size",
    dict(lp=_LP[:, 0], tg=_TG[0], il=[5, 5], tl=[2]),
    ValueError,
    "input_lengths must have one entry",
    True,
  ),
]


@pytest.mark.parametrize("name,kwargs,error,fragment,torch_rejects", _BAD, ids=[b[0] for b in _BAD])
def test_bad_input_raises(name, kwargs, error, fragment, torch_rejects):
  # torch 2.13.0 F.ctc_loss on the same arguments (where asked)
  args = dict(lp=_LP, tg=_TG, il=[5, 3], tl=[2, 3], blank=0, reduction="mean")
  args.update(kwargs)
  lp, tg, il, tl, blank, reduction = args.values()
  with pytest.raises(error, match=re.escape(fragment)):
    ctc_loss(lp, tg, il, tl, blank=blank, reduction=reduction)
  if torch_rejects is None:
    return

  def torch_call():
    def lengths(x):  # lists stay Python sequences; torch reads arrays as tensors
      return torch.from_numpy(x) if isinstance(x, np.ndarray) else x

    F.ctc_loss(
      torch.from_numpy(lp),
      torch.from_numpy(tg),
      lengths(il),
      lengths(tl),
      blank=blank,
      reduction=reduction,
    )

  if torch_rejects:
    with pytest.raises((RuntimeError, ValueError, TypeError, NotImplementedError)):
      torch_call()
  else:
    torch_call()
