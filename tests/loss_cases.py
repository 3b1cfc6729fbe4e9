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
import inspect
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
    opts = ",".join(
      [f"{k}={v}" for k, v in self.kw.items()] + [f"{k}=array" for k in self.array_kw]
    )
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
        Case(
          "poisson_nll_loss",
          [inp, y],
          {"reduction": r, "log_input": log_input, "full": full},
          grad=(0, 1),
        )
      )
  for shape, r in itertools.product([(6,), (4, 3), (2, 3, 4)], REDUCTIONS):
    rng = rng_for("gauss", shape, r)
    x, y = normal(rng, shape), normal(rng, shape)
    var_shapes = {_NC2: shape, "rows": shape[:-1], "one": shape[:-1] + (1,)}
    for tag, vshape in var_shapes.items():
      var = uniform(rng, vshape, 0.05, 2.0)
      for full in (False, True):
        cases.append(
          Case(
            "gaussian_nll_loss",
            [x, y, var],
            {"reduction": r, "full": full},
            grad=(0, 1, 2),
            tag=f"var={tag}",
          )
        )
      # eps above some variances: clamped without gradient, as torch.
      cases.append(
        Case(
          "gaussian_nll_loss",
          [x, y, var],
          {"reduction": r, "eps": 0.5},
          grad=(0, 1, 2),
          tag=f"var={tag},clamped",
        )
      )
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
      cases.append(
        Case("cross_entropy", [logits, t, w], {**kw, "label_smoothing": smooth}, ("weight",))
      )
      if smooth == 0.0:
        logp = log_softmax(logits, class_axis)
        cases.append(Case("nll_loss", [logp, t], kw))
        cases.append(Case("nll_loss", [logp, t, w], kw, ("weight",)))
    probs = np.exp(log_softmax(normal(rng, shape), class_axis))
    for smooth in (0.0, 0.2):
      kw = {"reduction": r, "label_smoothing": smooth}
      cases.append(Case("cross_entropy", [logits, probs], kw, grad=(0, 1), tag="probs"))
      cases.append(
        Case("cross_entropy", [logits, probs, w], kw, ("weight",), grad=(0, 1, 2), tag="probs")
      )

  for shape, r in itertools.product([(7,), (4, 3), (2, 3, 4)], REDUCTIONS):
    rng = rng_for("bce", shape, r)
    p = uniform(rng, shape, 0.02, 0.98)
    y = uniform(rng, shape)
    w = uniform(rng, shape, 0.2, 2.0)
    w_last = uniform(rng, shape[-1:], 0.2, 2.0)
    cases.append(Case("binary_cross_entropy", [p, y], {"reduction": r}, grad=(0, 1)))
    cases.append(
      Case("binary_cross_entropy", [p, y, w], {"reduction": r}, ("weight",), grad=(0, 1))
    )
    cases.append(
      Case(
        "binary_cross_entropy",
        [p, y, w_last],
        {"reduction": r},
        ("weight",),
        grad=(0, 1),
        tag="w-broadcast",
      )
    )
    x = normal(rng, shape, 3.0)
    pos = uniform(rng, shape[-1:], 0.5, 3.0)
    kw = {"reduction": r}
    cases.append(Case("binary_cross_entropy_with_logits", [x, y], kw, grad=(0, 1)))
    # torch: not differentiable with respect to weight or pos_weight.
    cases.append(Case("binary_cross_entropy_with_logits", [x, y, w], kw, ("weight",), grad=(0, 1)))
    cases.append(
      Case("binary_cross_entropy_with_logits", [x, y, pos], kw, ("pos_weight",), grad=(0, 1))
    )
    cases.append(
      Case(
        "binary_cross_entropy_with_logits",
        [x, y, w, pos],
        kw,
        ("weight", "pos_weight"),
        grad=(0, 1),
      )
    )
    labels = signs(rng, shape)
    cases.append(Case("soft_margin_loss", [x, labels], kw))

  for shape, r in itertools.product([(5,), (4, 6), (2, 3, 4)], REDUCTIONS + ("batchmean",)):
    rng = rng_for("kl", shape, r)
    logq = log_softmax(normal(rng, shape), -1)
    logp = log_softmax(normal(rng, shape), -1)
    for log_target in (False, True):
      target = logp if log_target else np.exp(logp)
      cases.append(
        Case("kl_div", [logq, target], {"reduction": r, "log_target": log_target}, grad=(0, 1))
      )

  for shape, r in itertools.product([(6,), (4, 6)], REDUCTIONS):
    rng = rng_for("margin", shape, r)
    C = shape[-1]
    x = normal(rng, shape)
    w = uniform(rng, (C,), 0.2, 2.0)
    y01 = (rng.uniform(size=shape) < 0.4).astype(np.float32)
    cases.append(Case("multilabel_soft_margin_loss", [x, y01], {"reduction": r}, grad=(0, 1)))
    cases.append(
      Case(
        "multilabel_soft_margin_loss", [x, y01, w], {"reduction": r}, ("weight",), grad=(0, 1, 2)
      )
    )
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
      cases.append(
        Case("margin_ranking_loss", [x1, x2, y], {"reduction": r, "margin": margin}, grad=(0, 1, 2))
      )
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
    cases.append(
      Case("cosine_embedding_loss", [a, b, y], {"reduction": r, "margin": margin}, grad=(0, 1))
    )
  for shape, r in itertools.product([(6,), (5, 4)], REDUCTIONS):
    rng = rng_for("triplet", shape, r)
    a, p, n = normal(rng, shape), normal(rng, shape), normal(rng, shape)
    for norm, swap, margin in itertools.product((1.0, 2.0, 3.0), (False, True), (1.0, 0.5)):
      cases.append(
        Case(
          "triplet_margin_loss",
          [a, p, n],
          {"reduction": r, "p": norm, "swap": swap, "margin": margin},
          grad=(0, 1, 2),
        )
      )
    for swap in (False, True):
      cases.append(
        Case(
          "triplet_margin_with_distance_loss",
          [a, p, n],
          {"reduction": r, "swap": swap},
          grad=(0, 1, 2),
        )
      )
      cases.append(
        Case(
          "triplet_margin_with_distance_loss",
          [a, p, n],
          {"reduction": r, "swap": swap, "margin": 0.3},
          grad=(0, 1, 2),
          tag="cosine",
          jax_extra={"distance_function": _cosine_distance_jax},
          torch_extra={"distance_function": _cosine_distance_torch},
        )
      )
  return cases


