"""Every loss over whole classes of input against torch 2.13.0: special values, empty
batches, 0-d and (1,)-target forms, integer and boolean targets, every float dtype.

The cases come from one spec per loss call (tests/loss_cases.py, EDGE_SPECS and
edge_cases(): 29 calls of the 22 functions of jaxtrain.losses, 491 classes of them,
1,453 cases with their reductions). For each reduction, torch 2.13.0
``torch.nn.functional.<name>`` is called on the same arrays first:

* where it raises (176 cases), jaxtrain must raise ``ValueError``/``TypeError`` with
  the message listed in ``REJECTED``, which must list every class torch rejects and
  no other;
* elsewhere (1,277 cases) jaxtrain's value, its dtype, and its gradient with respect
  to every floating argument torch differentiates (a random cotangent for unreduced
  results) must be torch's: NaN where torch's is NaN, infinities of the same sign.

Exceptions, each listed with its reason below and checked as what it is:
``BACKWARD_RAISES`` (torch's forward computes, its backward raises: the gradient is
torch's on the same numbers in the form its backward takes), ``CPU_HALF_GAPS``
(torch's CPU kernel has no half version: torch in float32 on the same rounded
inputs), ``DEVIATIONS`` and ``EMPTY_UNINITIALISED`` (the differences the README
documents).

Tolerances, by the narrowest floating dtype among the inputs: float32 rtol 1e-5 and
atol 1e-6 x scale (tests/oracle.py); float64 rtol 1e-12, atol 1e-12 x scale; float16
2e-3 and bfloat16 2e-2 for both (a few units in the last place: torch rounds its
intermediates to the half type, jaxtrain computes in float32 and rounds once).
"""

from __future__ import annotations

import contextlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from loss_cases import by_id, edge_cases
from oracle import assert_close

import jaxtrain.losses as L

CASES = edge_cases()

TOLERANCE = {"float64": 1e-12, "float32": None, "float16": 2e-3, "bfloat16": 2e-2}
_NARROWEST = ("bfloat16", "float16", "float32", "float64")

