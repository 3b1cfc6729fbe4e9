"""Mixed precision (jaxtrain.amp and the steps' ``precision``) against torch.autocast on the CPU.

Reference: torch 2.13.0, ``torch.autocast("cpu", dtype=torch.bfloat16)`` around the forward
pass and the loss, backward outside it (torch's AMP recipe), on the notes' models with
the same weights (``interop.from_torch_state_dict``).

Tolerances: bfloat16 keeps 8 significant bits, so one rounding is up to 2**-8 (0.4 %)
relative. Logits (one bf16 rounding of the same sums, in another order) must agree to
one bf16 unit in the last place; gradients pass through a few bf16 roundings: 2 % of
each gradient's largest entry (measured: up to 1.3 %, MLP).
"""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from notes_torch import TorchMLP, Tudui

import jaxtrain.losses as L
from jaxtrain import amp, interop, loop, models, optim
from jaxtrain.train_step import create_train_state, make_train_step


def _forward(model, x, precision):
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def logits(params):
    params, images = amp.autocast(params, jnp.asarray(x), precision)
    return nnx.merge(graphdef, params, rest)(images)

  return graphdef, params, rest, logits


def test_cnn_logits_are_torch_autocasts_to_one_bf16_ulp():
  rng = np.random.default_rng(0)
  x = rng.random((16, 8, 8, 3), np.float32)
  torch.manual_seed(0)
  net = Tudui(fc_in=64)  # 8x8 images
  model = interop.from_torch_state_dict(
    models.CNN(in_channels=3, image_size=8, rngs=nnx.Rngs(0)), net.state_dict()
  )
  with torch.autocast("cpu", dtype=torch.bfloat16):
    expected = net(torch.from_numpy(x).permute(0, 3, 1, 2))
  _, params, _, logits = _forward(model, x, "bf16")
  got = logits(params)
  assert got.dtype == jnp.bfloat16 and expected.dtype == torch.bfloat16
  got, expected = np.asarray(got.astype(jnp.float32)), expected.float().detach().numpy()
  ulp = 2.0 ** (np.floor(np.log2(np.maximum(np.abs(expected), 1e-30))) - 7)
  assert np.all(np.abs(got - expected) <= ulp), np.max(np.abs(got - expected) / ulp)


def test_mlp_loss_and_gradients_match_torch_autocast():
  rng = np.random.default_rng(0)
  x, y = rng.random((32, 784), np.float32), rng.integers(0, 10, 32)
  torch.manual_seed(0)
  net = TorchMLP()
  model = interop.from_torch_state_dict(models.MLP(rngs=nnx.Rngs(0)), net.state_dict())
  with torch.autocast("cpu", dtype=torch.bfloat16):
    loss_t = torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y).long())
  assert loss_t.dtype == torch.float32  # cross_entropy is on autocast's float32 list
  loss_t.backward()
  graphdef, params, rest, logits = _forward(model, x, "bf16")

  def loss(params):
    return L.cross_entropy(amp.float32_logits(logits(params)), jnp.asarray(y))

  value, grads = jax.value_and_grad(loss)(params)
  assert value.dtype == jnp.float32
  np.testing.assert_allclose(float(value), loss_t.item(), rtol=1e-4)
  got = interop.to_torch_state_dict(nnx.merge(graphdef, grads, rest))
  for name, p in net.named_parameters():
    assert got[name].dtype == torch.float32  # float32 gradients of float32 parameters
    scale = float(p.grad.abs().max())
    np.testing.assert_allclose(
      got[name].numpy(), p.grad.numpy(), rtol=0, atol=0.02 * scale, err_msg=name
    )


