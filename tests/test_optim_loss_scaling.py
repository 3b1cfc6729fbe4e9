"""jaxtrain.optim.grad_scaler against torch 2.13.0's torch.amp.GradScaler (on CPU tensors).

Reference: ``torch.amp.GradScaler("cpu", init_scale, growth_factor, backoff_factor,
growth_interval)`` with ``scaler.scale(loss)``, ``scaler.step(opt)``,
``scaler.update()`` and then ``scheduler.step()`` every iteration (torch's AMP
recipe), around ``torch.optim.SGD`` / ``Adam`` / ``AdamW`` / ``Adagrad`` /
``RMSprop``, with a constant lr and with ``StepLR`` stepped every batch.

Protocol: every iteration both sides get the gradient ``g_k * scale``, with
``g_k`` a fixed float32 gradient (the same on both sides; inf or NaN in one or
several leaves at some iterations) and ``scale`` each side's own current scale
(torch's ``scaler.scale(ones)``, jaxtrain's ``loss_scale(state)``): the float32
product is the same IEEE operation on both sides. The jaxtrain side runs all
iterations in one ``lax.scan`` under ``jax.jit`` and returns its state after
every iteration. ``growth_interval=3`` so that the scale both grows and backs off
within 24 iterations.

Tolerances: the scale, the growth tracker, the skipped flag and the optimizers'
step counts must be EQUAL (torch's scale arithmetic is exact here: powers of two
times 2 or 0.5); on skipped iterations jaxtrain's parameters must equal its
previous ones bit for bit. Parameters and optimizer moments after every
iteration: float32 tolerance, ``rtol=1e-5`` and ``atol=1e-6 * max(1, max|x|)``
(``oracle.assert_close``), as the optimizers' own parity tests.
"""

from __future__ import annotations

import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from oracle import assert_close

from jaxtrain import optim
from jaxtrain.optim import _transforms
from jaxtrain.optim.loss_scaling import GradScalerState

ITERATIONS = 24
SHAPES = {"w": (3, 4), "b": (4,), "c": (2,)}
INF, NAN = float("inf"), float("nan")

# iteration -> {leaf: [(flat index, value)]}: the iterations whose gradient holds
# inf or NaN. With growth_interval=3: a skip at the first iteration (before any
# optimizer state exists), growth after 3 good iterations, a single NaN, several
# leaves at once (inf, -inf and NaN), a single element, two skips in a row.
POISON = {
  0: {"w": [(0, INF)]},
  4: {"b": [(2, NAN)]},
  7: {"w": [(5, -INF)], "b": [(0, NAN)], "c": [(1, INF)]},
  15: {"c": [(0, NAN)]},
  16: {"w": [(11, INF)]},
  20: {"b": [(3, -INF)], "c": [(0, INF), (1, NAN)]},
}


def gradients(seed=0):
  """Per iteration, per leaf: a float32 gradient, poisoned as POISON says."""
  rng = np.random.default_rng(seed)
  out = []
  for k in range(ITERATIONS):
    g = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in SHAPES.items()}
    for name, entries in POISON.get(k, {}).items():
      for index, value in entries:
        g[name].reshape(-1)[index] = value
    out.append(g)
  return out


def initial_params(seed=1):
  rng = np.random.default_rng(seed)
  return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in SHAPES.items()}


TORCH_OPTIMIZERS = {
  "sgd": torch.optim.SGD,
  "adam": torch.optim.Adam,
  "adamw": torch.optim.AdamW,
  "adagrad": torch.optim.Adagrad,
  "rmsprop": torch.optim.RMSprop,
}

CONFIGS = [
  ("sgd", dict(lr=0.1, momentum=0.9)),
  ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01)),
  ("adam", dict(lr=0.05)),
  ("adamw", dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
  ("adagrad", dict(lr=0.1, lr_decay=0.05)),
  ("rmsprop", dict(lr=0.01, momentum=0.5, centered=True)),
]
STEP_LR = dict(step_size=2, gamma=0.7)  # stepped every batch: a new lr every other iteration

