"""Trajectory parity of jaxtrain.optim's optimizers with torch 2.13.0's torch.optim.

References: torch 2.13.0 ``torch.optim.SGD``, ``RMSprop``, ``Adam``, ``AdamW``,
``Adagrad`` (single-tensor CPU path, the default for CPU tensors) and
``torch.optim.lr_scheduler.StepLR``, ``MultiStepLR``, ``ExponentialLR``,
``CosineAnnealingLR``, run side by side with jaxtrain for ``STEPS`` updates from
identical initial parameters.

Two problems, every optimizer x option combination on both:

* MLP 784-256-10 (``nn.Sequential(Linear, ReLU, Linear)``, cross-entropy, batch
  32): at every step torch computes the gradient at its parameters, and *the same
  gradient* is given to both optimizers, which then each update their own
  parameters. This isolates the optimizer: computed separately, the two
  frameworks' gradients differ by ~1e-9 (summation order), and Adam-type
  optimizers turn that into an O(lr) difference for any weight whose gradient is
  within rounding of zero (the update is g / (|g| + eps)), which is float32 noise,
  not semantics. ``test_mlp_own_gradients`` covers separately computed gradients.
* Quadratic ``0.5 x^T A x - b^T x`` (A symmetric positive definite): each
  framework computes its own gradient, ``STEPS`` jitted steps on the jax side.

Tolerance (float32), for every parameter array: ``rtol=1e-5`` and
``atol=1e-6 * max(1, max|p_torch|)`` (``oracle.assert_close``). No combination
needs more.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from oracle import assert_close

import jaxtrain.optim as O
from jaxtrain.optim import optimizers, schedules

STEPS = 100

TORCH_OPTIMIZERS = {
  "sgd": torch.optim.SGD,
  "rmsprop": torch.optim.RMSprop,
  "adam": torch.optim.Adam,
  "adamw": torch.optim.AdamW,
  "adagrad": torch.optim.Adagrad,
}

# Every option of each optimizer on and off (its defaults first), and options
# combined. The learning rates are large enough that 100 steps move far.
CONFIGS = [
  ("sgd", dict(lr=0.05)),
  ("sgd", dict(lr=0.05, momentum=0.9)),
  ("sgd", dict(lr=0.05, momentum=0.9, dampening=0.5)),
  ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True)),
  ("sgd", dict(lr=0.05, weight_decay=0.1)),
  ("sgd", dict(lr=0.02, maximize=True)),
  ("sgd", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.1)),
  ("sgd", dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True)),
  ("rmsprop", dict()),
  ("rmsprop", dict(lr=1e-3, alpha=0.9, eps=1e-6)),
  ("rmsprop", dict(lr=1e-3, momentum=0.9)),
  ("rmsprop", dict(lr=1e-3, centered=True)),
  ("rmsprop", dict(lr=1e-3, weight_decay=0.1)),
  ("rmsprop", dict(lr=1e-3, maximize=True)),
  ("rmsprop", dict(lr=1e-3, momentum=0.9, centered=True, weight_decay=0.1)),
  ("adam", dict()),
  ("adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6)),
  ("adam", dict(lr=1e-2, weight_decay=0.1)),
  ("adam", dict(lr=1e-2, amsgrad=True)),
  ("adam", dict(lr=1e-2, maximize=True)),
  ("adam", dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
  ("adamw", dict()),
  ("adamw", dict(lr=1e-2, weight_decay=0.0)),
  ("adamw", dict(lr=1e-2, weight_decay=0.5)),
  ("adamw", dict(lr=1e-2, amsgrad=True)),
  ("adamw", dict(lr=1e-2, betas=(0.5, 0.9), maximize=True)),
  ("adagrad", dict()),
  ("adagrad", dict(lr=0.05, lr_decay=0.01)),
  ("adagrad", dict(lr=0.05, weight_decay=0.1)),
  ("adagrad", dict(lr=0.05, initial_accumulator_value=0.1, eps=1e-6)),
  ("adagrad", dict(lr=0.05, maximize=True)),
  ("adagrad", dict(lr=0.05, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1)),
]

# Schedules: (jaxtrain schedule, torch scheduler class, shared arguments). On the
# torch side scheduler.step() follows every `steps_per_epoch`-th optimizer.step().
SCHEDULES = {
  "step_lr/epoch": (
    schedules.step_lr,
    torch.optim.lr_scheduler.StepLR,
    dict(step_size=3, gamma=0.5),
    10,
  ),
  "multistep_lr/epoch": (
    schedules.multistep_lr,
    torch.optim.lr_scheduler.MultiStepLR,
    dict(milestones=[2, 5, 5, 8], gamma=0.5),
    10,
  ),
  "exponential_lr/batch": (
    schedules.exponential_lr,
    torch.optim.lr_scheduler.ExponentialLR,
    dict(gamma=0.97),
    1,
  ),
  "cosine_annealing_lr/batch": (
    schedules.cosine_annealing_lr,
    torch.optim.lr_scheduler.CosineAnnealingLR,
    dict(T_max=30, eta_min=1e-4),
    1,
  ),
}

SCHEDULED_CONFIGS = [
  ("sgd", dict(lr=0.05, momentum=0.9, weight_decay=0.1), "step_lr/epoch"),
  ("sgd", dict(lr=0.05, momentum=0.9, dampening=0.5), "cosine_annealing_lr/batch"),
  # torch applies lr after RMSprop's momentum buffer: visible only under a schedule.
  ("rmsprop", dict(lr=1e-3, momentum=0.9), "exponential_lr/batch"),
  ("rmsprop", dict(lr=1e-3, momentum=0.9, centered=True), "step_lr/epoch"),
  ("adam", dict(lr=1e-2, weight_decay=0.1, amsgrad=True), "cosine_annealing_lr/batch"),
  ("adam", dict(lr=1e-2), "multistep_lr/epoch"),
  # torch AdamW decays the weights with the scheduled lr.
  ("adamw", dict(lr=1e-2, weight_decay=0.5), "multistep_lr/epoch"),
  ("adamw", dict(lr=1e-2, weight_decay=0.5, amsgrad=True), "exponential_lr/batch"),
  ("adagrad", dict(lr=0.05, lr_decay=0.01), "step_lr/epoch"),
  ("adagrad", dict(lr=0.05, lr_decay=0.01, weight_decay=0.1), "cosine_annealing_lr/batch"),
]


def _id(name, kwargs, schedule=None):
  args = ",".join(f"{k}={v}" for k, v in kwargs.items())
  return f"{name}({args})" + (f"+{schedule}" if schedule else "")


ALL_RAW = [(n, k, None) for n, k in CONFIGS] + list(SCHEDULED_CONFIGS)
ALL = [pytest.param(n, k, s, id=_id(n, k, s)) for n, k, s in ALL_RAW]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_pair(name, kwargs, schedule, torch_params):
  """The jaxtrain optimizer and a torch (optimizer, step function) for one config."""
  torch_opt = TORCH_OPTIMIZERS[name](torch_params, **kwargs)
  lr = kwargs.get("lr", torch_opt.defaults["lr"])
  jax_kwargs = dict(kwargs)
  step_scheduler = None
  if schedule is not None:
    jax_schedule, torch_scheduler, sched_kwargs, steps_per_epoch = SCHEDULES[schedule]
    jax_kwargs["lr"] = jax_schedule(lr, **sched_kwargs, steps_per_epoch=steps_per_epoch)
    scheduler = torch_scheduler(torch_opt, **sched_kwargs)

    def step_scheduler(k):
      if (k + 1) % steps_per_epoch == 0:
        scheduler.step()

  def torch_step(k):
    torch_opt.step()
    if step_scheduler is not None:
      step_scheduler(k)

  return getattr(optimizers, name)(**jax_kwargs), torch_step


# ---------------------------------------------------------------- MLP 784-256-10


def mlp_data(seed=0, batch=32):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((batch, 784)).astype(np.float32)
  y = rng.integers(0, 10, batch)
  torch.manual_seed(seed)
  net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
  return x, y, net


def jax_params_of(net):
  """torch Linear stores weight as (out, in); the jax MLP uses x @ w with w (in, out)."""
  return {
    "w1": jnp.asarray(net[0].weight.detach().numpy().T),
    "b1": jnp.asarray(net[0].bias.detach().numpy()),
    "w2": jnp.asarray(net[2].weight.detach().numpy().T),
    "b2": jnp.asarray(net[2].bias.detach().numpy()),
  }


def torch_grads_of(net):
  return {
    "w1": jnp.asarray(net[0].weight.grad.numpy().T),
    "b1": jnp.asarray(net[0].bias.grad.numpy()),
    "w2": jnp.asarray(net[2].weight.grad.numpy().T),
    "b2": jnp.asarray(net[2].bias.grad.numpy()),
  }


def assert_params_close(jax_params, torch_params, what):
  for key in jax_params:
    assert_close(jax_params[key], torch_params[key], what=f"{what}: {key}")


def jit_update(opt):
  @jax.jit
  def update(grads, state, params):
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  return update


@pytest.mark.parametrize(("name", "kwargs", "schedule"), ALL)
def test_mlp_trajectory(name, kwargs, schedule):
  x, y, net = mlp_data()
  params = initial = jax_params_of(net)
  opt, torch_step = make_pair(name, kwargs, schedule, net.parameters())
  state = opt.init(params)
  update = jit_update(opt)
  tx, ty = torch.from_numpy(x), torch.from_numpy(y)
  for k in range(STEPS):
    net.zero_grad()
    torch.nn.functional.cross_entropy(net(tx), ty).backward()
    params, state = update(torch_grads_of(net), state, params)
    torch_step(k)
  expected = jax_params_of(net)
  # The trajectory must have gone somewhere for the comparison to mean anything.
  assert float(jnp.max(jnp.abs(expected["w2"] - initial["w2"]))) > 1e-3
  assert_params_close(params, expected, _id(name, kwargs, schedule))


# ---------------------------------------------------------------- quadratic


def quadratic_problem(n=20, seed=1):
  rng = np.random.default_rng(seed)
  m = rng.standard_normal((n, n)).astype(np.float32)
  a = (m @ m.T / n + 0.1 * np.eye(n)).astype(np.float32)
  b = rng.standard_normal(n).astype(np.float32)
  x0 = (3.0 * rng.standard_normal(n)).astype(np.float32)
  return a, b, x0


@pytest.mark.parametrize(("name", "kwargs", "schedule"), ALL)
def test_quadratic_trajectory(name, kwargs, schedule):
  a, b, x0 = quadratic_problem()
  ta, tb = torch.from_numpy(a), torch.from_numpy(b)
  tx = torch.nn.Parameter(torch.from_numpy(x0.copy()))
  opt, torch_step = make_pair(name, kwargs, schedule, [tx])

  def loss(x):
    return 0.5 * x @ (jnp.asarray(a) @ x) - jnp.asarray(b) @ x

  @jax.jit
  def run(x):
    def body(carry, _):
      x, state = carry
      updates, state = opt.update(jax.grad(loss)(x), state, x)
      return (optax.apply_updates(x, updates), state), None

    (x, _), _ = jax.lax.scan(body, (x, opt.init(x)), None, length=STEPS)
    return x

  for k in range(STEPS):
    tx.grad = None
    (0.5 * tx @ (ta @ tx) - tb @ tx).backward()
    torch_step(k)
  expected = tx.detach().numpy()
  assert np.max(np.abs(expected - x0)) > 1e-2
  assert_close(run(jnp.asarray(x0)), expected, what=_id(name, kwargs, schedule))


# ---------------------------------------------------------------- own gradients, end to end


@pytest.mark.parametrize(
  ("name", "kwargs"),
  [
    ("sgd", dict(lr=0.05, momentum=0.9, dampening=0.5, weight_decay=0.1)),
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True)),
  ],
  ids=lambda v: v if isinstance(v, str) else ",".join(f"{k}={x}" for k, x in v.items()),
)
def test_mlp_own_gradients(name, kwargs):
  """Each framework computes its own gradients, as a ported training loop does.

  A tanh MLP: with ReLU, a pre-activation within float32 rounding of 0 flips
  between the frameworks at random (one in this data is 9e-7 at the start),
  and the trajectories then part by ~1e-6. The optimizers with per-coordinate
  normalization (Adam, RMSprop, Adagrad) are covered with shared gradients above,
  for the reason given in the module docstring.
  """
  x, y, _ = mlp_data()
  torch.manual_seed(0)
  net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.Tanh(), torch.nn.Linear(256, 10))
  params = jax_params_of(net)
  opt, torch_step = make_pair(name, kwargs, None, net.parameters())

  def loss(p, x, y):
    logits = jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))

  @jax.jit
  def step(params, state):
    updates, state = opt.update(jax.grad(loss)(params, x, y), state, params)
    return optax.apply_updates(params, updates), state

  state = opt.init(params)
  tx, ty = torch.from_numpy(x), torch.from_numpy(y)
  for k in range(STEPS):
    net.zero_grad()
    torch.nn.functional.cross_entropy(net(tx), ty).backward()
    torch_step(k)
    params, state = step(params, state)
  assert_params_close(params, jax_params_of(net), name)


# ---------------------------------------------------------------- hyper-parameter errors


BAD = [
  ("sgd", dict(lr=-0.1)),
  ("sgd", dict(lr=0.1, momentum=-0.5)),
  ("sgd", dict(lr=0.1, weight_decay=-1e-4)),
  ("sgd", dict(lr=0.1, nesterov=True)),
  ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)),
  ("rmsprop", dict(lr=-1.0)),
  ("rmsprop", dict(eps=-1e-8)),
  ("rmsprop", dict(momentum=-0.1)),
  ("rmsprop", dict(weight_decay=-0.1)),
  ("rmsprop", dict(alpha=-0.5)),
  ("adam", dict(lr=-1e-3)),
  ("adam", dict(eps=-1.0)),
  ("adam", dict(betas=(1.0, 0.999))),
  ("adam", dict(betas=(-0.1, 0.999))),
  ("adam", dict(betas=(0.9, 1.5))),
  ("adam", dict(weight_decay=-0.01)),
  ("adamw", dict(lr=-1e-3)),
  ("adamw", dict(betas=(0.9, 1.0))),
  ("adamw", dict(weight_decay=-0.01)),
  ("adagrad", dict(lr=-0.1)),
  ("adagrad", dict(lr_decay=-0.1)),
  ("adagrad", dict(weight_decay=-0.1)),
  ("adagrad", dict(initial_accumulator_value=-0.1)),
  ("adagrad", dict(eps=-1e-10)),
]


@pytest.mark.parametrize(("name", "kwargs"), [pytest.param(n, k, id=_id(n, k)) for n, k in BAD])
def test_bad_hyperparameters_raise_torchs_error(name, kwargs):
  with pytest.raises(ValueError) as torch_error:
    TORCH_OPTIMIZERS[name]([torch.nn.Parameter(torch.zeros(2))], **kwargs)
  message = str(torch_error.value)
  with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
    getattr(optimizers, name)(**kwargs)


def test_error_messages_are_worded_as_torchs():
  """The messages users search for, spelled out (torch 2.13.0)."""
  with pytest.raises(ValueError, match=r"^Invalid learning rate: -0\.1$"):
    optimizers.sgd(lr=-0.1)
  with pytest.raises(ValueError, match=r"^Invalid beta parameter at index 0: 1\.0$"):
    optimizers.adam(betas=(1.0, 0.999))
  nesterov = r"^Nesterov momentum requires a momentum and zero dampening$"
  with pytest.raises(ValueError, match=nesterov):
    optimizers.sgd(lr=0.1, nesterov=True)


def test_defaults_are_torchs():
  """Defaults read from torch 2.13.0's optimizers and compared with jaxtrain's signatures."""
  import inspect

  for name, cls in TORCH_OPTIMIZERS.items():
    torch_defaults = cls([torch.nn.Parameter(torch.zeros(1))]).defaults
    signature = inspect.signature(getattr(optimizers, name))
    for arg, parameter in signature.parameters.items():
      assert arg in torch_defaults, f"{name}: torch has no argument {arg}"
      expected = torch_defaults[arg]
      expected = tuple(expected) if isinstance(expected, (tuple, list)) else expected
      assert parameter.default == expected, (
        f"{name}({arg}): {parameter.default} != torch {expected}"
      )


def test_injected_learning_rate_is_torchs_get_last_lr():
  """optax.inject_hyperparams exposes the current lr, as torch's get_last_lr()."""
  schedule = schedules.step_lr(0.1, step_size=2, gamma=0.5)
  opt = optax.inject_hyperparams(optimizers.sgd)(lr=schedule, momentum=0.9)
  plain = optimizers.sgd(lr=schedule, momentum=0.9)
  param = torch.nn.Parameter(torch.ones(3))
  torch_opt = torch.optim.SGD([param], lr=0.1, momentum=0.9)
  scheduler = torch.optim.lr_scheduler.StepLR(torch_opt, step_size=2, gamma=0.5)
  p = q = jnp.ones(3)
  state, plain_state = opt.init(p), plain.init(q)
  for _ in range(7):
    grad = jnp.asarray([1.0, -2.0, 0.5])
    updates, state = opt.update(grad, state, p)
    assert_close(state.hyperparams["lr"], scheduler.get_last_lr()[0], rtol=1e-6, what="lr")
    plain_updates, plain_state = plain.update(grad, plain_state, q)
    p, q = optax.apply_updates(p, updates), optax.apply_updates(q, plain_updates)
    param.grad = torch.tensor([1.0, -2.0, 0.5])
    torch_opt.step()
    scheduler.step()
  assert_close(p, q, rtol=1e-7, atol=0.0, what="inject_hyperparams")
  assert_close(p, param.detach().numpy(), what="params")


