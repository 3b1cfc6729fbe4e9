"""torch's edge cases, each against torch 2.13.0 (or, where jaxtrain deliberately
differs, against the exact value, with the reason).

Tolerance: rtol 1e-5, atol 1e-6 x scale (tests/oracle.py) unless stated.
"""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from oracle import assert_close, compare_with_torch, to_torch

import jaxtrain.losses as L


def _both(name, **kw):
  return functools.partial(getattr(L, name), **kw), functools.partial(getattr(F, name), **kw)


# ------------------------------------------------------------------ every target ignored


@pytest.mark.parametrize(
  "name,smoothing", [("cross_entropy", 0.0), ("cross_entropy", 0.1), ("nll_loss", 0.0)]
)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_every_target_ignored(name, reduction, smoothing, weighted):
  # torch 2.13.0: 'mean' is NaN (0 / 0), 'sum' 0, gradients 0.
  rng = np.random.default_rng(0)
  x = rng.standard_normal((4, 3)).astype(np.float32)
  t = np.full((4,), -100, np.int64)
  kw = {"reduction": reduction}
  if smoothing:
    kw["label_smoothing"] = smoothing
  args = [x, t]
  if weighted:
    args.append(rng.uniform(0.5, 2, 3).astype(np.float32))
  j, tt = _both(name, **kw)
  jfn = (lambda x, t, w: j(x, t, weight=w)) if weighted else j
  tfn = (lambda x, t, w: tt(x, t, weight=w)) if weighted else tt
  value, _ = compare_with_torch(jfn, tfn, args)
  if reduction == "mean":
    assert np.isnan(value)


# --------------------------------------------------------------------------- huge logits


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_logits_1e4(smoothing):
  # torch 2.13.0: finite losses and gradients for logits of +-1e4.
  x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e4, 1e4, -1e4]], np.float32)
  t = np.array([0, 1, 2], np.int64)
  j, tt = _both("cross_entropy", label_smoothing=smoothing, reduction="none")
  value, _ = compare_with_torch(j, tt, [x, t])
  assert np.all(np.isfinite(value))


def test_cross_entropy_probabilities_logits_1e4():
  # torch 2.13.0, class-probability targets.
  x = np.array([[1e4, -1e4, 0.0], [-1e4, 3.0, 1e4]], np.float32)
  q = np.array([[0.5, 0.25, 0.25], [0.0, 0.0, 1.0]], np.float32)
  compare_with_torch(*_both("cross_entropy", reduction="sum"), [x, q], grad_argnums=(0, 1))


@pytest.mark.parametrize(
  "name", ["binary_cross_entropy_with_logits", "multilabel_soft_margin_loss"]
)
def test_logistic_losses_logits_1e4(name):
  # torch 2.13.0: both use log_sigmoid and stay finite at +-1e4.
  x = np.array([[1e4, -1e4, 0.5], [-1e4, 1e4, -3.0]], np.float32)
  y = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]], np.float32)
  value, _ = compare_with_torch(*_both(name, reduction="none"), [x, y], grad_argnums=(0, 1))
  assert np.all(np.isfinite(value))


def test_soft_margin_overflow_is_finite():
  # jaxtrain differs from torch on purpose: torch's log1p(exp(-y x)) overflows to inf
  # for -y x >= ~89 (and its gradient to NaN); softplus gives the exact value -y x.
  x = np.array([-1e4, 1e4, 0.5, 100.0], np.float32)
  y = np.array([1.0, -1.0, 1.0, -1.0], np.float32)
  torch_value = F.soft_margin_loss(to_torch(x), to_torch(y), reduction="none").numpy()
  assert np.isinf(torch_value[[0, 1, 3]]).all()  # what torch gives
  value = L.soft_margin_loss(x, y, reduction="none")
  np.testing.assert_allclose(value, [1e4, 1e4, np.log1p(np.exp(-0.5)), 100.0], rtol=1e-6)
  grad = jax.grad(lambda x: L.soft_margin_loss(x, y, reduction="sum"))(jnp.asarray(x))
  np.testing.assert_allclose(grad, -y * jax.nn.sigmoid(-y * x), rtol=1e-6)