# torch's per-parameter state key -> (jaxtrain state classes, field) holding the same.
MOMENTS = {
  "sgd": {"momentum_buffer": ((optax.TraceState, _transforms.TraceWithDampeningState), "trace")},
  "adam": {
    "exp_avg": ((_transforms.ScaleByTorchAdamState,), "mu"),
    "exp_avg_sq": ((_transforms.ScaleByTorchAdamState,), "nu"),
    "step": ((_transforms.ScaleByTorchAdamState,), "count"),
  },
  "adagrad": {
    "sum": ((_transforms.ScaleByTorchAdagradState,), "sum_of_squares"),
    "step": ((_transforms.ScaleByInverseTimeDecayState,), "count"),
  },
  "rmsprop": {
    "square_avg": ((optax.ScaleByRStdDevState,), "nu"),
    "grad_avg": ((optax.ScaleByRStdDevState,), "mu"),
    "momentum_buffer": ((optax.TraceState,), "trace"),
  },
}
MOMENTS["adamw"] = dict(
  MOMENTS["adam"], max_exp_avg_sq=((_transforms.ScaleByTorchAdamState,), "nu_max")
)


def find_field(state, classes, field):
  nodes = [
    x
    for x in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, classes))
    if isinstance(x, classes)
  ]
  assert len(nodes) == 1, (classes, nodes)
  return getattr(nodes[0], field)


def _numpy_or_none(tensor):
  return None if tensor is None else tensor.detach().numpy().copy()


def run_torch(name, kwargs, schedule, grads, scaler_kwargs, accumulate=1):
  """torch's AMP loop; the record of every iteration (after scaler.update())."""
  params = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in initial_params().items()}
  opt = TORCH_OPTIMIZERS[name](list(params.values()), **kwargs)
  scheduler = torch.optim.lr_scheduler.StepLR(opt, **STEP_LR) if schedule else None
  scaler = torch.amp.GradScaler("cpu", **scaler_kwargs)
  records = []
  for k in range(0, len(grads), accumulate):
    for p in params.values():
      p.grad = None
    for micro in range(accumulate):
      scale = scaler.scale(torch.ones(()))  # what the loss is multiplied by
      for leaf, p in params.items():
        # The gradient of (loss / accumulate) * scale, summed over micro-batches.
        g = torch.from_numpy(grads[k + micro][leaf]) * scale / accumulate
        p.grad = g if p.grad is None else p.grad + g
    scaler.step(opt)
    found = sum(
      v.item() for v in scaler._per_optimizer_states[id(opt)]["found_inf_per_device"].values()
    )
    scaler.update()
    if scheduler is not None:
      with warnings.catch_warnings():
        # "Detected call of lr_scheduler.step() before optimizer.step()": the
        # first step was skipped, as the recipe allows.
        warnings.simplefilter("ignore", UserWarning)
        scheduler.step()
    moments = {
      key: {leaf: _numpy_or_none(opt.state[p].get(key)) for leaf, p in params.items()}
      for key in MOMENTS[name]
    }
    records.append(
      dict(
        scale=np.float32(scaler.get_scale()),
        growth_tracker=int(scaler._growth_tracker.item()),
        found_inf=int(found),
        params={leaf: p.detach().numpy().copy() for leaf, p in params.items()},
        moments=moments,
      )
    )
  return records


def jax_optimizer(name, kwargs, schedule):
  kwargs = dict(kwargs)
  if schedule:
    kwargs["lr"] = optim.step_lr(kwargs["lr"], **STEP_LR)
  return getattr(optim, name)(**kwargs)


def run_scanned(opt, grads):
  """Every iteration in one lax.scan under jit: (params, state) after each."""
  stacked = {leaf: jnp.asarray(np.stack([g[leaf] for g in grads])) for leaf in SHAPES}
  params = {k: jnp.asarray(v) for k, v in initial_params().items()}

  @jax.jit
  def run(params, stacked):
    def body(carry, g):
      params, state = carry
      scaled = jax.tree.map(lambda x: x * optim.loss_scale(state), g)
      updates, state = opt.update(scaled, state, params)
      params = optax.apply_updates(params, updates)
      return (params, state), (params, state)

    _, history = jax.lax.scan(body, (params, opt.init(params)), stacked)
    return history

  history = run(params, stacked)
  return [jax.tree.map(lambda x, k=k: np.asarray(x[k]), history) for k in range(len(grads))]