# ---------------------------------------------------------------- NaN hyper-parameters


NAN = float("nan")

# Every numeric hyper-parameter of every optimizer set to NaN, and the message. torch's
# `not 0.0 <= x` checks reject NaN with these messages; torch's SGD checks `x < 0.0`,
# which lets NaN through, and never checks dampening: jaxtrain rejects NaN everywhere,
# in torch's wording.
NAN_ARGUMENTS = [
  ("sgd", "lr", "Invalid learning rate: nan"),
  ("sgd", "momentum", "Invalid momentum value: nan"),
  ("sgd", "dampening", "Invalid dampening value: nan"),
  ("sgd", "weight_decay", "Invalid weight_decay value: nan"),
  ("rmsprop", "lr", "Invalid learning rate: nan"),
  ("rmsprop", "alpha", "Invalid alpha value: nan"),
  ("rmsprop", "eps", "Invalid epsilon value: nan"),
  ("rmsprop", "weight_decay", "Invalid weight_decay value: nan"),
  ("rmsprop", "momentum", "Invalid momentum value: nan"),
  ("adam", "lr", "Invalid learning rate: nan"),
  ("adam", "eps", "Invalid epsilon value: nan"),
  ("adam", "weight_decay", "Invalid weight_decay value: nan"),
  ("adam", "betas[0]", "Invalid beta parameter at index 0: nan"),
  ("adam", "betas[1]", "Invalid beta parameter at index 1: nan"),
  ("adamw", "lr", "Invalid learning rate: nan"),
  ("adamw", "eps", "Invalid epsilon value: nan"),
  ("adamw", "weight_decay", "Invalid weight_decay value: nan"),
  ("adamw", "betas[0]", "Invalid beta parameter at index 0: nan"),
  ("adamw", "betas[1]", "Invalid beta parameter at index 1: nan"),
  ("adagrad", "lr", "Invalid learning rate: nan"),
  ("adagrad", "lr_decay", "Invalid lr_decay value: nan"),
  ("adagrad", "weight_decay", "Invalid weight_decay value: nan"),
  ("adagrad", "initial_accumulator_value", "Invalid initial_accumulator_value value: nan"),
  ("adagrad", "eps", "Invalid epsilon value: nan"),
]


