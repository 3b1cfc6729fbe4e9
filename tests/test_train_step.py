"""The compiled train step: one program, no recompilation, finite gradients, torch's update."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from oracle import assert_close

import jaxtrain.losses as L
from jaxtrain import models, ops, optim
from jaxtrain.train_step import (
  create_train_state,
  make_epoch,
  make_eval_step,
  make_train_step,
  merge_model,
)


def _batch(seed, n=16, shape=(8, 8, 1), classes=10):
  rng = np.random.default_rng(seed)
  return (
    rng.uniform(size=(n,) + shape).astype(np.float32),
    rng.integers(0, classes, n).astype(np.int32),
  )


def _cnn():
  return models.CNN(in_channels=1, image_size=8, num_classes=10, rngs=nnx.Rngs(0))


def test_second_call_does_not_recompile_and_gradients_are_finite():
  model = _cnn()
  opt = optim.sgd(0.01)
  step = make_train_step(model, L.cross_entropy, opt)
  state = create_train_state(model, opt)
  state, m1 = step(state, _batch(0))
  assert step._cache_size() == 1
  before = jax.tree.map(np.array, state.params)
  state, m2 = step(state, _batch(1))
  state, _ = step(state, _batch(2))
  assert step._cache_size() == 1  # one compiled program for every later call
  assert int(state.step) == 3
  x3, y3 = _batch(3)
  # Compiled: op by op, the model's custom-gradient convolutions compile one small
  # program each (17 s of the suite).
  grads = jax.jit(
    jax.grad(
      lambda p: L.cross_entropy(nnx.merge(nnx.graphdef(model), p, state.model_state)(x3), y3)
    )
  )(state.params)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
  assert all(np.isfinite(float(m["loss"])) for m in (m1, m2))
  changed = jax.tree.map(lambda a, b: not np.array_equal(a, np.asarray(b)), before, state.params)
  assert all(jax.tree.leaves(changed))  # every parameter moved


def test_model_stays_usable_after_training():
  model = _cnn()
  opt = optim.sgd(0.01)
  step = make_train_step(model, L.cross_entropy, opt)
  state = create_train_state(model, opt)
  x, _ = _batch(0)
  before = np.asarray(model(x))
  for seed in range(2):
    state, _ = step(state, _batch(seed))
  np.testing.assert_array_equal(model(x), before)  # untouched, not deleted by donation


def test_old_state_is_donated():
  model = _cnn()
  opt = optim.sgd(0.01)
  step = make_train_step(model, L.cross_entropy, opt)
  state = create_train_state(model, opt)
  state, _ = step(state, _batch(0))  # compile
  old = state
  state, _ = step(state, _batch(1))
  leaf = jax.tree.leaves(old.params)[0]
  assert leaf.is_deleted()  # its buffers were reused for the new state


def test_step_equals_torch_sgd_update():
  # One SGD step on the MLP from identical weights and batch: torch 2.13.0
  # (nn.Linear, F.cross_entropy, torch.optim.SGD) gives the same parameters.
  model = models.MLP(in_features=64, hidden=32, num_classes=10, rngs=nnx.Rngs(1))
  x, y = _batch(4)
  tnet = torch.nn.Sequential(
    torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
  )
  with torch.no_grad():
    for layer, linear in zip([tnet[1], tnet[3]], [model.hidden, model.output]):
      layer.weight.copy_(torch.from_numpy(np.array(linear.kernel[...]).T))
      layer.bias.copy_(torch.from_numpy(np.array(linear.bias[...])))
  topt = torch.optim.SGD(tnet.parameters(), lr=0.1, momentum=0.9)
  for _ in range(3):
    topt.zero_grad()
    torch.nn.functional.cross_entropy(
      tnet(torch.from_numpy(x)), torch.from_numpy(y).long()
    ).backward()
    topt.step()
  opt = optim.sgd(0.1, momentum=0.9)
  step = make_train_step(model, L.cross_entropy, opt)
  state = create_train_state(model, opt)
  for _ in range(3):
    state, _ = step(state, (x, y))
  trained = merge_model(model, state)
  out = trained(x)
  assert_close(out, tnet(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_reduction_sum_scales_the_gradient():
  # 003_e24e918ed2af1c93.txt: 'sum' gives batch_size times the 'mean' gradient, so
  # sgd(lr / B) on the sum makes the update of sgd(lr) on the mean.
  model = models.SoftmaxRegression(in_features=64, num_classes=10, rngs=nnx.Rngs(2))
  x, y = _batch(5, n=32)
  results = []
  for reduction, lr in (("mean", 0.1), ("sum", 0.1 / 32)):
    opt = optim.sgd(lr)
    step = make_train_step(model, L.cross_entropy, opt, reduction=reduction)
    state, metrics = step(create_train_state(model, opt), (x, y))
    results.append((jax.tree.map(np.asarray, state.params), metrics))
  (p_mean, m_mean), (p_sum, m_sum) = results
  jax.tree.map(lambda a, b: assert_close(a, b), p_mean, p_sum)
  np.testing.assert_allclose(m_sum["loss"], 32 * m_mean["loss"], rtol=1e-6)
  np.testing.assert_allclose(m_sum["loss_sum"], m_mean["loss_sum"], rtol=1e-6)


def test_reduction_none_is_rejected():
  with pytest.raises(ValueError, match="reduction='none' is not valid for training"):
    make_train_step(_cnn(), L.cross_entropy, optim.sgd(0.1), reduction="none")


def test_scan_epoch_equals_the_per_step_loop():
  # The same batches in the same order: lax.scan over the step and a Python loop of
  # the step give the same parameters and metrics (float32 tolerance).
  model = _cnn()
  opt = optim.sgd(optim.step_lr(0.05, 2, 0.5))
  x, y = _batch(6, n=64)
  order = np.random.default_rng(0).permutation(64).reshape(4, 16)
  step = make_train_step(model, L.cross_entropy, opt)
  state = create_train_state(model, opt)
  losses = []
  for idx in order:
    state, m = step(state, (x[idx], y[idx]))
    losses.append(float(m["loss"]))
  epoch = make_epoch(model, L.cross_entropy, opt)
  scanned, totals = epoch(
    create_train_state(model, opt), jnp.asarray(x), jnp.asarray(y), jnp.asarray(order)
  )
  jax.tree.map(lambda a, b: assert_close(a, b, rtol=1e-5, atol=1e-6), scanned.params, state.params)
  assert_close(totals["batch_loss"], np.array(losses), rtol=1e-5)
  assert int(totals["count"]) == 64 and int(scanned.step) == 4


def test_eval_step_masks_padding():
  model = _cnn()
  state = create_train_state(model, optim.sgd(0.1))
  ev = make_eval_step(model, L.cross_entropy)
  x, y = _batch(7, n=8)
  full = ev(state, (x, y, np.ones(8, np.float32)))
  xp = np.concatenate([x[:5], np.zeros_like(x[:3])])
  yp = np.concatenate([y[:5], np.zeros(3, np.int32)])
  part = ev(state, (xp, yp, np.array([1, 1, 1, 1, 1, 0, 0, 0], np.float32)))
  logits = merge_model(model, state)(x[:5])
  assert_close(part["loss_sum"], L.cross_entropy(logits, y[:5], reduction="sum"))
  assert int(part["count"]) == 5 and int(full["count"]) == 8
  assert int(part["correct"]) == int(jnp.sum(jnp.argmax(logits, -1) == y[:5]))


# ------------------------------------------------- the program each platform gets


def _cifar_step(epoch=False):
  """The notes' CIFAR-10 CNN trained by SGD with momentum, and arguments to lower it with."""
  model = models.CNN(in_channels=3, image_size=32, rngs=nnx.Rngs(0))
  opt = optim.sgd(0.01, momentum=0.9)
  state = create_train_state(model, opt)
  x, y = jnp.zeros((64, 32, 32, 3)), jnp.zeros((64,), jnp.int32)
  if epoch:
    return make_epoch(model, L.cross_entropy, opt), (state, x, y, jnp.zeros((1, 64), jnp.int32))
  return make_train_step(model, L.cross_entropy, opt), (state, (x, y))