def compare(records, history, name, what):
  previous_params = initial_params()
  skipped = 0
  for k, (record, (params, state)) in enumerate(zip(records, history, strict=True)):
    at = f"{what}, iteration {k}"
    scaler_state = [
      x
      for x in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, GradScalerState))
      if isinstance(x, GradScalerState)
    ][0]
    assert np.float32(scaler_state.scale) == record["scale"], at
    assert int(scaler_state.growth_tracker) == record["growth_tracker"], at
    assert int(optim.found_inf(state)) == record["found_inf"], at
    skipped += record["found_inf"]
    for leaf in SHAPES:
      assert_close(params[leaf], record["params"][leaf], what=f"{at}: {leaf}")
      if record["found_inf"]:
        np.testing.assert_array_equal(params[leaf], previous_params[leaf], err_msg=at)
    for key, (classes, field) in MOMENTS[name].items():
      value = find_field(scaler_state.inner_state, classes, field)
      for leaf in SHAPES:
        expected = record["moments"][key][leaf]
        actual = value if key == "step" else value[leaf]
        if expected is None:  # torch has no state before its first step
          np.testing.assert_array_equal(actual, np.zeros_like(actual), err_msg=f"{at}: {key}")
        elif key == "step":
          assert int(actual) == int(expected), f"{at}: step {actual} != torch {expected}"
        else:
          assert_close(actual, expected, what=f"{at}: {key}[{leaf}]")
    previous_params = params
  return skipped


SCALER = dict(init_scale=2.0**4, growth_factor=2.0, backoff_factor=0.5, growth_interval=3)


@pytest.mark.parametrize("schedule", [False, True], ids=["constant_lr", "step_lr_per_batch"])
@pytest.mark.parametrize(
  ("name", "kwargs"),
  CONFIGS,
  ids=[f"{n}({','.join(f'{k}={v}' for k, v in kw.items())})" for n, kw in CONFIGS],
)
def test_step_for_step_against_torch(name, kwargs, schedule):
  grads = gradients()
  records = run_torch(name, kwargs, schedule, grads, SCALER)
  opt = optim.grad_scaler(jax_optimizer(name, kwargs, schedule), **SCALER)
  skipped = compare(records, run_scanned(opt, grads), name, f"{name} schedule={schedule}")
  # The run saw what it is meant to: every poisoned iteration skipped, growth and backoff.
  assert skipped == len(POISON)
  scales = [SCALER["init_scale"]] + [float(r["scale"]) for r in records]
  growths = sum(after == 2 * before for before, after in zip(scales, scales[1:]))
  assert growths == 5 and min(scales) == 4.0, scales


def test_torch_reference_is_what_the_test_claims():
  """torch 2.13.0's own record for SGD: the scales and trackers, spelled out."""
  records = run_torch("sgd", dict(lr=0.1, momentum=0.9), False, gradients(), SCALER)
  # Skip at 0 (16 -> 8), growth after 3 good (1, 2, 3) at 3 (-> 16), skip at 4 (-> 8), ...
  assert [float(r["scale"]) for r in records[:9]] == [8, 8, 8, 16, 8, 8, 8, 4, 4]
  assert [r["growth_tracker"] for r in records[:9]] == [0, 1, 2, 0, 0, 1, 2, 0, 1]
  assert [r["found_inf"] for r in records] == [int(k in POISON) for k in range(ITERATIONS)]


