"""Every loss under jax.vmap and in bfloat16/float16, against torch 2.13.0.

(jax.jit and jax.vjp are exercised by every parity test through oracle.compare_with_torch.)
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from loss_cases import classification_cases, ranking_cases, regression_cases
from oracle import assert_close, to_torch


def _representatives():
  """One 'mean' case per loss, with its array options (weight, ...) if it has any."""
  chosen = {}
  for case in regression_cases() + classification_cases() + ranking_cases():
    if case.kw.get("reduction") != "mean":
      continue
    best = chosen.get(case.name)
    if best is None or len(case.array_kw) > len(best.array_kw):
      chosen[case.name] = case
  return list(chosen.values())


CASES = _representatives()
IDS = [c.name for c in CASES]


def test_every_loss_is_represented():
  import jaxtrain.losses as L

  names = {n for n in dir(L) if n.endswith("_loss") or n in ("cross_entropy", "kl_div")}
  names.discard("ctc_loss")  # tested in test_losses_sequence.py
  assert names <= set(IDS), names - set(IDS)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vmap_equals_per_example_calls(case):
  batch = 3

  def perturb(a):
    # Shrinking keeps probabilities in [0, 1] and variances positive.
    if np.issubdtype(np.asarray(a).dtype, np.floating):
      return np.stack([a * (1 - 0.1 * i) for i in range(batch)])
    return np.stack([a] * batch)

  stacked = [perturb(a) for a in case.args]
  vmapped = jax.vmap(case.jax_fn)(*map(jnp.asarray, stacked))
  looped = np.stack([np.asarray(case.jax_fn(*[s[i] for s in stacked])) for i in range(batch)])
  np.testing.assert_allclose(vmapped, looped, rtol=1e-6, atol=1e-6)


# Half precision: the value within a few units of the last place of the half type,
# relative to torch computing in that type (torch rounds intermediates; jaxtrain
# computes in float32 and rounds once).
HALF_RTOL = {"bfloat16": 2e-2, "float16": 2e-3}


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_half_precision_dtype_and_value(case, dtype):
  jdt, tdt = jnp.dtype(dtype), getattr(torch, dtype)

  def cast(a):
    a = np.asarray(a)
    return jnp.asarray(a, jdt) if np.issubdtype(a.dtype, np.floating) else jnp.asarray(a)

  jargs = [cast(a) for a in case.args]
  value = case.jax_fn(*jargs)
  # Integer targets go to torch as the int64 they were made as.
  targs = [
    to_torch(np.asarray(j, np.float32)).to(tdt)
    if jnp.issubdtype(j.dtype, jnp.floating)
    else to_torch(a)
    for j, a in zip(jargs, case.args)
  ]
  try:
    expected = case.torch_fn(*targs)
    assert expected.dtype == tdt
  except NotImplementedError:
    # torch's CPU kernels of multi_margin_loss and multilabel_margin_loss have no
    # half versions (its CUDA ones do, returning the input dtype): compare with
    # torch in float32 on the same half-rounded inputs.
    assert case.name in ("multi_margin_loss", "multilabel_margin_loss"), case.name
    expected = case.torch_fn(*[t.float() if t.is_floating_point() else t for t in targs])
  assert value.dtype == jdt, f"result dtype {value.dtype}, input dtype {dtype}"
  assert_close(
    value.astype(jnp.float32),
    expected.float().numpy(),
    rtol=HALF_RTOL[dtype],
    atol=HALF_RTOL[dtype],
    what=dtype,
  )
  grads = jax.grad(lambda *a: case.jax_fn(*a).astype(jnp.float32))(*jargs)
  assert grads.dtype == jdt


# Second derivatives. cross_entropy's log-sum-exp has its own JVP rule
# (jaxtrain/losses/_softmax.py) and the pointwise regression losses recompute their
# difference in the gradient (jax.checkpoint): forward-over-reverse, a Hessian-vector
# product, must still be torch's double backward.
HVP_NAMES = ("cross_entropy", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss")
HVP_CASES = [c for c in CASES if c.name in HVP_NAMES]


def test_hvp_cases_cover_the_rewritten_losses():
  assert sorted(c.name for c in HVP_CASES) == sorted(HVP_NAMES)


@pytest.mark.parametrize("case", HVP_CASES, ids=[c.name for c in HVP_CASES])
def test_hessian_vector_product_matches_torch_double_backward(case):
  args = [jnp.asarray(a) for a in case.args]
  v = np.random.default_rng(7).standard_normal(np.shape(case.args[0])).astype(np.float32)

  def grad0(x):
    return jax.grad(lambda x: case.jax_fn(x, *args[1:]))(x)

  _, hvp = jax.jvp(grad0, (args[0],), (jnp.asarray(v),))
  targs = [to_torch(a) for a in case.args]
  targs[0].requires_grad_(True)
  (g,) = torch.autograd.grad(case.torch_fn(*targs), targs[0], create_graph=True)
  (expected,) = torch.autograd.grad((g * torch.from_numpy(v)).sum(), targs[0])
  # l1_loss: torch returns its lazy ZeroTensor, which numpy() converts only by force.
  assert_close(hvp, expected.numpy(force=True), what=f"{case.name} Hessian-vector product")


# Memory of value and gradient together. The gradient recomputes what it needs from
# the inputs instead of XLA keeping an input-sized intermediate (exp(x - max) for
# cross_entropy, x - y and its sign for l1_loss) from the forward pass: the compiled
# program's temporary buffers stay far below one input-sized array (409,600 / 524,288
# bytes), where before these changes they held one (cross_entropy: 434,176 bytes) or
# two (l1_loss: 1,048,576). (mse_loss needed none before either: XLA wrote x - y into
# the gradient's output buffer, so it is not a case here.)
@pytest.mark.parametrize(
  "name,shape,kw",
  [
    ("cross_entropy", (1024, 100), {}),
    ("cross_entropy", (1024, 100), {"label_smoothing": 0.1, "weight": np.ones(100, np.float32)}),
    ("l1_loss", (1024, 128), {}),
  ],
)
def test_value_and_gradient_keep_no_input_sized_temporary(name, shape, kw):
  import jaxtrain.losses as L

  x = jnp.ones(shape)
  y = jnp.zeros(shape[0], jnp.int32) if name == "cross_entropy" else jnp.ones(shape)
  fn = jax.value_and_grad(lambda x, y: getattr(L, name)(x, y, **kw))
  temp = jax.jit(fn).lower(x, y).compile().memory_analysis().temp_size_in_bytes
  assert temp < x.size * 4 // 8, (
    f"{name}: {temp} bytes of temporaries for a {x.size * 4}-byte input"
  )


def test_concrete_calls_take_the_plain_path_with_the_same_numbers():
  """Outside transforms the losses skip their custom JVP rules and checkpoints
  (``_checks.plain_when_concrete``): the same values as under ``jit``, which takes them."""
  import jaxtrain.losses as L
  from jaxtrain.losses._checks import plain_when_concrete

  calls = []
  rule = plain_when_concrete(
    lambda x: calls.append("rule") or x, lambda x: calls.append("plain") or x
  )
  rule(jnp.ones(2))
  jax.jit(rule)(jnp.ones(2))
  assert calls == ["plain", "rule"]

  rng = np.random.default_rng(3)
  x, y = (jnp.asarray(rng.standard_normal((8, 5)).astype(np.float32)) for _ in range(2))
  t = jnp.asarray(rng.integers(0, 5, 8))
  for fn, args in [
    (L.cross_entropy, (x, t)),
    (L.huber_loss, (x, y)),
    (L.l1_loss, (x, y)),
    (L.binary_cross_entropy_with_logits, (x, jax.nn.sigmoid(y))),
    (L.soft_margin_loss, (x, jnp.sign(y))),
  ]:
    np.testing.assert_allclose(fn(*args), jax.jit(fn)(*args), rtol=1e-6, err_msg=fn.__name__)