def test_nan_arguments_cover_every_numeric_hyperparameter():
  import inspect

  flags = {"nesterov", "centered", "amsgrad", "maximize"}
  for name in TORCH_OPTIMIZERS:
    numeric = set(inspect.signature(getattr(optimizers, name)).parameters) - flags
    covered = {arg.split("[")[0] for n, arg, _ in NAN_ARGUMENTS if n == name}
    assert covered == numeric, name


@pytest.mark.parametrize(
  ("name", "arg", "message"), NAN_ARGUMENTS, ids=[f"{n}({a}=nan)" for n, a, _ in NAN_ARGUMENTS]
)
def test_nan_hyperparameters_raise(name, arg, message):
  """jaxtrain rejects a NaN hyper-parameter when the optimizer is built, naming it."""
  if arg.startswith("betas"):
    kwargs = dict(betas=(NAN, 0.999) if arg == "betas[0]" else (0.9, NAN))
  else:
    kwargs = {arg: NAN}
  with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
    getattr(optimizers, name)(**kwargs)
  # torch 2.13.0: the same message, except where its SGD lets NaN through.
  try:
    TORCH_OPTIMIZERS[name]([torch.nn.Parameter(torch.zeros(2))], **kwargs)
  except ValueError as torch_error:
    assert str(torch_error) == message
  else:
    assert name == "sgd", f"torch accepts {name}({arg}=nan)"


