"""Parameter groups (jaxtrain.optim.param_groups) against torch 2.13.0's param groups.

Reference: torch 2.13.0 ``torch.optim.Adam`` / ``torch.optim.SGD`` given a list
of parameter-group dicts, as 001_*.txt passes two models' parameters to one Adam
(``Adam([{'params': model.parameters()}, {'params': gru.parameters()}], lr=0.01)``),
here with different hyper-parameters per group.

Protocol as in test_optim_optimizers.py: torch computes the gradient at its
parameters each step and both optimizers get that same gradient (which isolates
the optimizer from float32 noise in the gradient); 100 steps. Tolerance:
``rtol=1e-5``, ``atol=1e-6 * max(1, max|p|)`` (``oracle.assert_close``).
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

from jaxtrain.optim import adam, param_groups, sgd, step_lr

STEPS = 100


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def two_models(seed=0):
  """001's setting: a model (MLP 784-256-10) and a second net (a 10-10 head) trained together."""
  torch.manual_seed(seed)
  model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
  head = torch.nn.Sequential(torch.nn.Tanh(), torch.nn.Linear(10, 10))
  rng = np.random.default_rng(seed)
  x = torch.from_numpy(rng.standard_normal((32, 784)).astype(np.float32))
  y = torch.from_numpy(rng.integers(0, 10, 32))
  return model, head, x, y


def as_tree(model, head, grads=False):
  """torch modules -> {'model': {...}, 'head': {...}}; Linear weights transposed to (in, out)."""
  get = (lambda t: t.grad) if grads else (lambda t: t.detach())
  return {
    "model": {
      "w1": jnp.asarray(get(model[0].weight).numpy().T),
      "b1": jnp.asarray(get(model[0].bias).numpy()),
      "w2": jnp.asarray(get(model[2].weight).numpy().T),
      "b2": jnp.asarray(get(model[2].bias).numpy()),
    },
    "head": {
      "w": jnp.asarray(get(head[1].weight).numpy().T),
      "b": jnp.asarray(get(head[1].bias).numpy()),
    },
  }


def run_both(opt, torch_opt, model, head, x, y, scheduler=None, steps_per_epoch=1):
  params = as_tree(model, head)
  initial = params
  state = opt.init(params)

  @jax.jit
  def update(grads, state, params):
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  for k in range(STEPS):
    torch_opt.zero_grad()
    torch.nn.functional.cross_entropy(head(model(x)), y).backward()
    params, state = update(as_tree(model, head, grads=True), state, params)
    torch_opt.step()
    if scheduler is not None and (k + 1) % steps_per_epoch == 0:
      scheduler.step()
  return initial, params, as_tree(model, head)


def assert_trees_close(actual, expected):
  for path, leaf in jax.tree_util.tree_leaves_with_path(actual):
    expected_leaf = expected
    for key in path:
      expected_leaf = expected_leaf[key.key]
    assert_close(leaf, expected_leaf, what=jax.tree_util.keystr(path))


def test_two_models_one_adam_with_groups():
  """Adam([{model, weight_decay=0.1}, {head, lr=1e-3, amsgrad=True}], lr=1e-2)."""
  model, head, x, y = two_models()
  torch_opt = torch.optim.Adam(
    [
      {"params": model.parameters(), "weight_decay": 0.1},
      {"params": head.parameters(), "lr": 1e-3, "amsgrad": True},
    ],
    lr=1e-2,
  )
  opt = param_groups(
    {"model": "model", "head": "head"},  # a prefix of the parameter tree
    {"model": adam(lr=1e-2, weight_decay=0.1), "head": adam(lr=1e-3, amsgrad=True)},
  )
  initial, params, expected = run_both(opt, torch_opt, model, head, x, y)
  assert_trees_close(params, expected)
  # Both groups moved.
  assert float(jnp.max(jnp.abs(expected["model"]["b2"] - initial["model"]["b2"]))) > 1e-3
  assert float(jnp.max(jnp.abs(expected["head"]["b"] - initial["head"]["b"]))) > 1e-3


def test_groups_share_a_scheduler_like_torch():
  """One StepLR on a two-group optimizer scales each group's own lr (per epoch of 10 updates)."""
  model, head, x, y = two_models(seed=1)
  torch_opt = torch.optim.Adam(
    [{"params": model.parameters()}, {"params": head.parameters(), "lr": 3e-2}], lr=1e-2
  )
  scheduler = torch.optim.lr_scheduler.StepLR(torch_opt, step_size=3, gamma=0.5)
  opt = param_groups(
    {"model": "model", "head": "head"},
    {
      "model": adam(lr=step_lr(1e-2, 3, 0.5, steps_per_epoch=10)),
      "head": adam(lr=step_lr(3e-2, 3, 0.5, steps_per_epoch=10)),
    },
  )
  _, params, expected = run_both(opt, torch_opt, model, head, x, y, scheduler, steps_per_epoch=10)
  assert_trees_close(params, expected)


def test_no_weight_decay_on_biases_and_a_frozen_part():
  """Labels from a function of the tree: weights decay, biases do not, the head is frozen.

  torch: SGD([{weights, weight_decay=0.1}, {biases}], lr=0.05, momentum=0.9), the
  head's parameters not given to the optimizer.
  """
  model, head, x, y = two_models(seed=2)
  weights = [model[0].weight, model[2].weight]
  biases = [model[0].bias, model[2].bias]
  torch_opt = torch.optim.SGD(
    [{"params": weights, "weight_decay": 0.1}, {"params": biases}], lr=0.05, momentum=0.9
  )

  def labels(params):
    def label(path, _):
      if path[0].key == "head":
        return "frozen"
      return "bias" if path[-1].key.startswith("b") else "weight"

    return jax.tree_util.tree_map_with_path(label, params)

  opt = param_groups(
    labels,
    {
      "weight": sgd(lr=0.05, momentum=0.9, weight_decay=0.1),
      "bias": sgd(lr=0.05, momentum=0.9),
      "frozen": optax.set_to_zero(),
    },
  )
  initial, params, expected = run_both(opt, torch_opt, model, head, x, y)
  assert_trees_close(params, expected)
  assert_trees_close(params["head"], initial["head"])


def test_label_without_an_optimizer_is_an_error():
  with pytest.raises(ValueError, match="have no optimizer"):
    param_groups({"model": "model", "head": "gru"}, {"model": adam(), "head": adam()})


@pytest.mark.parametrize(
  ("labels", "optimizers", "error", "message"),
  [
    (
      {"a": "x"},
      [adam()],
      TypeError,
      "param_groups: optimizers must be a mapping from label to optimizer, got list",
    ),
    ({"a": "x"}, {}, ValueError, "param_groups: optimizers is empty"),
    (
      {"a": "x"},
      {"x": adam},
      TypeError,
      "param_groups: optimizers['x'] must be an optax.GradientTransformation (e.g. "
      "jaxtrain.optim.adam()), got function",
    ),
    (
      {"a": "x"},
      {"x": 0.1},
      TypeError,
      "param_groups: optimizers['x'] must be an optax.GradientTransformation",
    ),
    (
      None,
      {"x": adam()},
      TypeError,
      "param_groups: labels must be a pytree of labels or a function of the parameters, got None",
    ),
    ({"a": None}, {"x": adam()}, ValueError, "param_groups: labels has no leaves"),
  ],
  ids=["list of optimizers", "empty", "factory", "number", "labels None", "no labels"],
)
def test_bad_arguments(labels, optimizers, error, message):
  with pytest.raises(error, match=re.escape(message)):
    param_groups(labels, optimizers)