def test_eager_updates_equal_the_scanned_ones():
  """Outside jit, one update at a time: the same states as the scanned run."""
  grads = gradients()
  opt = optim.grad_scaler(jax_optimizer("adam", dict(lr=0.05), True), **SCALER)
  history = run_scanned(opt, grads)
  params = {k: jnp.asarray(v) for k, v in initial_params().items()}
  state = opt.init(params)
  for k, g in enumerate(grads[:6]):
    scaled = {leaf: jnp.asarray(g[leaf]) * optim.loss_scale(state) for leaf in SHAPES}
    updates, state = opt.update(scaled, state, params)
    params = optax.apply_updates(params, updates)
    assert float(optim.loss_scale(state)) == float(history[k][1].scale)
    for leaf in SHAPES:  # XLA fuses differently under jit: float32 tolerance
      assert_close(params[leaf], history[k][0][leaf], what=f"{k}: {leaf}")


def test_param_groups_inside_one_scaler_against_torch_param_groups():
  """grad_scaler(param_groups(...)) is torch's one optimizer with parameter groups: an
  inf in one group skips every group; StepLR per batch decays each group's lr."""
  grads = gradients()
  params = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in initial_params().items()}
  torch_opt = torch.optim.Adam(
    [
      {"params": [params["w"]]},
      {"params": [params["b"], params["c"]], "lr": 0.01, "weight_decay": 0.1},
    ],
    lr=0.05,
  )
  scheduler = torch.optim.lr_scheduler.StepLR(torch_opt, **STEP_LR)
  scaler = torch.amp.GradScaler("cpu", **SCALER)
  opt = optim.grad_scaler(
    optim.param_groups(
      {"w": "a", "b": "b", "c": "b"},
      {
        "a": optim.adam(optim.step_lr(0.05, **STEP_LR)),
        "b": optim.adam(optim.step_lr(0.01, **STEP_LR), weight_decay=0.1),
      },
    ),
    **SCALER,
  )
  history = run_scanned(opt, grads)
  for k, g in enumerate(grads):
    scale = scaler.scale(torch.ones(()))
    for leaf, p in params.items():
      p.grad = torch.from_numpy(g[leaf]) * scale
    scaler.step(torch_opt)
    scaler.update()
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", UserWarning)
      scheduler.step()
    jax_params, state = history[k]
    assert float(optim.loss_scale(state)) == scaler.get_scale(), k
    assert int(optim.found_inf(state)) == int(k in POISON), k
    for leaf, p in params.items():
      assert_close(jax_params[leaf], p.detach().numpy(), what=f"iteration {k}: {leaf}")


