"""Bad input: a clear ValueError/TypeError naming the argument, where torch rejects it too."""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_losses_transforms import CASES

import jaxtrain.losses as L

x23 = np.zeros((2, 3), np.float32)
i2 = np.array([0, 1])


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_unknown_reduction(case):
  # torch 2.13.0 raises for an unknown reduction string; so does every jaxtrain loss.
  kw = {**case.kw, "reduction": "avg"}
  fn = getattr(L, case.name)
  n_pos = len(case.args) - len(case.array_kw)
  with pytest.raises(ValueError, match=re.escape("reduction='avg' is not valid; expected one of")):
    fn(*case.args[:n_pos], **dict(zip(case.array_kw, case.args[n_pos:])), **kw, **case.jax_extra)


def test_batchmean_only_for_kl_div():
  with pytest.raises(ValueError, match="reduction='batchmean'"):
    L.mse_loss(x23, x23, reduction="batchmean")
  assert L.kl_div(x23, x23, reduction="batchmean").shape == ()


# (jaxtrain call, torch call or None where the rule is jaxtrain's own, error, message fragment)
BAD = [
  (
    "class target as float",
    lambda: L.cross_entropy(x23, np.array([0.0, 1.0])),
    lambda: F.cross_entropy(torch.zeros(2, 3), torch.tensor([0.0, 1.0])),
    TypeError,
    "target must hold integer class indices",
  ),
  (
    "nll target batch mismatch",
    lambda: L.nll_loss(x23, np.array([0, 1, 2])),
    lambda: F.nll_loss(torch.zeros(2, 3), torch.tensor([0, 1, 2])),
    ValueError,
    "target shape (3,) must equal input shape (2, 3) without its class dimension",
  ),
  (
    "cross_entropy spatial target mismatch",
    lambda: L.cross_entropy(np.zeros((2, 3, 4), np.float32), np.zeros((2, 5), np.int32)),
    lambda: F.cross_entropy(torch.zeros(2, 3, 4), torch.zeros(2, 5, dtype=torch.long)),
    ValueError,
    "target shape (2, 5)",
  ),
  (
    "class weight wrong length",
    lambda: L.cross_entropy(x23, i2, weight=np.ones(4, np.float32)),
    lambda: F.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), weight=torch.ones(4)),
    ValueError,
    "weight must have shape (3,)",
  ),
  (
    "label_smoothing above 1",
    lambda: L.cross_entropy(x23, i2, label_smoothing=1.5),
    lambda: F.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), label_smoothing=1.5),
    ValueError,
    "label_smoothing must be in [0, 1], got 1.5",
  ),
  (
    "class index out of range",
    lambda: L.cross_entropy(x23, np.array([0, 3])),
    lambda: F.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 3])),
    ValueError,
    "target 3 is out of bounds",
  ),
  (
    "negative class index",
    lambda: L.nll_loss(x23, np.array([-1, 0])),
    lambda: F.nll_loss(torch.zeros(2, 3), torch.tensor([-1, 0])),
    ValueError,
    "target -1 is out of bounds",
  ),
  (
    "ignore_index with probability targets",
    lambda: L.cross_entropy(x23, x23, ignore_index=1),
    lambda: F.cross_entropy(torch.zeros(2, 3), torch.zeros(2, 3), ignore_index=1),
    ValueError,
    "ignore_index=1 is not supported with class-probability targets",
  ),
  (
    "class axis out of range",
    lambda: L.cross_entropy(x23, i2, axis=2),
    None,
    ValueError,
    "axis=2 is out of range",
  ),
  (
    "scalar logits",
    lambda: L.cross_entropy(np.float32(1.0), np.array(0)),
    lambda: F.cross_entropy(torch.tensor(1.0), torch.tensor(0)),
    ValueError,
    "input must have at least 1 dimension",
  ),
  (
    "bce target shape",
    lambda: L.binary_cross_entropy(np.full(3, 0.5, np.float32), np.ones((3, 1), np.float32)),
    lambda: F.binary_cross_entropy(torch.full((3,), 0.5), torch.ones(3, 1)),
    ValueError,
    "target shape (3, 1) must equal input shape (3,)",
  ),
  (
    "bce probability above 1",
    lambda: L.binary_cross_entropy(np.array([1.5], np.float32), np.array([1.0], np.float32)),
    lambda: F.binary_cross_entropy(torch.tensor([1.5]), torch.tensor([1.0])),
    ValueError,
    "all elements of input must be between 0 and 1",
  ),
  (
    "bce with logits target shape",
    lambda: L.binary_cross_entropy_with_logits(x23, np.zeros((3, 2), np.float32)),
    lambda: F.binary_cross_entropy_with_logits(torch.zeros(2, 3), torch.zeros(3, 2)),
    ValueError,
    "target size (3, 2) must be the same as input size (2, 3)",
  ),
  (
    "mse shapes that cannot broadcast",
    lambda: L.mse_loss(x23, np.zeros(4, np.float32)),
    lambda: F.mse_loss(torch.zeros(2, 3), torch.zeros(4)),
    ValueError,
    "target shape (4,) cannot be broadcast with input shape (2, 3)",
  ),
  (
    "mse weight shape",
    lambda: L.mse_loss(x23, x23, weight=np.ones(3, np.float32)),
    lambda: F.mse_loss(torch.zeros(2, 3), torch.zeros(2, 3), weight=torch.ones(3)),
    ValueError,
    "weight shape (3,) must equal input shape (2, 3)",
  ),
  (
    "integer input",
    lambda: L.mse_loss(np.array([1, 2]), np.array([1.0, 2.0], np.float32)),
    None,
    TypeError,
    "input must be a floating-point array, got dtype int32",
  ),
  (
    "negative smooth_l1 beta",
    lambda: L.smooth_l1_loss(x23, x23, beta=-1.0),
    lambda: F.smooth_l1_loss(torch.zeros(2, 3), torch.zeros(2, 3), beta=-1.0),
    ValueError,
    "beta must be non-negative, got beta=-1.0",
  ),
  (
    "non-positive huber delta",
    lambda: L.huber_loss(x23, x23, delta=0.0),
    lambda: F.huber_loss(torch.zeros(2, 3), torch.zeros(2, 3), delta=0.0),
    ValueError,
    "delta must be positive, got delta=0.0",
  ),
  (
    "gaussian var shape",
    lambda: L.gaussian_nll_loss(x23, x23, np.ones((3,), np.float32)),
    lambda: F.gaussian_nll_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(3)),
    ValueError,
    "var shape (3,) is of incorrect size",
  ),
  (
    "gaussian negative var",
    lambda: L.gaussian_nll_loss(x23, x23, -np.ones((2, 3), np.float32)),
    lambda: F.gaussian_nll_loss(torch.zeros(2, 3), torch.zeros(2, 3), -torch.ones(2, 3)),
    ValueError,
    "var has negative entry",
  ),
  (
    "multi_margin p=3",
    lambda: L.multi_margin_loss(x23, i2, p=3),
    lambda: F.multi_margin_loss(torch.zeros(2, 3), torch.tensor([0, 1]), p=3),
    ValueError,
    "p must be 1 or 2, got p=3",
  ),
  (
    "multi_margin 2-D weight",
    lambda: L.multi_margin_loss(x23, i2, weight=np.ones((1, 3), np.float32)),
    lambda: F.multi_margin_loss(torch.zeros(2, 3), torch.tensor([0, 1]), weight=torch.ones(1, 3)),
    ValueError,
    "weight must be one-dimensional",
  ),
  (
    "multi_margin target shape",
    lambda: L.multi_margin_loss(x23, np.array([0, 1, 2])),
    lambda: F.multi_margin_loss(torch.zeros(2, 3), torch.tensor([0, 1, 2])),
    ValueError,
    "target shape (3,) must be (2,)",
  ),
  (
    "multilabel_margin 3-D input",
    lambda: L.multilabel_margin_loss(
      np.zeros((2, 3, 4), np.float32), np.zeros((2, 3, 4), np.int32)
    ),
    lambda: F.multilabel_margin_loss(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4, dtype=torch.long)),
    ValueError,
    "input must be (C,) or (N, C)",
  ),
  (
    "margin_ranking dims",
    lambda: L.margin_ranking_loss(x23, np.zeros(3, np.float32), np.ones(3, np.float32)),
    lambda: F.margin_ranking_loss(torch.zeros(2, 3), torch.zeros(3), torch.ones(3)),
    ValueError,
    "all inputs must have the same number of dimensions",
  ),
  (
    "cosine_embedding 2-D target",
    lambda: L.cosine_embedding_loss(x23, x23, np.ones((2, 1), np.float32)),
    lambda: F.cosine_embedding_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 1)),
    ValueError,
    "target must be 0-D or 1-D",
  ),
  (
    "cosine_embedding input dims",
    lambda: L.cosine_embedding_loss(np.zeros(3, np.float32), np.zeros(3, np.float32), np.ones(2)),
    lambda: F.cosine_embedding_loss(torch.zeros(3), torch.zeros(3), torch.ones(2)),
    ValueError,
    "a 1-D target expects 2-D input1 and input2",
  ),
  (
    "triplet margin zero",
    lambda: L.triplet_margin_loss(x23, x23, x23, margin=0.0),
    lambda: F.triplet_margin_loss(
      torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3), margin=0.0
    ),
    ValueError,
    "margin must be greater than 0, got margin=0.0",
  ),
  (
    "triplet dims",
    lambda: L.triplet_margin_with_distance_loss(x23, x23, np.zeros(3, np.float32)),
    lambda: F.triplet_margin_with_distance_loss(
      torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3)
    ),
    ValueError,
    "all inputs must have the same number of dimensions",
  ),
]