def _program(fn, args, platform):
  return fn.trace(*args).lower(lowering_platforms=(platform,)).as_text()


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
@pytest.mark.parametrize("epoch", [False, True], ids=["step", "scan-epoch"])
def test_gpu_and_tpu_get_the_plain_program(platform, epoch):
  # What a JAX expert writes for an accelerator: lax.conv_general_dilated and
  # lax.reduce_window with autodiff's gradients, the first convolution on RGB's 3
  # channels. None of the CPU forms: no folded 16-channel input, no concatenated
  # shifted slices, no evened channels, no hand-written backward convolutions.
  text = _program(*_cifar_step(epoch), platform)
  convs = [line.split(": ")[-1] for line in text.splitlines() if "stablehlo.convolution" in line]
  assert convs[0] == ("(tensor<64x32x32x3xf32>, tensor<5x5x3x32xf32>) -> tensor<64x32x32x32xf32>")
  assert len(convs) == 8  # 3 forward, 2 input gradients (not the image's), 3 kernel gradients
  assert "x16xf32>" not in text and "x4xf32>" not in text
  assert text.count("stablehlo.concatenate") == 0
  assert text.count("stablehlo.transpose") == 2  # autodiff's own, in two kernel gradients
  assert text.count("stablehlo.reduce_window") == 3
  assert text.count("stablehlo.select_and_scatter") == 3