def test_accumulate_outside_the_scaler_against_torch_accumulation():
  """accumulate(grad_scaler(opt), 2): torch's accumulation with a scaler (the loss of
  each micro-batch divided by 2, scaled; unscale, check and update once per step).
  The scale stays fixed over an update's micro-batches."""
  grads = gradients()  # 24 micro-batches: 12 updates; POISON hits 6 of them
  kwargs = dict(lr=0.1, momentum=0.9)
  records = run_torch("sgd", kwargs, True, grads, SCALER, accumulate=2)
  opt = optim.accumulate(optim.grad_scaler(jax_optimizer("sgd", kwargs, True), **SCALER), 2)
  history = run_scanned(opt, grads)
  # Micro-batch 2k + 1 completes update k.
  skipped = compare(records, history[1::2], "sgd", "accumulate(grad_scaler(sgd), 2)")
  assert skipped == len({k // 2 for k in POISON})
  for k in range(0, ITERATIONS, 2):  # the scale of a micro-batch in the middle of an update
    assert float(history[k][1].inner_opt_state.scale) == float(
      records[k // 2 - 1]["scale"] if k else SCALER["init_scale"]
    )


def test_own_gradients_overflow_naturally():
  """Each framework differentiates loss * scale itself (as a train step does), with an
  init_scale so large that the scaled gradients overflow to inf: backoff until they
  fit, growth every 4 good iterations until they overflow again. SGD with momentum
  and StepLR per batch; 40 iterations in one lax.scan."""
  rng = np.random.default_rng(3)
  n = 8
  m = rng.standard_normal((n, n)).astype(np.float32)
  a = (m @ m.T / n + 0.5 * np.eye(n)).astype(np.float32)
  b = rng.standard_normal(n).astype(np.float32)
  x0 = (3.0 * rng.standard_normal(n)).astype(np.float32)
  scaler_kwargs = dict(init_scale=2.0**127, growth_interval=4)
  iterations = 40

  x = torch.nn.Parameter(torch.from_numpy(x0.copy()))
  torch_opt = torch.optim.SGD([x], lr=0.05, momentum=0.9)
  scheduler = torch.optim.lr_scheduler.StepLR(torch_opt, step_size=5, gamma=0.8)
  scaler = torch.amp.GradScaler("cpu", **scaler_kwargs)
  ta, tb = torch.from_numpy(a), torch.from_numpy(b)
  expected = []
  for _ in range(iterations):
    x.grad = None
    scaler.scale(0.5 * x @ (ta @ x) - tb @ x).backward()
    scaler.step(torch_opt)
    scaler.update()
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", UserWarning)
      scheduler.step()
    expected.append((scaler.get_scale(), x.detach().numpy().copy()))

  opt = optim.grad_scaler(
    optim.sgd(optim.step_lr(0.05, step_size=5, gamma=0.8), momentum=0.9), **scaler_kwargs
  )

  def loss(x):
    return 0.5 * x @ (jnp.asarray(a) @ x) - jnp.asarray(b) @ x

  @jax.jit
  def run(x):
    def body(carry, _):
      x, state = carry
      grads = jax.grad(lambda x: loss(x) * optim.loss_scale(state))(x)
      updates, state = opt.update(grads, state, x)
      x = optax.apply_updates(x, updates)
      return (x, state), (x, optim.loss_scale(state), optim.found_inf(state))

    return jax.lax.scan(body, (x, opt.init(x)), None, length=iterations)[1]

  xs, scales, skipped = run(jnp.asarray(x0))
  assert [float(s) for s in scales] == [s for s, _ in expected]
  assert_close(xs, np.stack([x for _, x in expected]), what="x after every iteration")
  # Backoffs from 2**127 first, then growth and overflow again, more than once.
  assert int(skipped[:3].sum()) == 3 and int(skipped[10:].sum()) >= 2
  assert float(jnp.max(jnp.abs(xs[-1] - x0))) > 0.5


def test_unscale_is_torchs_reciprocal_and_product_bit_for_bit():
  """inv_scale = scale.double().reciprocal().float(), times the gradient, for scales that
  are and are not powers of two, across float32's exponent range (torch's unscale_)."""
  rng = np.random.default_rng(5)
  # Unscaled gradients stay normal floats: XLA flushes float32 subnormals to zero on
  # CPU, where torch keeps them (a documented difference, outside any useful scale).
  exponents = rng.uniform(-110, 100, 300)
  scales = np.concatenate(
    [
      np.exp2(np.round(exponents[:100])),  # powers of two
      np.exp2(exponents[100:]),  # anything
      [3.0, 1000.0, 65535.0, 1.5 * 2.0**100, 2.0**-126],
    ]
  ).astype(np.float32)
  g = rng.standard_normal(6).astype(np.float32) * np.float32(1e-3)
  expected = []
  for s in scales:
    p = torch.nn.Parameter(torch.zeros(6))
    opt = torch.optim.SGD([p], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=float(s))
    scaler.scale(torch.ones(()))
    p.grad = torch.from_numpy(g.copy())
    scaler.unscale_(opt)
    expected.append(p.grad.numpy().copy())
  opt = optim.grad_scaler(optax.identity())
  state = opt.init(jnp.zeros(6))
  unscaled = jax.jit(jax.vmap(lambda s: opt.update(jnp.asarray(g), state._replace(scale=s))[0]))(
    jnp.asarray(scales)
  )
  np.testing.assert_array_equal(np.asarray(unscaled), np.stack(expected))


def torch_scaler_run(scaler_kwargs, scaled_grads, lr=0.1):
  """torch's scale, tracker, skipped flag and parameter after each of the given
  (already scaled) gradients of one float32 parameter of 3 entries."""
  p = torch.nn.Parameter(torch.ones(3))
  opt = torch.optim.SGD([p], lr=lr)
  scaler = torch.amp.GradScaler("cpu", **scaler_kwargs)
  out = []
  for g in scaled_grads:
    scaler.scale(torch.ones(()))
    p.grad = torch.tensor(g, dtype=torch.float32)
    scaler.step(opt)
    found = sum(
      v.item() for v in scaler._per_optimizer_states[id(opt)]["found_inf_per_device"].values()
    )
    scaler.update()
    out.append(
      (
        scaler.get_scale(),
        int(scaler._growth_tracker.item()),
        int(found),
        p.detach().numpy().copy(),
      )
    )
  return out


def jax_scaler_run(scaler_kwargs, scaled_grads, lr=0.1):
  opt = optim.grad_scaler(optim.sgd(lr), **scaler_kwargs)
  p = jnp.ones(3)
  state = opt.init(p)
  out = []
  for g in scaled_grads:
    updates, state = opt.update(jnp.asarray(g, jnp.float32), state, p)
    p = optax.apply_updates(p, updates)
    out.append(
      (float(state.scale), int(state.growth_tracker), int(optim.found_inf(state)), np.asarray(p))
    )
  return out


def test_the_check_is_on_the_scaled_gradient_before_unscaling():
  """torch's kernel tests isfinite(val) before val * inv_scale: with a scale below 1,
  a finite scaled gradient that overflows once unscaled is not caught and the step
  is taken (the parameter becomes -inf); an inf scaled gradient is caught."""
  kwargs = dict(init_scale=0.25)
  grads = [[1e38, 1.0, 1.0], [np.inf, 1.0, 1.0]]
  expected = torch_scaler_run(kwargs, grads)
  assert expected[0][2] == 0 and np.isneginf(expected[0][3][0])  # torch: not skipped
  assert expected[1][2] == 1
  for k, (actual, want) in enumerate(zip(jax_scaler_run(kwargs, grads), expected, strict=True)):
    assert actual[:3] == want[:3], k
    np.testing.assert_array_equal(actual[3], want[3], err_msg=str(k))


def test_no_growth_beyond_float32():
  """torch grows only when scale * growth_factor is finite in float32, and resets the
  tracker either way: from 2**126, one growth to 2**127, then none."""
  kwargs = dict(init_scale=2.0**126, growth_interval=2)
  grads = [[1e-30, 2e-30, -1e-30]] * 6
  expected = torch_scaler_run(kwargs, grads)
  assert [s for s, *_ in expected] == [2.0**126, 2.0**127, 2.0**127, 2.0**127, 2.0**127, 2.0**127]
  assert [t for _, t, *_ in expected] == [1, 0, 1, 0, 1, 0]
  actual = jax_scaler_run(kwargs, grads)
  assert [a[:3] for a in actual] == [e[:3] for e in expected]
  for a, e in zip(actual, expected, strict=True):
    assert_close(a[3], e[3])


def test_bfloat16_gradients_are_unscaled_in_float32_as_torch():
  g = (np.random.default_rng(6).standard_normal(64) * 1e3).astype(np.float32)
  for s in (2.0**10, 3000.0):
    p = torch.nn.Parameter(torch.zeros(64, dtype=torch.bfloat16))
    opt = torch.optim.SGD([p], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=s)
    scaler.scale(torch.ones(()))
    p.grad = torch.from_numpy(g).to(torch.bfloat16)
    scaler.unscale_(opt)
    opt_j = optim.grad_scaler(optax.identity(), init_scale=s)
    params = jnp.zeros(64, jnp.bfloat16)
    updates, _ = opt_j.update(jnp.asarray(g).astype(jnp.bfloat16), opt_j.init(params), params)
    assert updates.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(updates.astype(jnp.float32)), p.grad.float().numpy())


def test_other_growth_and_backoff_factors_within_one_ulp_per_step():
  """torch multiplies the float32 scale by a float64 factor and rounds once; jaxtrain
  multiplies by float32(factor): the same for powers of two, within 1 ulp per
  multiplication otherwise. 30 iterations, growth 1.7, backoff 0.3."""
  grads = [{leaf: g[leaf] for leaf in SHAPES} for g in gradients()]
  grads = grads + grads[:6]
  kwargs = dict(init_scale=1000.0, growth_factor=1.7, backoff_factor=0.3, growth_interval=2)
  p = torch.nn.Parameter(torch.zeros(sum(int(np.prod(s)) for s in SHAPES.values())))
  opt = torch.optim.SGD([p], lr=0.1)
  scaler = torch.amp.GradScaler("cpu", **kwargs)
  expected = []
  for g in grads:
    scale = scaler.scale(torch.ones(()))
    p.grad = torch.from_numpy(np.concatenate([g[leaf].ravel() for leaf in SHAPES])) * scale
    scaler.step(opt)
    scaler.update()
    expected.append(scaler.get_scale())
  jopt = optim.grad_scaler(optim.sgd(0.1), **kwargs)
  state = jopt.init(jnp.zeros(p.shape))
  actual, multiplications = [], 0
  for g in grads:
    flat = jnp.asarray(np.concatenate([g[leaf].ravel() for leaf in SHAPES]))
    before = float(state.scale)
    _, state = jopt.update(flat * optim.loss_scale(state), state, jnp.zeros(p.shape))
    multiplications += float(state.scale) != before
    actual.append(float(state.scale))
    assert_close(actual[-1], expected[len(actual) - 1], rtol=multiplications * 2.0**-23, atol=0.0)
  assert multiplications >= 10


# ---------------------------------------------------------------- lookups and errors


def test_loss_scale_and_found_inf_find_the_state_anywhere():
  opt = optim.grad_scaler(optim.sgd(0.1), init_scale=8.0)
  state = opt.init({"w": jnp.ones(2)})
  train_state = {"step": jnp.zeros([], jnp.int32), "opt_state": (optax.EmptyState(), state)}
  assert optim.loss_scale(train_state).dtype == jnp.float32
  assert float(optim.loss_scale(train_state)) == 8.0
  assert optim.found_inf(train_state).dtype == jnp.int32 and int(optim.found_inf(state)) == 0
  accumulated = optim.accumulate(opt, 3)
  assert float(optim.loss_scale(accumulated.init({"w": jnp.ones(2)}))) == 8.0


@pytest.mark.parametrize("lookup", [optim.loss_scale, optim.found_inf])
def test_lookups_without_or_with_several_scalers_raise(lookup):
  name = lookup.__name__
  with pytest.raises(ValueError, match=re.escape(f"{name}: opt_state holds no GradScalerState")):
    lookup(optim.sgd(0.1).init(jnp.ones(2)))
  one = optim.grad_scaler(optim.sgd(0.1)).init(jnp.ones(2))
  with pytest.raises(ValueError, match=re.escape(f"{name}: opt_state holds 2 GradScalerStates")):
    lookup({"a": one, "b": one})


def test_wrong_composition_is_rejected_at_init():
  params = jnp.ones(2)
  per_group = optim.param_groups(
    {"a": "a", "b": "b"}, {"a": optim.grad_scaler(optim.sgd(0.1)), "b": optim.sgd(0.1)}
  )
  with pytest.raises(
    ValueError, match=re.escape("wrap all groups in one, grad_scaler(param_groups(...))")
  ):
    per_group.init({"a": params, "b": params})
  with pytest.raises(
    ValueError, match=re.escape("compose accumulate(grad_scaler(optimizer), every_k)")
  ):
    optim.grad_scaler(optim.accumulate(optim.sgd(0.1), 2)).init(params)
  with pytest.raises(ValueError, match="holds another grad_scaler"):
    optim.grad_scaler(optim.grad_scaler(optim.sgd(0.1))).init(params)


def test_float16_and_integer_gradients_raise():
  opt = optim.grad_scaler(optim.sgd(0.1))
  params = jnp.ones(2)
  with pytest.raises(TypeError, match=re.escape("Attempting to unscale FP16 gradients.")):
    opt.update(jnp.ones(2, jnp.float16), opt.init(params), params)
  with pytest.raises(TypeError, match="grad_scaler: gradients must be floating point"):
    opt.update(jnp.ones(2, jnp.int32), opt.init(params), params)
  # torch 2.13.0 raises ValueError("Attempting to unscale FP16 gradients.") too.
  p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float16))
  torch_opt = torch.optim.SGD([p], lr=0.1)
  scaler = torch.amp.GradScaler("cpu")
  scaler.scale(torch.ones(()))
  p.grad = torch.ones(2, dtype=torch.float16)
  with pytest.raises(ValueError, match=re.escape("Attempting to unscale FP16 gradients.")):
    scaler.step(torch_opt)