# ---------------------------------------------------------------- types and lengths


# (optimizer, arguments, exception, message fragment): bad types and lengths are
# reported when the optimizer is built, naming the argument and what was expected.
# torch 2.13.0 for comparison: SGD(lr="0.1") and Adam(eps=None) raise a TypeError
# about '<'; Adam(betas=(0.9,)) an IndexError; SGD(momentum=True), SGD(nesterov="yes")
# and Adam(betas=(0.9, 0.99, 0.9)) are accepted.
BAD_TYPES = [
  (
    "sgd",
    dict(lr="0.1"),
    TypeError,
    "sgd: lr must be a number or a schedule (a function of the update count), got '0.1' (str)",
  ),
  ("sgd", dict(lr=None), TypeError, "sgd: lr must be a number or a schedule"),
  ("sgd", dict(lr=True), TypeError, "sgd: lr must be a number or a schedule"),
  (
    "sgd",
    dict(lr=0.1, momentum="0.9"),
    TypeError,
    "sgd: momentum must be a number, got '0.9' (str)",
  ),
  ("sgd", dict(lr=0.1, momentum=True), TypeError, "sgd: momentum must be a number, got True"),
  ("sgd", dict(lr=0.1, dampening=None), TypeError, "sgd: dampening must be a number, got None"),
  (
    "sgd",
    dict(lr=0.1, weight_decay=[0.1]),
    TypeError,
    "sgd: weight_decay must be a number, got [0.1] (list)",
  ),
  (
    "sgd",
    dict(lr=0.1, momentum=0.9, nesterov="yes"),
    TypeError,
    "sgd: nesterov must be a bool, got 'yes' (str)",
  ),
  ("sgd", dict(lr=0.1, maximize=1), TypeError, "sgd: maximize must be a bool, got 1 (int)"),
  (
    "sgd",
    dict(lr=np.asarray([0.1, 0.2])),
    ValueError,
    "sgd: lr must be a scalar, got an array of shape (2,)",
  ),
  (
    "sgd",
    dict(lr=np.asarray(0.1, np.complex64)),
    TypeError,
    "sgd: lr must be a number or a schedule (a function of the update count), got an array of "
    "dtype complex64",
  ),
  ("rmsprop", dict(alpha=None), TypeError, "rmsprop: alpha must be a number, got None"),
  ("rmsprop", dict(eps="1e-8"), TypeError, "rmsprop: eps must be a number, got '1e-8' (str)"),
  ("rmsprop", dict(centered="yes"), TypeError, "rmsprop: centered must be a bool, got 'yes'"),
  (
    "adam",
    dict(betas=(0.9,)),
    ValueError,
    "adam: betas must be a pair (beta1, beta2), got (0.9,) of length 1",
  ),
  (
    "adam",
    dict(betas=(0.9, 0.99, 0.9)),
    ValueError,
    "adam: betas must be a pair (beta1, beta2), got (0.9, 0.99, 0.9) of length 3",
  ),
  (
    "adam",
    dict(betas=0.9),
    TypeError,
    "adam: betas must be a pair (beta1, beta2), got 0.9 (float)",
  ),
  ("adam", dict(betas="ab"), TypeError, "adam: betas must be a pair (beta1, beta2), got 'ab'"),
  (
    "adam",
    dict(betas=(0.9, "0.999")),
    TypeError,
    "adam: betas[1] must be a number, got '0.999' (str)",
  ),
  ("adam", dict(eps=None), TypeError, "adam: eps must be a number, got None"),
  ("adam", dict(lr=0.1, amsgrad="no"), TypeError, "adam: amsgrad must be a bool, got 'no'"),
  ("adamw", dict(weight_decay="0.01"), TypeError, "adamw: weight_decay must be a number"),
  ("adamw", dict(betas=[0.9]), ValueError, "adamw: betas must be a pair (beta1, beta2)"),
  ("adagrad", dict(lr_decay="0"), TypeError, "adagrad: lr_decay must be a number, got '0'"),
  (
    "adagrad",
    dict(initial_accumulator_value=None),
    TypeError,
    "adagrad: initial_accumulator_value must be a number, got None",
  ),
  (
    "adagrad",
    dict(lr=0.1, maximize="false"),
    TypeError,
    "adagrad: maximize must be a bool, got 'false'",
  ),
]