def by_id(cases):
  return {"argvalues": cases, "ids": [c.id for c in cases]}


# ------------------------------------------------------------------- edge-class grid
#
# Whole classes of input, for every loss, from one spec per loss. A ``Spec`` says how
# to call the loss (options, which arguments are floating, which one is the target,
# which ones torch differentiates) and how its arrays are laid out; ``edge_cases()``
# derives every class from it, so a new loss gets them all by adding a Spec:
#
# * ``nan@ARG``, ``inf@ARG``, ``-inf@ARG``: the value put in one entry (the first) of
#   each floating argument, the others as in the batch form;
# * ``empty``: a batch of 0 samples; ``scalar``: every array 0-d;
# * ``target1``: an unbatched input with a target of shape (1,);
# * ``target:DTYPE``: the target in the other dtypes torch might take: int64 for a
#   floating target, uint8 for class indices (int32 and uint8 for ctc_loss), and bool;
# * ``float16``, ``bfloat16``, ``float64``: every floating argument in that dtype;
# * ``float16@ARG``: one floating argument in float16, the others float32 (mixed).
#
# each run for every reduction the loss takes. Where torch 2.13.0 raises, jaxtrain must
# raise too (tests/test_losses_grid.py keeps the list); elsewhere its value and
# gradients must be torch's.

N_EDGE, C_EDGE = 3, 4  # batch and class (or feature) sizes of the 'batch' form
EDGE_FORMS = ("batch", "empty", "scalar", "target1")
SPECIAL_VALUES = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}
HALF_DTYPES = ("float16", "bfloat16")