BAD_ARGUMENTS = [
  # torch 2.13.0's own checks (it raises AssertionError with these messages).
  (dict(growth_factor=1.0), ValueError, "The growth factor must be > 1.0."),
  (dict(growth_factor=NAN), ValueError, "The growth factor must be > 1.0."),
  (dict(backoff_factor=1.0), ValueError, "The backoff factor must be < 1.0."),
  (dict(backoff_factor=NAN), ValueError, "The backoff factor must be < 1.0."),
  # torch accepts these and then scales by 0, a negative or inf, or never grows.
  (dict(backoff_factor=0.0), ValueError, "grad_scaler: backoff_factor must be > 0, got 0.0"),
  (
    dict(init_scale=0.0),
    ValueError,
    "grad_scaler: init_scale must be a finite number > 0 in float32, got 0.0",
  ),
  (dict(init_scale=-4.0), ValueError, "grad_scaler: init_scale must be a finite number > 0"),
  (dict(init_scale=INF), ValueError, "grad_scaler: init_scale must be a finite number > 0"),
  (dict(init_scale=NAN), ValueError, "grad_scaler: init_scale must be a finite number > 0"),
  (
    dict(init_scale=1e39),
    ValueError,
    "grad_scaler: init_scale must be a finite number > 0 in float32, got 1e+39",
  ),
  (
    dict(init_scale="65536"),
    TypeError,
    "grad_scaler: init_scale must be a number, got '65536' (str)",
  ),
  (dict(growth_factor=None), TypeError, "grad_scaler: growth_factor must be a number, got None"),
  (dict(backoff_factor=True), TypeError, "grad_scaler: backoff_factor must be a number"),
  (
    dict(growth_interval=0),
    ValueError,
    "grad_scaler: growth_interval must be a positive integer, got 0",
  ),
  (dict(growth_interval=2**31), ValueError, "grad_scaler: growth_interval must be below 2**31"),
  (
    dict(growth_interval=2.5),
    TypeError,
    "grad_scaler: growth_interval must be an integer, got 2.5 (float)",
  ),
  (dict(growth_interval=100.0), TypeError, "grad_scaler: growth_interval must be an integer"),
]