# Where torch 2.13.0 raises: (spec key, class) -> the start of jaxtrain's message, which
# must name the loss and the argument.
_BOOL_TARGET = "{}: target must be a floating-point array, got dtype bool"
_INT_TARGET = "{}: target must be a floating-point array, got dtype int"
_WEIGHT_DTYPE = "{}: weight dtype {} must equal input dtype {}"
_OUTSIDE_01 = "binary_cross_entropy: all elements of {} must be between 0 and 1"
REJECTED: dict[tuple[str, str], str] = {
  # torch subtracts or negates a boolean target (RuntimeError "Subtraction, the `-`
  # operator, with a bool tensor is not supported").
  **{
    (key, "target:bool"): _BOOL_TARGET.format(key.split("(")[0])
    for key in (
      "l1_loss(weight)",
      "mse_loss(weight)",
      "poisson_nll_loss(log_input=False,full=True)",
      "gaussian_nll_loss(full=True)",
      "binary_cross_entropy(weight)",
      "binary_cross_entropy_with_logits(weight,pos_weight)",
      "kl_div()",
      "kl_div(log_target=True)",
      "multilabel_soft_margin_loss(weight)",
      "margin_ranking_loss(margin=0.2)",
      "cross_entropy(weight;probabilities)",
    )
  },
  # Integer targets where torch's kernel takes only floating ones.
  **{
    (key, "target:int64"): _INT_TARGET.format(key.split("(")[0])
    for key in (
      "binary_cross_entropy(weight)",
      "binary_cross_entropy_with_logits(weight,pos_weight)",
      "kl_div()",
      "kl_div(log_target=True)",
      "cross_entropy(weight;probabilities)",
    )
  },
  # Class indices: torch takes int64 (and uint8 for nll_loss/cross_entropy without
  # label smoothing), never bool.
  **{
    (key, "target:bool"): key.split("(")[0] + ": target must hold integer class indices"
    for key in (
      "cross_entropy(label_smoothing=0.1,weight)",
      "cross_entropy(weight)",
      "nll_loss(weight)",
      "multi_margin_loss(margin=0.7,weight)",
      "multi_margin_loss(p=2)",
      "multilabel_margin_loss()",
    )
  },
  **{
    (key, "target:uint8"): key.split("(")[0] + ": target must hold class indices of dtype int32 "
    "or int64, got dtype uint8"
    for key in (
      "multi_margin_loss(margin=0.7,weight)",
      "multi_margin_loss(p=2)",
      "multilabel_margin_loss()",
    )
  },
  (
    "cross_entropy(label_smoothing=0.1,weight)",
    "target:uint8",
    "mean",
  ): "cross_entropy: a uint8 target is not supported with label_smoothing",
  # A class weight of another dtype than the input's.
  **{
    (key, cls): _WEIGHT_DTYPE.format(key.split("(")[0], *dtypes)
    for key in (
      "cross_entropy(label_smoothing=0.1,weight)",
      "cross_entropy(weight)",
      "nll_loss(weight)",
      "multi_margin_loss(margin=0.7,weight)",
    )
    for cls, dtypes in (
      ("float16@input", ("float32", "float16")),
      ("float16@weight", ("float16", "float32")),
    )
  },
  # binary_cross_entropy: input and target of one dtype, both in [0, 1] (NaN is not).
  (
    "binary_cross_entropy(weight)",
    "float16@input",
  ): "binary_cross_entropy: target dtype float32 must equal input dtype float16",
  (
    "binary_cross_entropy(weight)",
    "float16@target",
  ): "binary_cross_entropy: target dtype float16 must equal input dtype float32",
  **{
    ("binary_cross_entropy(weight)", f"{v}@{arg}"): _OUTSIDE_01.format(arg)
    for v in ("nan", "inf", "-inf")
    for arg in ("input", "target")
  },
  ("gaussian_nll_loss(full=True)", "-inf@var"): "gaussian_nll_loss: var has negative entry",
  # 0-d inputs.
  # (torch takes a 0-d input and target for class probabilities, then rejects the
  # integer target; jaxtrain names the first problem, the input.)
  (
    "cross_entropy(label_smoothing=0.1,weight)",
    "scalar",
  ): "cross_entropy: input must have at least 1 dimension",
  ("cross_entropy(weight)", "scalar"): "cross_entropy: input must have at least 1 dimension",
  (
    "cross_entropy(weight;probabilities)",
    "scalar",
  ): "cross_entropy: input must have at least 1 dimension",
  ("nll_loss(weight)", "scalar"): "nll_loss: input must have at least 1 dimension",
  (
    "multilabel_soft_margin_loss(weight)",
    "scalar",
  ): "multilabel_soft_margin_loss: input must have at least 1 dimension",
  (
    "binary_cross_entropy_with_logits(weight,pos_weight)",
    "scalar",
  ): "binary_cross_entropy_with_logits: pos_weight shape (1,) must broadcast to input shape ()",
  (
    "cosine_embedding_loss(margin=0.1)",
    "scalar",
  ): "cosine_embedding_loss: a 0-D target expects 1-D input1 and input2",
  ("ctc_loss()", "scalar"): "ctc_loss: log_probs must be 3-D",
  # (1,) targets.
  (
    "cross_entropy(label_smoothing=0.1,weight)",
    "target1",
  ): "cross_entropy: a target of shape (1,) for unbatched input",
  ("cross_entropy(weight;probabilities)", "target1"):  # torch: class indices, not floats
  "cross_entropy: target must hold integer class indices, got dtype float32",
  (
    "binary_cross_entropy(weight)",
    "target1",
  ): "binary_cross_entropy: target shape (1,) must equal input shape (4,)",
  (
    "binary_cross_entropy_with_logits(weight,pos_weight)",
    "target1",
  ): "binary_cross_entropy_with_logits: target size (1,) must be the same as input size (4,)",
  (
    "multilabel_margin_loss()",
    "target1",
  ): "multilabel_margin_loss: target shape (1,) must equal input shape (4,)",
  (
    "cosine_embedding_loss(margin=0.1)",
    "target1",
  ): "cosine_embedding_loss: a 1-D target expects 2-D input1 and input2",
  # Empty batches.
  ("ctc_loss()", "empty"): "ctc_loss: log_probs must not be empty",
}