# Values of each kind of array (numpy float32 unless said).
_FLOAT_KINDS = {
  "normal": lambda rng, s: normal(rng, s),
  "logit": lambda rng, s: normal(rng, s, 2.0),
  "prob": lambda rng, s: uniform(rng, s, 0.05, 0.95),
  "unit": lambda rng, s: uniform(rng, s),
  "y01": lambda rng, s: (rng.uniform(size=s) < 0.5).astype(np.float32),
  "sign": lambda rng, s: signs(rng, s),
  "positive": lambda rng, s: uniform(rng, s, 0.2, 2.0),
  "count": lambda rng, s: rng.integers(0, 6, s).astype(np.float32),
  "count1": lambda rng, s: rng.integers(1, 6, s).astype(np.float32),
  "dist": lambda rng, s: np.abs(normal(rng, s, 1.5)),
  "logprob": lambda rng, s: log_softmax(normal(rng, s), -1) if len(s) else np.float32(0.0),
  "probs": lambda rng, s: np.exp(log_softmax(normal(rng, s), -1)) if len(s) else np.float32(1.0),
}


def _class_indices(rng, shape, num_classes):
  t = np.asarray(rng.integers(0, num_classes, shape), np.int64)
  t.reshape(-1)[:1] = 0  # the first sample's class is 0: a special weight[0] matters
  return t


def _class_lists(rng, shape):
  """multilabel_margin_loss targets: each row's classes, then -1 (row 0 lists class 0)."""
  t = np.full(shape, -1, np.int64)
  rows = t.reshape(-1, shape[-1]) if len(shape) else t.reshape(1, 1)
  for i, row in enumerate(rows):
    k = min(1 + i % 3, row.size)
    row[:k] = rng.choice(row.size, k, replace=False)
    row[0] = 0 if i == 0 else row[0]
  return t


def _shape(code, form):
  """The shape of an argument of shape code "NC" (N, C), "N" (N,) or "C" (C,) in ``form``.

  'target1' is the unbatched form (``Spec.build`` makes the target (1,)); 'scalar'
  makes every array 0-d but a per-class one, which has the one class (1,).
  """
  n = {"batch": N_EDGE, "empty": 0}.get(form)
  if form == "scalar":
    return (1,) if code == "C" else ()
  if form == "target1":
    return {"NC": (C_EDGE,), "N": (), "C": (C_EDGE,)}[code]
  return {"NC": (n, C_EDGE), "N": (n,), "C": (C_EDGE,)}[code]


@dataclasses.dataclass(frozen=True)
class Spec:
  """One loss call of the edge grid (see above)."""

  name: str
  kinds: tuple  # per positional/array_kw argument: a _FLOAT_KINDS key, "class" or "lists"
  shapes: tuple  # per argument: "NC", "N" or "C" (see _shape); () for ctc_loss
  kw: dict = dataclasses.field(default_factory=dict)
  array_kw: tuple = ()
  grad: tuple = (0,)  # floating arguments torch differentiates
  target: int | None = 1
  reductions: tuple = REDUCTIONS
  tag: str = ""

  @property
  def key(self) -> str:
    opts = [f"{k}={v}" for k, v in self.kw.items()] + list(self.array_kw)
    return f"{self.name}({','.join(opts)}{';' + self.tag if self.tag else ''})"

  @property
  def floats(self) -> tuple:
    return tuple(i for i, k in enumerate(self.kinds) if k in _FLOAT_KINDS)

  @property
  def arg_names(self) -> tuple:
    """The arguments' names (torch's): the positional parameters, then ``array_kw``."""
    params = list(inspect.signature(getattr(L, self.name)).parameters)
    return tuple(params[: len(self.kinds) - len(self.array_kw)]) + self.array_kw

  def build(self, form: str) -> list:
    """The arrays of ``form`` ('batch', 'empty', 'scalar', 'target1')."""
    rng = rng_for("edge", self.key, form)
    if not self.shapes:
      return _ctc_arrays(rng, form)
    shapes = [_shape(code, form) for code in self.shapes]
    if form == "target1":
      shapes[self.target] = (1,)
    num_classes = shapes[0][-1] if shapes[0] else 1
    out = []
    for kind, shape in zip(self.kinds, shapes):
      if kind == "class":
        out.append(_class_indices(rng, shape, num_classes))
      elif kind == "lists":
        out.append(_class_lists(rng, shape))
      else:
        out.append(np.asarray(_FLOAT_KINDS[kind](rng, shape), np.float32))
    return out