def _cnn_step(precision, optimizer=None):
  model = models.CNN(in_channels=3, image_size=8, rngs=nnx.Rngs(0))
  opt = optimizer or optim.sgd(0.05, momentum=0.9)
  step = make_train_step(model, L.cross_entropy, opt, precision=precision, image_max=255)
  rng = np.random.default_rng(0)
  batch = (
    rng.integers(0, 256, (16, 8, 8, 3)).astype(np.uint8),
    rng.integers(0, 10, 16).astype(np.int32),
  )
  return step, create_train_state(model, opt), batch


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
@pytest.mark.parametrize("precision,low", [("bf16", "bf16"), ("fp16", "f16")])
def test_accelerators_run_convolutions_and_matmuls_low_and_the_loss_float32(
  precision, low, platform
):
  # torch.autocast's lists: conv and linear in the low precision, softmax / log-softmax
  # (the loss's exp and sums) in float32. (The CPU program computes the same roundings
  # with float32 arithmetic, as XLA:CPU does for every low-precision convolution: see
  # ops._with_bias; its values are compared with torch's above.)
  step, state, batch = _cnn_step(precision)
  text = step.trace(state, batch).lower(lowering_platforms=(platform,)).as_text()
  heavy = [
    line for line in text.splitlines() if re.search(r"stablehlo\.(convolution|dot_general)", line)
  ]
  assert len(heavy) == 8 + 6  # the convolutions of test_train_step, 2 linear layers x 3
  for line in heavy:
    types = line.split(" : ")[-1]
    assert f"x{low}>" in types and "xf32>" not in types, line
  exps = [line.split(" : ")[-1] for line in text.splitlines() if "stablehlo.exponential" in line]
  assert exps and all("f32>" in t for t in exps), exps


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_parameters_optimizer_state_and_loss_stay_float32(precision):
  step, state, batch = _cnn_step(precision)
  state, metrics = step(state, batch)
  assert {x.dtype for x in jax.tree.leaves((state.params, state.opt_state))} <= {
    jnp.dtype(jnp.float32),
    jnp.dtype(jnp.int32),
  }
  assert metrics["loss"].dtype == jnp.float32 and np.isfinite(float(metrics["loss"]))


def test_bf16_recipe_ends_within_a_point_of_float32():
  # The default recipe (000_dc5555055295abc4.txt's CNN, SGD, StepLR, 20 epochs) on the
  # offline digits, in float32 and in bf16: the final test accuracy within 1 point.
  base = dataclasses.replace(loop.Config(), scan_epoch=True, progress="quiet")
  _, f32 = loop.fit(base, log=lambda line: None)
  _, bf16 = loop.fit(dataclasses.replace(base, precision="bf16"), log=lambda line: None)
  assert f32[-1].test_acc > 0.9
  assert abs(bf16[-1].test_acc - f32[-1].test_acc) <= 0.01, (f32[-1], bf16[-1])


def test_fp16_step_scales_the_loss_and_skips_overflowing_updates():
  # torch's GradScaler recipe in one program: the loss times the scale is
  # differentiated; an update whose scaled gradient overflows float16 is skipped
  # (parameters unchanged) and the scale halves, until the gradients fit.
  opt = optim.grad_scaler(optim.sgd(0.05, momentum=0.9), init_scale=2.0**40)
  step, state, batch = _cnn_step("fp16", opt)
  before = jax.tree.map(np.asarray, state.params)
  state, metrics = step(state, batch)
  assert int(metrics["scaler_skipped"]) == 1 and float(optim.loss_scale(state.opt_state)) == 2.0**39
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state.params)):
    np.testing.assert_array_equal(a, np.asarray(b))
  skipped = [1]
  while skipped[-1] and len(skipped) < 40:
    state, metrics = step(state, batch)
    skipped.append(int(metrics["scaler_skipped"]))
  assert skipped[-1] == 0 and float(metrics["loss"]) > 0  # an update applied at last
  assert float(optim.loss_scale(state.opt_state)) == 2.0 ** (40 - len(skipped) + 1)
  moved = [
    not np.array_equal(a, np.asarray(b))
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state.params))
  ]
  assert all(moved)


def test_fp16_recipe_trains_with_a_grad_scaler():
  config = dataclasses.replace(loop.Config(), epochs=3, precision="fp16", progress="quiet")
  state, results = loop.fit(config, log=lambda line: None)
  assert float(optim.loss_scale(state.opt_state)) == 2.0**16  # torch's init_scale, no overflow
  assert results[-1].test_acc > 0.5 and results[-1].train_loss < results[0].train_loss


def test_unknown_precision_names_the_choices():
  with pytest.raises(
    ValueError, match="precision='fp8' is not valid; expected one of float32, bf16, fp16"
  ):
    make_train_step(models.MLP(rngs=nnx.Rngs(0)), L.cross_entropy, optim.sgd(0.1), precision="fp8")