# ------------------------------------------------------------- BCE probabilities 0 and 1


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_bce_probabilities_exactly_0_and_1(reduction):
  # torch 2.13.0: logs clamped at -100 (loss 100 per wrong element); input gradient
  # (x - y) / max(x (1 - x), 1e-12), huge but finite; target gradient -logit(x), +-inf.
  p = np.array([0.0, 1.0, 0.0, 1.0, 0.5, 0.0], np.float32)
  y = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.5], np.float32)
  value, torch_value = compare_with_torch(
    *_both("binary_cross_entropy", reduction=reduction), [p, y], grad_argnums=(0, 1)
  )
  if reduction == "none":
    np.testing.assert_allclose(value[:4], [100.0, 100.0, 0.0, 0.0])


# -------------------------------------------------------------- Poisson, full, count 0


def test_poisson_full_target_gradient_at_zero():
  # Values and input gradients: torch 2.13.0. Target gradient: torch gives NaN at
  # count 0 (its masked Stirling term still differentiates log(0)); jaxtrain gives
  # the derivative of the masked loss, -input (log_input=True).
  x = np.array([0.3, -0.2, 1.0, 0.5], np.float32)
  y = np.array([0.0, 1.0, 3.0, 0.0], np.float32)
  compare_with_torch(*_both("poisson_nll_loss", full=True, reduction="sum"), [x, y])
  tx, ty = to_torch(x), to_torch(y, requires_grad=True)
  F.poisson_nll_loss(tx, ty, full=True, reduction="sum").backward()
  assert np.isnan(ty.grad.numpy()[[0, 3]]).all()  # what torch gives
  grad_y = jax.grad(lambda y: L.poisson_nll_loss(x, y, full=True, reduction="sum"))(jnp.asarray(y))
  stirling = np.log(3.0) + 0.5 / 3.0  # d/dy (y log y - y + log(2 pi y) / 2) at y = 3
  np.testing.assert_allclose(grad_y, [-0.3, 0.2, -1.0 + stirling, -0.5], rtol=1e-6)


# ---------------------------------------------------------------------- KL, zero target


@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none"])
def test_kl_div_zero_probabilities(reduction):
  # torch 2.13.0: 0 * log 0 = 0 in the value; input gradient -y.
  logq = np.log(np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]], np.float32))
  y = np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]], np.float32)
  compare_with_torch(*_both("kl_div", reduction=reduction), [logq, y])


# ------------------------------------------------------------------------- channels-last


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_axis_channels_last(name, reduction):
  # axis=-1 on (N, H, W, C) equals torch on the same data as (N, C, H, W).
  rng = np.random.default_rng(1)
  x = rng.standard_normal((2, 4, 3, 5)).astype(np.float32)  # N, H, W, C
  t = rng.integers(0, 5, (2, 4, 3)).astype(np.int64)
  w = rng.uniform(0.5, 2.0, 5).astype(np.float32)
  compare_with_torch(
    lambda x, t: getattr(L, name)(x, t, weight=w, reduction=reduction, axis=-1),
    lambda x, t: getattr(F, name)(
      x.permute(0, 3, 1, 2).contiguous(), t, weight=torch.from_numpy(w), reduction=reduction
    ),
    [x, t],
  )


def test_axis_channels_last_probabilities():
  rng = np.random.default_rng(2)
  x = rng.standard_normal((3, 4, 5)).astype(np.float32)  # N, L, C
  q = np.asarray(jax.nn.softmax(rng.standard_normal((3, 4, 5)), -1), np.float32)
  compare_with_torch(
    lambda x, q: L.cross_entropy(x, q, label_smoothing=0.1, axis=-1),
    lambda x, q: F.cross_entropy(x.transpose(1, 2), q.transpose(1, 2), label_smoothing=0.1),
    [x, q],
    grad_argnums=(0, 1),
  )


# ------------------------------------------------------------------------ ties at zero


def test_hinge_ties_take_torch_gradient():
  # torch's clamp_min passes the gradient where the hinge is exactly 0; multi_margin's
  # kernel counts only z > 0. Both checked against torch 2.13.0.
  x = np.array([1.0, 2.0, 0.5], np.float32)
  compare_with_torch(
    *_both("margin_ranking_loss", reduction="sum"),
    [x, x.copy(), np.ones(3, np.float32)],
    grad_argnums=(0, 1),
  )
  scores = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]], np.float32)  # z == 0 at [0, 1]
  compare_with_torch(*_both("multi_margin_loss"), [scores, np.array([0, 1])])


# --------------------------------------------------------------------------- misc torch