@pytest.mark.parametrize(
  ("kwargs", "error", "message"),
  BAD_ARGUMENTS,
  ids=[",".join(f"{k}={v!r}" for k, v in c[0].items()) for c in BAD_ARGUMENTS],
)
def test_bad_arguments(kwargs, error, message):
  with pytest.raises(error, match=re.escape(message)):
    optim.grad_scaler(optim.sgd(0.1), **kwargs)


def test_torch_checks_the_same_two_factors():
  for kwargs, message in [
    (dict(growth_factor=1.0), "The growth factor must be > 1.0."),
    (dict(backoff_factor=1.0), "The backoff factor must be < 1.0."),
  ]:
    with pytest.raises(AssertionError, match=re.escape(message)):
      torch.amp.GradScaler("cpu", **kwargs)


@pytest.mark.parametrize("optimizer", [optim.sgd, None, 0.1])
def test_optimizer_must_be_a_gradient_transformation(optimizer):
  with pytest.raises(
    TypeError,
    match=re.escape(
      "grad_scaler: optimizer must be an optax.GradientTransformation (e.g. jaxtrain.optim.adam())"
    ),
  ):
    optim.grad_scaler(optimizer)


def test_defaults_are_torchs():
  import inspect

  torch_defaults = inspect.signature(torch.amp.GradScaler).parameters
  for name, parameter in inspect.signature(optim.grad_scaler).parameters.items():
    if name != "optimizer":
      assert parameter.default == torch_defaults[name].default, name