# Where torch's forward computes but its backward raises: the gradient is compared with
# torch's on the same numbers in the form its backward takes (every floating argument
# and the target in the result's dtype, a (1,) target as 0-d).
BACKWARD_RAISES = {
  **{
    ("huber_loss(delta=0.5,weight)", cls): "huber_loss_backward requires the input's dtype "
    "for the target (its forward promotes)"
    for cls in ("target:int64", "target:bool", "float16@input", "float16@target")
  },
  ("soft_margin_loss()", "target:bool"): "soft_margin_loss_backward negates the target",
  **{
    (key, "target1"): "nll_loss_backward rejects the (1,) target of a (C,) input that its "
    "forward reads as 0-d"
    for key in ("nll_loss(weight)", "cross_entropy(weight)")
  },
}

# torch's CPU kernels without half-precision versions (its CUDA ones have them and
# return the input's dtype): compared with torch in float32 on the same rounded inputs.
CPU_HALF_GAPS = ("multi_margin_loss", "multilabel_margin_loss", "ctc_loss")
REJECTED[("multi_margin_loss(margin=0.7,weight)", "float16@input")] = (
  # torch's CPU kernel has no float16 version; its kernels take no weight of another
  # dtype (float16@weight above), so jaxtrain rejects this mix too.
  _WEIGHT_DTYPE.format("multi_margin_loss", "float32", "float16")
)

# Documented differences (README, "Where jaxtrain deliberately differs"): (spec key,
# class) -> (the argument whose gradient differs at the special entry, reason). There
# torch's gradient must be NaN and jaxtrain's not; every other entry is compared.
DEVIATIONS = {
  ("soft_margin_loss()", "-inf@input"): (
    "input",
    "torch's log1p(exp(-y x)) overflows: its gradient is inf/inf = NaN, "
    "jaxtrain's softplus gives the derivative's limit",
  ),
  ("soft_margin_loss()", "-inf@target"): ("input", "as -inf@input: -y x = +inf"),
  ("poisson_nll_loss(log_input=False,full=True)", "-inf@target"): (
    "target",
    "torch differentiates its masked Stirling term at a count <= 0 (NaN); "
    "jaxtrain gives the derivative of the loss it computes",
  ),
}
# torch 2.13.0's CPU multi_margin_loss and multilabel_margin_loss return uninitialised
# memory for 'mean' and 'sum' of an empty batch (a different number each call);
# jaxtrain returns the mean of nothing, NaN, and the sum of nothing, 0, as every other
# loss does.
EMPTY_UNINITIALISED = ("multi_margin_loss", "multilabel_margin_loss")


HALF = ("float16", "bfloat16")


def _jax_array(a, dtype):
  return jnp.asarray(a) if dtype is None else jnp.asarray(np.asarray(a), jnp.dtype(dtype))


def _torch_array(a, dtype):
  t = torch.from_numpy(np.array(a))
  return t if dtype is None else t.to(getattr(torch, dtype))


def _narrowest(case) -> str:
  """The narrowest floating dtype among the case's inputs (its tolerance)."""
  used = {d for d in case.dtypes if d and "float" in d}
  if any(d is None for i, d in enumerate(case.dtypes) if i in case.spec.floats):
    used.add("float32")
  return min(used or {"float32"}, key=_NARROWEST.index)


class TorchBackwardError(Exception):
  """torch computed the value but raised in its backward pass."""


def _torch_side(case, reduction, args, dtypes, grad):
  """torch's ``(value, gradients, cotangent)``; raises what torch raises
  (TorchBackwardError where only its backward pass does)."""
  targs = [_torch_array(a, d) for a, d in zip(args, dtypes)]
  for i in grad:
    targs[i].requires_grad_(True)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    out = case.call(F, reduction)(*targs)
  rng = np.random.default_rng(0)
  cot = torch.from_numpy(rng.standard_normal(out.shape).astype(np.float32)).to(out.dtype)
  if out.ndim == 0:
    cot = torch.ones((), dtype=out.dtype)
  grads = []
  if grad:
    try:
      grads = torch.autograd.grad((out * cot).sum(), [targs[i] for i in grad], allow_unused=True)
    except RuntimeError as e:
      raise TorchBackwardError(str(e)) from e
  grads = [
    np.zeros(np.shape(args[i])) if g is None else g.double().numpy() for i, g in zip(grad, grads)
  ]
  return out, grads, cot.double().numpy()