def test_elementwise_broadcast_warns_like_torch():
  x, y = np.ones((3, 4), np.float32), np.arange(4, dtype=np.float32)
  for name in ("l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss"):
    with pytest.warns(UserWarning, match="target size"):
      value = getattr(L, name)(x, y)
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      expected = getattr(F, name)(to_torch(x), to_torch(y)).item()
    np.testing.assert_allclose(value, expected, rtol=1e-6)


def test_gaussian_nll_float_var():
  # torch 2.13.0 accepts a Python float variance.
  x, y = np.array([0.5, -1.0, 2.0], np.float32), np.array([0.0, 0.0, 1.0], np.float32)
  compare_with_torch(
    lambda x, y: L.gaussian_nll_loss(x, y, 0.7, full=True),
    lambda x, y: F.gaussian_nll_loss(x, y, 0.7, full=True),
    [x, y],
    grad_argnums=(0, 1),
  )


def test_out_of_range_class_under_jit_is_nan():
  # Concrete arrays raise (test_losses_errors.py); under jit the value cannot be
  # checked, and a NaN says so instead of a clamped, plausible number.
  x = jnp.zeros((2, 3))
  value = jax.jit(L.cross_entropy)(x, jnp.array([0, 7]))
  assert np.isnan(value)


def test_default_reduction_is_mean_for_every_loss():
  rng = np.random.default_rng(3)
  x, y = rng.standard_normal((4, 3)).astype(np.float32), rng.uniform(size=(4, 3)).astype(np.float32)
  assert_close(L.mse_loss(x, y), F.mse_loss(to_torch(x), to_torch(y)).numpy())
  assert_close(L.mse_loss(x, y), np.mean((x - y) ** 2))


@pytest.mark.parametrize("most_targets", [4, 5, 17])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_multilabel_margin_in_row_blocks(reduction, most_targets, monkeypatch):
  # classification._multilabel_margin takes the fewest target slots (4, 16, then
  # all 20 classes here) that hold every row's list: one row lists `most_targets`
  # (4 fits the shortest form, 5 needs 16 slots, 17 all of them), the others 0-3.
  # A small pair budget splits the 141 rows into blocks whose count does not
  # divide them (64 rows of 20 slots, 80 of 16): the blocked form (padded,
  # checkpointed lax.map) against torch.
  from jaxtrain.losses import classification

  monkeypatch.setattr(classification, "_MULTILABEL_BLOCK_PAIRS", 64 * 20 * 20)
  rows, num_classes = 141, 20
  rng = np.random.default_rng(7)
  x = rng.standard_normal((rows, num_classes)).astype(np.float32)
  target = np.full((rows, num_classes), -1, np.int64)
  for i in range(rows):
    k = most_targets if i == 100 else i % 4
    target[i, :k] = rng.choice(num_classes, k, replace=False)
    if i % 7 == 0 and 1 <= k <= 2:
      target[i, k] = target[i, 0]  # a class listed twice counts twice
  compare_with_torch(
    lambda x, t: L.multilabel_margin_loss(x, t, reduction=reduction),
    lambda x, t: F.multilabel_margin_loss(x, t, reduction=reduction),
    [x, target],
  )


def test_multilabel_margin_out_of_range_under_jit_is_nan():
  x = jnp.zeros((70, 3))  # more than one block of rows
  target = jnp.full((70, 3), -1).at[69, 0].set(5)
  loss = jax.jit(lambda x, t: L.multilabel_margin_loss(x, t, reduction="none"))(x, target)
  assert np.isnan(loss[69]) and not np.isnan(loss[:69]).any()


# ------------------------------------------------- inputs from torch's own loss tests
# Each found by trying the losses with the inputs torch's test suite uses for its own;
# the whole classes are in tests/test_losses_grid.py.