@pytest.mark.parametrize("what,call,torch_call,error,fragment", BAD, ids=[b[0] for b in BAD])
def test_bad_input(what, call, torch_call, error, fragment):
  with pytest.raises(error, match=re.escape(fragment)):
    call()
  if torch_call is not None:  # torch 2.13.0 rejects the same input
    with pytest.raises((ValueError, RuntimeError, IndexError)):
      torch_call()


def _z(*shape):
  return np.zeros(shape, np.float32)


# Arguments whose shapes do not broadcast: torch 2.13.0 raises ("The size of tensor a (3)
# must match the size of tensor b (4)"); jaxtrain names the loss and its arguments where
# JAX's own error would name an internal operation ("sub got incompatible shapes").
MISMATCHED = [
  (
    "margin_ranking_loss",
    (_z(3), _z(4), np.ones(3, np.float32)),
    "input1 (3,), input2 (4,), target (3,)",
  ),
  ("hinge_embedding_loss", (_z(3), np.ones(4, np.float32)), "input (3,), target (4,)"),
  (
    "cosine_embedding_loss",
    (_z(3, 5), _z(4, 5), np.ones(3, np.float32)),
    "input1 (3, 5), input2 (4, 5)",
  ),
  (
    "triplet_margin_loss",
    (_z(3, 5), _z(4, 5), _z(3, 5)),
    "anchor (3, 5), positive (4, 5), negative (3, 5)",
  ),
  ("pairwise_distance", (_z(3, 5), _z(4, 5)), "x1 (3, 5), x2 (4, 5)"),
  ("soft_margin_loss", (_z(3), np.ones(4, np.float32)), "input (3,), target (4,)"),
  (
    "multilabel_soft_margin_loss",
    (_z(3, 4), np.ones((3, 5), np.float32)),
    "input (3, 4), target (3, 5)",
  ),
  ("kl_div", (_z(3), np.ones(4, np.float32)), "input (3,), target (4,)"),
  ("poisson_nll_loss", (_z(3), np.ones(4, np.float32)), "input (3,), target (4,)"),
  (
    "gaussian_nll_loss",
    (_z(3), np.ones(4, np.float32), np.ones(3, np.float32)),
    "input (3,), target (4,)",
  ),
]