@pytest.mark.parametrize(
  ("name", "kwargs", "error", "message"),
  BAD_TYPES,
  ids=[f"{n}({','.join(f'{k}={v!r}' for k, v in kw.items())})" for n, kw, _, _ in BAD_TYPES],
)
def test_bad_types_and_lengths_raise_when_built(name, kwargs, error, message):
  with pytest.raises(error, match=re.escape(message)):
    getattr(optimizers, name)(**kwargs)


def test_other_number_types_are_accepted():
  """numpy scalars, 0-d arrays, ints and lists for betas build the same optimizer."""
  grad = jnp.asarray([1.0, -2.0, 0.5])
  p = jnp.ones(3)

  def one_update(opt):
    updates, _ = opt.update(grad, opt.init(p), p)
    return updates

  assert_close(
    one_update(optimizers.adam(np.float32(0.01), [0.9, np.float64(0.99)], np.asarray(1e-6), 0)),
    one_update(optimizers.adam(0.01, (0.9, 0.99), 1e-6, 0.0)),
    rtol=1e-7,
    atol=0.0,
  )
  assert_close(
    one_update(optimizers.sgd(jnp.asarray(0.1), 1, weight_decay=np.int64(0))),
    one_update(optimizers.sgd(0.1, 1.0)),
    rtol=1e-7,
    atol=0.0,
  )
  assert_close(
    one_update(optimizers.sgd(0.1, 0.9, nesterov=np.bool_(True))),
    one_update(optimizers.sgd(0.1, 0.9, nesterov=True)),
    rtol=1e-7,
    atol=0.0,
  )