@pytest.mark.parametrize("epoch", [False, True], ids=["step", "scan-epoch"])
def test_cpu_program_is_the_cpu_forms_program(epoch):
  # Dispatching by platform leaves the CPU's compiled program exactly the program of
  # the CPU forms traced directly (ops.use_forms), up to value names.

  fn, args = _cifar_step(epoch)
  text = _program(fn, args, "cpu")
  assert "(tensor<64x32x32x16xf32>, tensor<5x1x16x32xf32>)" in text  # RGB folded by rows
  assert text.count("stablehlo.concatenate") == 10 and "stablehlo.reduce_window" not in text

  def compiled(fn):  # the instructions, without value names and source locations
    hlo = fn.lower(*args).compile().as_text()
    lines = [line for line in hlo.splitlines() if re.match(r"\s+(ROOT )?%", line)]
    return sorted(re.sub(r"%[\w.\-]+|, metadata=\{[^}]*\}", "%", line) for line in lines)

  dispatched = compiled(fn)
  with ops.use_forms("cpu"):
    direct = compiled(_cifar_step(epoch)[0])
  assert dispatched == direct


def test_cpu_and_plain_steps_agree():
  # The two programs, both run on this CPU: the same loss, metrics and update.
  model = _cnn()
  opt = optim.sgd(0.05, momentum=0.9)
  x, y = _batch(8, n=32)
  out = {}
  for forms in ops.FORMS:
    with ops.use_forms(forms):
      step = make_train_step(model, L.cross_entropy, opt)
      out[forms] = step(create_train_state(model, opt), (x, y))
  (s_cpu, m_cpu), (s_plain, m_plain) = out["cpu"], out["plain"]
  jax.tree.map(lambda a, b: assert_close(a, b, rtol=1e-5, atol=1e-6), s_cpu.params, s_plain.params)
  assert_close(m_cpu["loss"], m_plain["loss"], rtol=1e-6)
  assert int(m_cpu["correct"]) == int(m_plain["correct"])


class _NanScores(nnx.Module):
  """A linear model whose scores are NaN for the rows marked by a negative first feature,
  with finite gradients for its parameters (the NaN does not depend on them)."""

  def __init__(self):
    self.linear = nnx.Linear(4, 3, rngs=nnx.Rngs(0))

  def __call__(self, x):
    return self.linear(x) + jnp.where(x[:, :1] < 0, jnp.nan, 0.0)


def test_nan_policy_sees_nan_logits_that_the_loss_skips():
  # multi_margin_loss skips a NaN score's terms, as torch's kernel does: the loss and the
  # gradients stay finite, and only the logits show that something went wrong.
  model, opt = _NanScores(), optim.sgd(0.1)
  x = np.ones((4, 4), np.float32)
  x[2, 0] = -1.0
  y = np.array([0, 1, 2, 0], np.int32)
  step = make_train_step(model, L.multi_margin_loss, opt, nan_policy="stop")
  state, metrics = step(create_train_state(model, opt), (x, y))
  assert np.isfinite(float(metrics["loss"]))
  assert all(np.isfinite(np.asarray(p)).all() for p in jax.tree.leaves(state.params))
  assert int(metrics["nonfinite"]) == 1


def test_make_train_step_rejects_an_unknown_nan_policy():
  with pytest.raises(
    ValueError,
    match=re.escape(
      "nan_policy='ignore' is not valid; expected one of stop, skip (or None: no check)"
    ),
  ):
    make_train_step(_cnn(), L.cross_entropy, optim.sgd(0.1), nan_policy="ignore")