@pytest.mark.parametrize(
  "name",
  ["margin_ranking_loss", "hinge_embedding_loss", "triplet_margin_loss", "cosine_embedding_loss"],
)
@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_clamped_losses_propagate_nan(name, reduction):
  # torch 2.13.0: clamp_min(NaN, 0) is NaN (its gradient there 0); a clamp written as
  # where(z >= 0, z, 0) made it 0, which also hid the NaN from the train step.
  rng = np.random.default_rng(4)
  x = rng.standard_normal((3, 4)).astype(np.float32)
  x[1, 2] = np.nan
  y = np.array([1.0, -1.0, 1.0], np.float32)
  args = {
    "margin_ranking_loss": ([x, np.zeros_like(x), np.ones_like(x)], (0, 1, 2)),
    "hinge_embedding_loss": ([np.abs(x), np.where(x > 0, 1.0, -1.0).astype(np.float32)], (0,)),
    "triplet_margin_loss": ([x, np.ones_like(x), -x], (0, 1, 2)),
    "cosine_embedding_loss": ([x, np.ones_like(x), y], (0, 1)),
  }
  arrays, grad = args[name]
  value, _ = compare_with_torch(*_both(name, reduction=reduction), arrays, grad_argnums=grad)
  assert np.isnan(value).any()


@pytest.mark.parametrize("name", ["multi_margin_loss", "multilabel_margin_loss"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_margin_losses_take_0d_input_and_target(name, reduction):
  # torch 2.13.0 reads a 0-d input as one sample of one class (loss 0).
  compare_with_torch(*_both(name, reduction=reduction), [np.float32(0.3), np.array(0)])


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_multi_margin_loss_target_of_shape_1_for_unbatched_input(reduction):
  # torch 2.13.0: a (1,) target of a (C,) input is its one sample ('none': shape (1,)).
  x = np.array([0.1, -0.5, 0.3, 0.9, 0.5], np.float32)
  value, _ = compare_with_torch(
    *_both("multi_margin_loss", p=1, margin=7.0, reduction=reduction), [x, np.array([2])]
  )
  # sum over c != 2 of 7 - x[2] + x[c], over C = 5: (6.8 + 6.2 + 7.6 + 7.2) / 5
  np.testing.assert_allclose(value, np.full(np.shape(value), 5.56), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_multilabel_soft_margin_loss_integer_target(dtype):
  # torch 2.13.0 computes with an int64 target (promoted to the input's type).
  rng = np.random.default_rng(5)
  x = rng.standard_normal((3, 4)).astype(np.float32)
  y = (rng.uniform(size=(3, 4)) < 0.5).astype(dtype)
  compare_with_torch(
    lambda x, y: L.multilabel_soft_margin_loss(x, y),
    lambda x, y: F.multilabel_soft_margin_loss(x, y.long()),
    [x, y],
  )


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_pairwise_distance_keeps_half_dtype(dtype):
  # torch 2.13.0 returns the inputs' dtype; the value within 2 ulp of the half type.
  rng = np.random.default_rng(6)
  x1, x2 = (rng.standard_normal((3, 5)).astype(np.float32) for _ in range(2))
  value = L.pairwise_distance(jnp.asarray(x1, dtype), jnp.asarray(x2, dtype))
  expected = F.pairwise_distance(
    to_torch(x1).to(getattr(torch, dtype)), to_torch(x2).to(getattr(torch, dtype))
  )
  assert str(value.dtype) == dtype and expected.dtype == getattr(torch, dtype)
  tol = 2.0**-7 if dtype == "bfloat16" else 2.0**-10
  np.testing.assert_allclose(np.asarray(value, np.float32), expected.float().numpy(), rtol=tol)


@pytest.mark.parametrize("p", [0.5, 0.0, -1.0, -np.inf, 3.0])
def test_pairwise_distance_any_p(p):
  # torch 2.13.0 computes every p (linalg.vector_norm's), values and gradients.
  rng = np.random.default_rng(7)
  x1, x2 = (rng.standard_normal((4, 5)).astype(np.float32) for _ in range(2))
  x2[0] = x1[0]  # a difference of eps only
  compare_with_torch(*_both("pairwise_distance", p=p), [x1, x2], grad_argnums=(0, 1))


@pytest.mark.parametrize("name", ["nll_loss", "cross_entropy", "multi_margin_loss"])
def test_class_weight_of_another_dtype_is_rejected(name):
  # torch 2.13.0 raises "expected scalar type Float but found Half"; jaxtrain names the
  # argument and both dtypes instead of promoting silently.
  x, t = np.zeros((2, 3), np.float32), np.array([0, 1])
  w = np.ones(3, np.float16)
  with pytest.raises(RuntimeError, match="expected scalar type Float but found Half"):
    getattr(F, name)(to_torch(x), to_torch(t), weight=to_torch(w))
  with pytest.raises(
    TypeError, match=f"^{name}: weight dtype float16 must equal input dtype float32"
  ):
    getattr(L, name)(x, t, weight=w)
