"""The grid of loss cases compared with torch: every loss x reduction x option.

jaxtrain's losses take torch's names and keywords, so one spec drives both sides:
``Case('l1_loss', [x, y], kw={'reduction': 'sum'})`` calls
``jaxtrain.losses.l1_loss(x, y, reduction='sum')`` and
``torch.nn.functional.l1_loss(x, y, reduction='sum')``. Array keywords (``weight``,
``pos_weight``, ``var``) are listed in ``array_kw`` and travel as trailing
positional arrays, so gradients can be taken with respect to them.

Reference for every case: torch 2.13.0 ``torch.nn.functional.<name>``.
"""

from __future__ import annotations

import dataclasses
import itertools
import zlib
from collections.abc import Callable

import numpy as np
import torch.nn.functional as F

import jaxtrain.losses as L

REDUCTIONS = ("none", "mean", "sum")


@dataclasses.dataclass
class Case:
  name: str
  args: list  # positional arrays, then the arrays of array_kw
  kw: dict = dataclasses.field(default_factory=dict)
  array_kw: tuple = ()
  grad: tuple = (0,)  # indices into args to differentiate
  tag: str = ""
  jax_extra: dict = dataclasses.field(default_factory=dict)  # keywords for jax only
  torch_extra: dict = dataclasses.field(default_factory=dict)  # keywords for torch only

  @property
  def id(self) -> str:
    opts = ",".join([f"{k}={v}" for k, v in self.kw.items()] + [f"{k}=array" for k in self.array_kw])
    shape = "x".join(map(str, np.shape(self.args[0]))) or "scalar"
    return f"{self.name}[{shape}{',' + opts if opts else ''}{',' + self.tag if self.tag else ''}]"

  def _fn(self, module, extra) -> Callable:
    n_pos = len(self.args) - len(self.array_kw)
    fn = getattr(module, self.name)

    def call(*a):
      return fn(*a[:n_pos], **dict(zip(self.array_kw, a[n_pos:])), **self.kw, **extra)

    return call

  @property
  def jax_fn(self):
    return self._fn(L, self.jax_extra)

  @property
  def torch_fn(self):
    return self._fn(F, self.torch_extra)


def rng_for(*key) -> np.random.Generator:
  """A generator seeded by the case's key, the same in every process."""
  return np.random.default_rng(zlib.crc32(repr(key).encode()))


def normal(rng, shape, scale=1.0):
  return (scale * rng.standard_normal(shape)).astype(np.float32)


def uniform(rng, shape, lo=0.0, hi=1.0):
  return rng.uniform(lo, hi, shape).astype(np.float32)


def signs(rng, shape):
  return rng.choice(np.array([-1.0, 1.0], np.float32), shape)


def log_softmax(x, axis):
  x = x - x.max(axis=axis, keepdims=True)
  return (x - np.log(np.exp(x).sum(axis=axis, keepdims=True))).astype(np.float32)


# ---------------------------------------------------------------------------- regression

REG_SHAPES = [(), (7,), (3, 5), (2, 3, 4)]


def regression_cases():
  cases = []
  for shape, r in itertools.product(REG_SHAPES, REDUCTIONS):
    rng = rng_for("reg", shape, r)
    x, y = normal(rng, shape), normal(rng, shape)
    # A few exact ties x == y: torch's L1 gradient there is 0.
    if len(shape):
      y.reshape(-1)[:2] = x.reshape(-1)[:2]
    w = uniform(rng, shape, 0.1, 2.0)
    for name in ("l1_loss", "mse_loss"):
      cases.append(Case(name, [x, y], {"reduction": r}, grad=(0, 1)))
      cases.append(Case(name, [x, y, w], {"reduction": r}, ("weight",), grad=(0, 1, 2)))
    for beta in (1.0, 0.5, 0.0):
      cases.append(Case("smooth_l1_loss", [x, y], {"reduction": r, "beta": beta}, grad=(0, 1)))
    for delta in (1.0, 0.3, 2.0):
      cases.append(Case("huber_loss", [x, y], {"reduction": r, "delta": delta}, grad=(0, 1)))
    cases.append(Case("huber_loss", [x, y, w], {"reduction": r}, ("weight",), grad=(0, 1, 2)))
    counts = rng.integers(0, 6, shape).astype(np.float32)
    rate = uniform(rng, shape, 0.2, 4.0)
    for log_input, full in itertools.product((True, False), (False, True)):
      inp = np.log(rate) if log_input else rate
      # With full=True, torch's target gradient is NaN at count 0 (see
      # test_poisson_full_target_gradient_at_zero); here counts start at 1 (1 is
      # masked out of the Stirling term too).
      y = np.maximum(counts, 1) if full else counts
      cases.append(
          Case("poisson_nll_loss", [inp, y], {"reduction": r, "log_input": log_input, "full": full},
               grad=(0, 1))
      )
  for shape, r in itertools.product([(6,), (4, 3), (2, 3, 4)], REDUCTIONS):
    rng = rng_for("gauss", shape, r)
    x, y = normal(rng, shape), normal(rng, shape)
    var_shapes = {"same": shape, "rows": shape[:-1], "one": shape[:-1] + (1,)}
    for tag, vshape in var_shapes.items():
      var = uniform(rng, vshape, 0.05, 2.0)
      for full in (False, True):
        cases.append(Case("gaussian_nll_loss", [x, y, var], {"reduction": r, "full": full},
                          grad=(0, 1, 2), tag=f"var={tag}"))
      # eps above some variances: clamped without gradient, as torch.
      cases.append(Case("gaussian_nll_loss", [x, y, var], {"reduction": r, "eps": 0.5},
                        grad=(0, 1, 2), tag=f"var={tag},clamped"))
  return cases