def _torch_reference(case, reduction):
  """torch's value, gradients and cotangent for ``case``; raises what its value raises.

  Returns ``(out, grads, cot, grad)``, ``grad`` the argument indices compared: the
  case's, less any torch does not differentiate (it says which: e.g. ``weight`` of
  ``nll_loss``). Where only torch's backward raises (BACKWARD_RAISES), the gradients
  are torch's on the same numbers in the form its backward takes; where its CPU kernel
  has no half version (CPU_HALF_GAPS), value and gradients are torch's in float32 on
  the same rounded inputs, the value in the half dtype.
  """
  grad = case.grad
  while True:
    try:
      return (*_torch_side(case, reduction, case.args, case.dtypes, grad), grad)
    except TorchBackwardError:
      assert (case.spec.key, case.cls) in BACKWARD_RAISES, "torch's backward raises: list it"
      out, _, _ = _torch_side(case, reduction, case.args, case.dtypes, ())
      result = str(out.dtype).removeprefix("torch.")
      args, dtypes = list(case.args), list(case.dtypes)
      for i in range(len(args)):
        if i in case.spec.floats:  # a floating target too, here integer or boolean
          dtypes[i] = result
      if case.cls == "target1":
        args[case.spec.target] = np.reshape(args[case.spec.target], ())
      _, grads, cot = _torch_side(case, reduction, args, dtypes, grad)
      return out, grads, cot, grad
    except NotImplementedError as e:
      assert case.name in CPU_HALF_GAPS, str(e)
      if (case.spec.key, case.cls) in REJECTED:  # rejected on dtypes, CUDA kernel or not
        raise RuntimeError(str(e)) from e
      args = [
        np.asarray(_torch_array(a, d).float()) if d in HALF else a
        for a, d in zip(case.args, case.dtypes)
      ]
      dtypes = [None if d in HALF else d for d in case.dtypes]
      out, grads, cot = _torch_side(case, reduction, args, dtypes, grad)
      return out.to(getattr(torch, _narrowest(case))), grads, cot, grad
    except RuntimeError as e:
      if "not differentiable with respect to argument" not in str(e):
        raise
      name = str(e).split("argument '")[1].split("'")[0]
      grad = tuple(i for i in grad if case.spec.arg_names[i] != name)


_COMPILED = {}


def _values_and_vjps(case, reductions, grad, jit=True):
  """``jit(args, cotangents) -> [(value, vjp) per reduction]``: one XLA program for all
  the reductions, one per loss call and gradient set (jit compiles it again only for
  new shapes and dtypes)."""
  key = (case.spec.key, reductions, grad, jit)
  if key not in _COMPILED:
    fns = [case.call(L, r) for r in reductions]

    def values_and_vjps(args, cots):
      results = []
      for fn, cot in zip(fns, cots):

        def f(*diff, fn=fn):
          full = list(args)
          for i, d in zip(grad, diff):
            full[i] = d
          return fn(*full)

        out, pullback = jax.vjp(f, *[args[i] for i in grad])
        results.append((out, pullback(cot.astype(out.dtype))))
      return results

    _COMPILED[key] = jax.jit(values_and_vjps) if jit else values_and_vjps
  return _COMPILED[key]


def _x64(case):
  return jax.enable_x64(True) if "float64" in case.dtypes else contextlib.nullcontext()


def _jax_args(case):
  return [_jax_array(a, d) for a, d in zip(case.args, case.dtypes)]


# Value and gradients run under jax.jit (one program for all reductions, reused by
# the nine special-value classes of a spec) for the classes that change values or
# shapes, and float64. The target-dtype and half-precision classes run op by op (an
# eager jax.vjp): a jit program would serve one case, while the compiled primitives
# of an eager call are shared by every loss of the same shapes and dtypes (the grid
# took 94 s on one core all under jit, 60 s so).
_JIT_CLASSES = ("nan@", "inf@", "-inf@", "empty", "scalar", "target1", "float64")
# Eager (concrete) calls also, whose value checks (binary_cross_entropy's range,
# gaussian_nll_loss's variances) jit cannot run, for the classes that change values.
_EAGER_CLASSES = ("nan@", "inf@", "-inf@", "empty")