def _ctc_arrays(rng, form):
  """log_probs (T, N, C), padded targets (N, S), input and target lengths (N,)."""
  T, C = 5, C_EDGE
  if form == "target1":  # unbatched: (T, C) log_probs, a target of one label
    return [log_softmax(normal(rng, (T, C)), -1), np.array([2]), np.array(T), np.array(1)]
  if form == "scalar":
    return [np.float32(-1.0), np.array(1), np.array(1), np.array(1)]
  n = N_EDGE if form == "batch" else 0
  targets = np.array([[1, 2], [3, 3], [2, 1]], np.int64)[:n]
  return [
    log_softmax(normal(rng, (T, n, C)), -1),
    targets,
    np.array([5, 4, 5])[:n],
    np.array([2, 2, 1])[:n],
  ]


_ROW_CLASS = ("logit", "class", "positive")
_NC2, _NC3, _CLASSES = ("NC",) * 2, ("NC",) * 3, ("NC", "N", "C")
EDGE_SPECS = [
  # regression
  Spec("l1_loss", ("normal", "normal", "positive"), _NC3, array_kw=("weight",), grad=(0, 1, 2)),
  Spec("mse_loss", ("normal", "normal", "positive"), _NC3, array_kw=("weight",), grad=(0, 1, 2)),
  Spec("smooth_l1_loss", ("normal", "normal"), _NC2, {"beta": 0.5}, grad=(0, 1)),
  Spec(
    "huber_loss",
    ("normal", "normal", "positive"),
    _NC3,
    {"delta": 0.5},
    array_kw=("weight",),
    grad=(0, 1, 2),
  ),
  Spec("poisson_nll_loss", ("normal", "count"), _NC2, grad=(0, 1)),
  # Counts from 1: at 0 torch's target gradient with full=True is NaN (a documented
  # difference, tests/test_losses_edges.py).
  Spec(
    "poisson_nll_loss",
    ("positive", "count1"),
    _NC2,
    {"log_input": False, "full": True},
    grad=(0, 1),
  ),
  Spec("gaussian_nll_loss", ("normal", "normal", "positive"), _NC3, {"full": True}, grad=(0, 1, 2)),
  # classification
  Spec("cross_entropy", _ROW_CLASS, _CLASSES, array_kw=("weight",)),
  Spec("cross_entropy", _ROW_CLASS, _CLASSES, {"label_smoothing": 0.1}, array_kw=("weight",)),
  Spec(
    "cross_entropy",
    ("logit", "probs", "positive"),
    ("NC", "NC", "C"),
    array_kw=("weight",),
    grad=(0, 1, 2),
    tag="probabilities",
  ),
  Spec("nll_loss", ("logprob", "class", "positive"), _CLASSES, array_kw=("weight",)),
  Spec(
    "binary_cross_entropy", ("prob", "unit", "positive"), _NC3, array_kw=("weight",), grad=(0, 1)
  ),
  Spec(
    "binary_cross_entropy_with_logits",
    ("logit", "unit", "positive", "positive"),
    ("NC", "NC", "NC", "C"),
    array_kw=("weight", "pos_weight"),
    grad=(0, 1),
  ),
  Spec("kl_div", ("logprob", "probs"), _NC2, grad=(0, 1), reductions=REDUCTIONS + ("batchmean",)),
  Spec(
    "kl_div",
    ("logprob", "logprob"),
    _NC2,
    {"log_target": True},
    grad=(0, 1),
    reductions=REDUCTIONS + ("batchmean",),
  ),
  Spec("soft_margin_loss", ("normal", "sign"), _NC2),
  Spec(
    "multilabel_soft_margin_loss",
    ("normal", "y01", "positive"),
    ("NC", "NC", "C"),
    array_kw=("weight",),
    grad=(0, 1, 2),
  ),
  Spec("multi_margin_loss", _ROW_CLASS, _CLASSES, {"margin": 0.7}, array_kw=("weight",)),
  Spec("multi_margin_loss", ("normal", "class"), _CLASSES, {"p": 2}),
  Spec("multilabel_margin_loss", ("normal", "lists"), _NC2),
  # ranking and embedding
  Spec(
    "margin_ranking_loss",
    ("normal", "normal", "sign"),
    _NC3,
    {"margin": 0.2},
    grad=(0, 1, 2),
    target=2,
  ),
  Spec("hinge_embedding_loss", ("dist", "sign"), _NC2, {"margin": 1.5}),
  Spec(
    "cosine_embedding_loss",
    ("normal", "normal", "sign"),
    ("NC", "NC", "N"),
    {"margin": 0.1},
    grad=(0, 1),
    target=2,
  ),
  Spec(
    "triplet_margin_loss",
    ("normal", "normal", "normal"),
    _NC3,
    {"swap": True},
    grad=(0, 1, 2),
    target=None,
  ),
  Spec(
    "triplet_margin_loss",
    ("normal", "normal", "normal"),
    _NC3,
    {"p": 1.0},
    grad=(0, 1, 2),
    target=None,
  ),
  Spec(
    "triplet_margin_with_distance_loss",
    ("normal", "normal", "normal"),
    _NC3,
    grad=(0, 1, 2),
    target=None,
  ),
  Spec(
    "pairwise_distance", ("normal", "normal"), _NC2, grad=(0, 1), target=None, reductions=(None,)
  ),
  Spec(
    "pairwise_distance",
    ("normal", "normal"),
    _NC2,
    {"p": 0.5},
    grad=(0, 1),
    target=None,
    reductions=(None,),
  ),
  Spec("ctc_loss", ("logprob", "ctc_targets", "lengths", "lengths"), ()),
]