# ------------------------------------------------------------------------ classification

CLASS_SHAPES = [(5,), (6, 5), (4, 5, 3), (2, 5, 3, 2)]  # (C,), (N, C), (N, C, d1), (N, C, d1, d2)


def _index_target(rng, shape, ignore_index=None, frac_ignored=0.0):
  C = shape[0] if len(shape) == 1 else shape[1]
  tshape = () if len(shape) == 1 else shape[:1] + shape[2:]
  t = rng.integers(0, C, tshape).astype(np.int64)
  if ignore_index is not None and frac_ignored and t.ndim:
    t[rng.uniform(size=tshape) < frac_ignored] = ignore_index
  return t


def classification_cases():
  cases = []
  for shape, r in itertools.product(CLASS_SHAPES, REDUCTIONS):
    rng = rng_for("ce", shape, r)
    C = shape[0] if len(shape) == 1 else shape[1]
    logits = normal(rng, shape, 2.0)
    w = uniform(rng, (C,), 0.2, 2.0)
    class_axis = 0 if len(shape) == 1 else 1
    for ignore, smooth in itertools.product((-100, 2), (0.0, 0.15)):
      t = _index_target(rng, shape, ignore_index=ignore, frac_ignored=0.3)
      kw = {"reduction": r, "ignore_index": ignore}
      cases.append(Case("cross_entropy", [logits, t], {**kw, "label_smoothing": smooth}))
      # torch: nll_loss is not differentiable with respect to weight.
      cases.append(Case("cross_entropy", [logits, t, w], {**kw, "label_smoothing": smooth},
                        ("weight",)))
      if smooth == 0.0:
        logp = log_softmax(logits, class_axis)
        cases.append(Case("nll_loss", [logp, t], kw))
        cases.append(Case("nll_loss", [logp, t, w], kw, ("weight",)))
    probs = np.exp(log_softmax(normal(rng, shape), class_axis))
    for smooth in (0.0, 0.2):
      kw = {"reduction": r, "label_smoothing": smooth}
      cases.append(Case("cross_entropy", [logits, probs], kw, grad=(0, 1), tag="probs"))
      cases.append(Case("cross_entropy", [logits, probs, w], kw, ("weight",), grad=(0, 1, 2),
                        tag="probs"))

  for shape, r in itertools.product([(7,), (4, 3), (2, 3, 4)], REDUCTIONS):
    rng = rng_for("bce", shape, r)
    p = uniform(rng, shape, 0.02, 0.98)
    y = uniform(rng, shape)
    w = uniform(rng, shape, 0.2, 2.0)
    w_last = uniform(rng, shape[-1:], 0.2, 2.0)
    cases.append(Case("binary_cross_entropy", [p, y], {"reduction": r}, grad=(0, 1)))
    cases.append(Case("binary_cross_entropy", [p, y, w], {"reduction": r}, ("weight",), grad=(0, 1)))
    cases.append(Case("binary_cross_entropy", [p, y, w_last], {"reduction": r}, ("weight",),
                      grad=(0, 1), tag="w-broadcast"))
    x = normal(rng, shape, 3.0)
    pos = uniform(rng, shape[-1:], 0.5, 3.0)
    kw = {"reduction": r}
    cases.append(Case("binary_cross_entropy_with_logits", [x, y], kw, grad=(0, 1)))
    # torch: not differentiable with respect to weight or pos_weight.
    cases.append(Case("binary_cross_entropy_with_logits", [x, y, w], kw, ("weight",), grad=(0, 1)))
    cases.append(Case("binary_cross_entropy_with_logits", [x, y, pos], kw, ("pos_weight",),
                      grad=(0, 1)))
    cases.append(Case("binary_cross_entropy_with_logits", [x, y, w, pos], kw, ("weight", "pos_weight"),
                      grad=(0, 1)))
    labels = signs(rng, shape)
    cases.append(Case("soft_margin_loss", [x, labels], kw))

  for shape, r in itertools.product([(5,), (4, 6), (2, 3, 4)], REDUCTIONS + ("batchmean",)):
    rng = rng_for("kl", shape, r)
    logq = log_softmax(normal(rng, shape), -1)
    logp = log_softmax(normal(rng, shape), -1)
    for log_target in (False, True):
      target = logp if log_target else np.exp(logp)
      cases.append(Case("kl_div", [logq, target], {"reduction": r, "log_target": log_target},
                        grad=(0, 1)))

  for shape, r in itertools.product([(6,), (4, 6)], REDUCTIONS):
    rng = rng_for("margin", shape, r)
    C = shape[-1]
    x = normal(rng, shape)
    w = uniform(rng, (C,), 0.2, 2.0)
    y01 = (rng.uniform(size=shape) < 0.4).astype(np.float32)
    cases.append(Case("multilabel_soft_margin_loss", [x, y01], {"reduction": r}, grad=(0, 1)))
    cases.append(Case("multilabel_soft_margin_loss", [x, y01, w], {"reduction": r}, ("weight",),
                      grad=(0, 1, 2)))
    t = rng.integers(0, C, shape[:-1]).astype(np.int64)
    for p, margin in ((1, 1.0), (2, 1.0), (1, 0.5), (2, 2.0)):
      kw = {"reduction": r, "p": p, "margin": margin}
      cases.append(Case("multi_margin_loss", [x, t], kw))
      cases.append(Case("multi_margin_loss", [x, t, w], kw, ("weight",)))
    # Targets listed before the first -1; one row lists a class twice, one lists none.
    ml = np.full(shape, -1, np.int64)
    rows = ml.reshape(-1, C)
    for i, row in enumerate(rows):
      k = i % 4
      row[:k] = rng.choice(C, k, replace=False)
      if i == 1:
        row[k] = row[0] if k else 0  # a duplicate (or a lone class)
      if k + 2 < C:
        row[k + 2] = rng.integers(0, C)  # after the -1: ignored
    cases.append(Case("multilabel_margin_loss", [x, ml], {"reduction": r}))
  return cases