def test_traced_hyperparameters_are_accepted():
  """optax.inject_hyperparams passes hyper-parameters as (traced) arrays: no value check."""
  grad = jnp.asarray([1.0, -2.0, 0.5])
  for name, kwargs in [
    ("adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1)),
    ("rmsprop", dict(lr=0.01, alpha=0.9, momentum=0.5)),
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
  ]:
    injected = optax.inject_hyperparams(getattr(optimizers, name))(**kwargs)
    plain = getattr(optimizers, name)(**kwargs)
    p = q = jnp.ones(3)
    state, plain_state = injected.init(p), plain.init(q)
    step = jit_update(injected)
    for _ in range(3):
      p, state = step(grad, state, p)
      updates, plain_state = plain.update(grad, plain_state, q)
      q = optax.apply_updates(q, updates)
    assert_close(p, q, rtol=1e-6, atol=0.0, what=name)


# Bad hyper-parameters raise torch 2.13.0's ValueError with torch's message.
TORCH_MESSAGES = [
  ("sgd negative lr", lambda: O.sgd(-0.1), "Invalid learning rate: -0.1"),
  ("sgd NaN lr", lambda: O.sgd(float("nan")), "Invalid learning rate: nan"),
  ("sgd negative momentum", lambda: O.sgd(0.1, momentum=-1), "Invalid momentum value: -1"),
  (
    "sgd nesterov without momentum",
    lambda: O.sgd(0.1, nesterov=True),
    "Nesterov momentum requires a momentum and zero dampening",
  ),
  (
    "adam beta1 = 1",
    lambda: O.adam(0.1, betas=(1.0, 0.9)),
    "Invalid beta parameter at index 0: 1.0",
  ),
  ("adam negative eps", lambda: O.adam(0.1, eps=-1), "Invalid epsilon value: -1"),
  (
    "adamw negative weight decay",
    lambda: O.adamw(0.1, weight_decay=-1),
    "Invalid weight_decay value: -1",
  ),
  ("rmsprop negative alpha", lambda: O.rmsprop(0.1, alpha=-1), "Invalid alpha value: -1"),
  ("adagrad negative lr_decay", lambda: O.adagrad(0.1, lr_decay=-1), "Invalid lr_decay value: -1"),
  (
    "step_lr step_size 0",
    lambda: O.step_lr(0.1, 0, 0.1),
    "step_size must be a positive integer, got 0",
  ),
  (
    "cosine T_max 0",
    lambda: O.cosine_annealing_lr(0.1, 0),
    "T_max must be a positive integer, got 0",
  ),
]


@pytest.mark.parametrize(
  "call,fragment", [c[1:] for c in TORCH_MESSAGES], ids=[c[0] for c in TORCH_MESSAGES]
)
def test_bad_hyper_parameters_get_torchs_message(call, fragment):
  with pytest.raises(ValueError, match=re.escape(fragment)):
    call()