# The integer and boolean dtypes tried for a target: torch's integer type for a
# floating target, the other integer types torch takes for class indices (int64 is
# their batch form; JAX's own int32 is not a class, see test_losses_grid.py), and bool.
def _target_dtypes(spec):
  if spec.target in spec.floats:
    return ("int64", "bool")
  return ("int32", "uint8", "bool") if spec.name == "ctc_loss" else ("uint8", "bool")


def _as_target_dtype(t, dtype):
  if dtype == "bool":
    return np.asarray(t) > 0
  return np.round(t).astype(dtype) if np.issubdtype(t.dtype, np.floating) else t.astype(dtype)


@dataclasses.dataclass
class EdgeCase:
  """One class of one Spec: its arrays, and ``dtypes`` (one per argument, None: as
  built) applied on each side (numpy has no bfloat16 that torch reads). It runs for
  every reduction of the spec."""

  spec: Spec
  cls: str
  args: list
  dtypes: tuple
  grad: tuple  # the floating arguments torch differentiates

  @property
  def name(self) -> str:
    return self.spec.name

  @property
  def id(self) -> str:
    return f"{self.spec.key}[{self.cls}]"

  def call(self, module, reduction) -> Callable:
    """``module.<name>`` as a function of the arrays, with the spec's options and
    ``reduction`` (None: the function has none)."""
    n_pos = len(self.args) - len(self.spec.array_kw)
    fn = getattr(module, self.spec.name)
    kw = {**self.spec.kw, **({} if reduction is None else {"reduction": reduction})}

    def call(*a):
      return fn(*a[:n_pos], **dict(zip(self.spec.array_kw, a[n_pos:])), **kw)

    return call


def edge_cases():
  """Every class of every EDGE_SPECS loss (each runs for all the loss's reductions)."""
  cases = []
  for spec in EDGE_SPECS:
    names, base = spec.arg_names, spec.build("batch")

    def add(cls, args, dtypes=None, spec=spec):
      dtypes = tuple(dtypes or (None,) * len(args))
      floating = [i for i in spec.floats if np.issubdtype(args[i].dtype, np.floating)]
      cases.append(EdgeCase(spec, cls, args, dtypes, tuple(i for i in spec.grad if i in floating)))

    for i in spec.floats:
      for label, value in SPECIAL_VALUES.items():
        args = [np.array(a) for a in base]
        args[i].reshape(-1)[0] = value
        add(f"{label}@{names[i]}", args)
    for form in EDGE_FORMS[1:] if spec.target is not None else EDGE_FORMS[1:3]:
      add(form, spec.build(form))
    if spec.target is not None:
      for dtype in _target_dtypes(spec):
        args = list(base)
        args[spec.target] = _as_target_dtype(base[spec.target], dtype)
        add(f"target:{dtype}", args)
    for dtype in HALF_DTYPES + ("float64",):
      add(dtype, base, [dtype if i in spec.floats else None for i in range(len(base))])
    if len(spec.floats) > 1:
      for i in spec.floats:
        add(f"float16@{names[i]}", base, ["float16" if j == i else None for j in range(len(base))])
  return cases