# ------------------------------------------------------------------------------- ranking


def _cosine_distance_jax(a, b):
  import jax.numpy as jnp

  return 1 - jnp.sum(a * b, -1) / jnp.sqrt(jnp.sum(a * a, -1) * jnp.sum(b * b, -1))


def _cosine_distance_torch(a, b):
  return 1 - (a * b).sum(-1) / ((a * a).sum(-1) * (b * b).sum(-1)).sqrt()


def ranking_cases():
  cases = []
  for shape, r in itertools.product([(), (8,), (4, 3)], REDUCTIONS):
    rng = rng_for("rank", shape, r)
    x1, x2, y = normal(rng, shape), normal(rng, shape), signs(rng, shape)
    for margin in (0.0, 0.5):
      cases.append(Case("margin_ranking_loss", [x1, x2, y], {"reduction": r, "margin": margin},
                        grad=(0, 1, 2)))
    d = np.abs(normal(rng, shape, 1.5))
    labels = signs(rng, shape)
    if len(shape):
      labels.reshape(-1)[0] = 0.0  # neither 1 nor -1: both terms, as torch
    for margin in (1.0, 0.5):
      cases.append(Case("hinge_embedding_loss", [d, labels], {"reduction": r, "margin": margin}))
  for (shape, r), margin in itertools.product(
      itertools.product([(6,), (5, 4)], REDUCTIONS), (0.0, 0.3)
  ):
    rng = rng_for("cos", shape, r, margin)
    a, b = normal(rng, shape), normal(rng, shape)
    y = signs(rng, shape[:-1])
    cases.append(Case("cosine_embedding_loss", [a, b, y], {"reduction": r, "margin": margin},
                      grad=(0, 1)))
  for shape, r in itertools.product([(6,), (5, 4)], REDUCTIONS):
    rng = rng_for("triplet", shape, r)
    a, p, n = normal(rng, shape), normal(rng, shape), normal(rng, shape)
    for norm, swap, margin in itertools.product((1.0, 2.0, 3.0), (False, True), (1.0, 0.5)):
      cases.append(Case("triplet_margin_loss", [a, p, n],
                        {"reduction": r, "p": norm, "swap": swap, "margin": margin}, grad=(0, 1, 2)))
    for swap in (False, True):
      cases.append(Case("triplet_margin_with_distance_loss", [a, p, n],
                        {"reduction": r, "swap": swap}, grad=(0, 1, 2)))
      cases.append(Case("triplet_margin_with_distance_loss", [a, p, n],
                        {"reduction": r, "swap": swap, "margin": 0.3}, grad=(0, 1, 2), tag="cosine",
                        jax_extra={"distance_function": _cosine_distance_jax},
                        torch_extra={"distance_function": _cosine_distance_torch}))
  return cases


def by_id(cases):
  return {"argvalues": cases, "ids": [c.id for c in cases]}