@pytest.mark.parametrize("case", **by_id(CASES))
def test_edge_class_matches_torch(case):
  key = (case.spec.key, case.cls)
  accepted, references = [], []
  for reduction in case.spec.reductions:
    rejected = REJECTED.get(key, REJECTED.get(key + (reduction,)))
    try:
      references.append(_torch_reference(case, reduction))
      accepted.append(reduction)
    except (RuntimeError, ValueError, IndexError, TypeError) as e:
      assert rejected is not None, f"torch 2.13.0 raises {type(e).__name__}: {e} ({reduction})"
      with _x64(case), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises((ValueError, TypeError)) as raised:
          case.call(L, reduction)(*_jax_args(case))
      assert str(raised.value).startswith(rejected), str(raised.value)
      continue
    assert rejected is None, f"torch 2.13.0 accepts this class ({reduction}); unlist it"
  if not accepted:
    return
  grads = {r[3] for r in references}
  assert len(grads) == 1, grads
  grad = grads.pop()
  tol = TOLERANCE[_narrowest(case)]
  rtol, atol = (1e-5, 1e-6) if tol is None else (tol, tol)
  cot_dtype = jnp.float64 if "float64" in case.dtypes else jnp.float32
  with _x64(case), warnings.catch_warnings():
    warnings.simplefilter("ignore")
    jargs = _jax_args(case)
    cots = [jnp.asarray(ref[2], cot_dtype) for ref in references]
    eager = [None] * len(accepted)
    if case.cls.startswith(_JIT_CLASSES) or case.name == "ctc_loss":  # an eager scan: slow
      results = _values_and_vjps(case, tuple(accepted), grad)(jargs, cots)
      if case.cls.startswith(_EAGER_CLASSES):  # the checks do not depend on the reduction
        eager[0] = case.call(L, accepted[0])(*jargs)
    else:
      results = _values_and_vjps(case, tuple(accepted), grad, jit=False)(jargs, cots)
  deviation = DEVIATIONS.get(key)
  for reduction, (t_out, t_grads, _, _), (j_out, j_grads), e_out in zip(
    accepted, references, results, eager
  ):
    what = f"({reduction})"
    expected_dtype = str(t_out.dtype).removeprefix("torch.")
    assert str(j_out.dtype) == expected_dtype, f"{what} dtype {j_out.dtype}, torch {t_out.dtype}"
    t_value = t_out.detach().double().numpy()
    if case.name in EMPTY_UNINITIALISED and case.cls == "empty" and t_value.ndim == 0:
      t_value = np.array(np.nan if reduction == "mean" else 0.0)
    assert_close(np.asarray(j_out, np.float64), t_value, rtol=rtol, atol=atol, what=f"value {what}")
    if e_out is not None:
      assert_close(
        np.asarray(e_out, np.float64), t_value, rtol=rtol, atol=atol, what=f"eager value {what}"
      )
    for i, jg, tg in zip(grad, j_grads, t_grads):
      name = case.spec.arg_names[i]
      assert str(jg.dtype) == str(jargs[i].dtype), f"gradient wrt {name}: dtype {jg.dtype}"
      jg = np.asarray(jg, np.float64)
      if deviation and deviation[0] == name:  # the documented difference, at the special entry
        assert np.isnan(tg.flat[0]) and not np.isnan(jg.flat[0]), (tg.flat[0], jg.flat[0])
        tg, jg = tg.reshape(-1)[1:], jg.reshape(-1)[1:]
      assert_close(jg, tg, rtol=rtol, atol=atol, what=f"gradient wrt {name} {what}")


def test_every_loss_has_an_edge_spec():
  # Every public function of jaxtrain.losses (22, pairwise_distance and ctc_loss included).
  names = {n for n in dir(L) if not n.startswith("_") and callable(getattr(L, n))}
  specs = {case.spec.name for case in CASES}
  assert len(names) == 22 and names == specs, names ^ specs