@pytest.mark.parametrize("name,args,shapes", MISMATCHED, ids=[m[0] for m in MISMATCHED])
def test_shapes_that_do_not_broadcast_name_the_arguments(name, args, shapes):
  with pytest.raises(RuntimeError, match="must match the size of tensor"):
    getattr(F, name)(*map(torch.from_numpy, args))
  with pytest.raises(
    ValueError, match=re.escape(f"{name}: the shapes of {shapes} do not broadcast")
  ):
    getattr(L, name)(*args)


# Bad calls users make, with the message that names the argument and what was expected
# (the loss's own rules, and torch 2.13.0's where it has them).
BAD_CALLS = [
  (
    "ce class index too large",
    lambda: L.cross_entropy(x23, np.array([0, 3])),
    ValueError,
    "cross_entropy: target 3 is out of bounds; expected class indices in [0, 2]",
  ),
  (
    "ce negative class index",
    lambda: L.cross_entropy(x23, np.array([-1, 0])),
    ValueError,
    "cross_entropy: target -1 is out of bounds",
  ),
  (
    "ce float target",
    lambda: L.cross_entropy(x23, np.array([0.0, 1.0])),
    TypeError,
    "cross_entropy: target must hold integer class indices, got dtype float",
  ),
  (
    "ce target batch mismatch",
    lambda: L.cross_entropy(x23, np.array([0, 1, 2])),
    ValueError,
    "cross_entropy: target shape (3,) must equal input shape (2, 3) without its class",
  ),
  (
    "ce weight per class",
    lambda: L.cross_entropy(x23, np.array([0, 1]), weight=np.ones(4)),
    ValueError,
    "cross_entropy: weight must have shape (3,), one entry per class, got (4,)",
  ),
  (
    "ce label_smoothing",
    lambda: L.cross_entropy(x23, np.array([0, 1]), label_smoothing=1.5),
    ValueError,
    "cross_entropy: label_smoothing must be in [0, 1], got 1.5",
  ),
  (
    "nll index outside ignore_index",
    lambda: L.nll_loss(x23, np.array([0, -5]), ignore_index=-100),
    ValueError,
    "nll_loss: target -5 is out of bounds; expected class indices in [0, 2] or ignore_index=-100",
  ),
  (
    "mse shapes do not broadcast",
    lambda: L.mse_loss(x23, np.zeros(4)),
    ValueError,
    "mse_loss: target shape (4,) cannot be broadcast with input shape (2, 3)",
  ),
  (
    "bce shape mismatch",
    lambda: L.binary_cross_entropy(np.zeros(2), np.zeros(3)),
    ValueError,
    "binary_cross_entropy: target shape (3,) must equal input shape (2,)",
  ),
  (
    "huber delta",
    lambda: L.huber_loss(np.zeros(2), np.zeros(2), delta=-1.0),
    ValueError,
    "huber_loss: delta must be positive, got delta=-1.0",
  ),
  (
    "smooth_l1 beta",
    lambda: L.smooth_l1_loss(np.zeros(2), np.zeros(2), beta=-1.0),
    ValueError,
    "smooth_l1_loss: beta must be non-negative, got beta=-1.0",
  ),
  (
    "unknown reduction",
    lambda: L.l1_loss(np.zeros(2), np.zeros(2), reduction="avg"),
    ValueError,
    "reduction='avg' is not valid; expected one of",
  ),
]


@pytest.mark.parametrize(
  "call,error,fragment", [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS]
)
def test_bad_calls_name_the_argument(call, error, fragment):
  with pytest.raises(error, match=re.escape(fragment)):
    call()
