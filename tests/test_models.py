"""The notes' models against their torch definitions (torch 2.13.0, CPU).

Each torch model below is copied from its note; weights are copied torch -> NNX
and the forward passes (and the CNN's gradients) compared.
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from flax import nnx
from notes_torch import TorchMLP, TorchRNN, Tudui, torch_regression, torch_softmax_regression
from torch import nn

from jaxtrain import models
from jaxtrain.models import count_params

# --- the torch models, as written in the notes --------------------------------------


def torch_count(model):
  return sum(p.numel() for p in model.parameters())


# --- weight copying torch -> NNX ------------------------------------------------------


def _t(a):
  return jnp.asarray(a.detach().numpy())


def _copy_linear(dst: nnx.Linear, src: nn.Linear):
  dst.kernel[...] = _t(src.weight).T  # torch (out, in) -> (in, out)
  dst.bias[...] = _t(src.bias)


def _copy_conv(dst, src: nn.Conv2d):
  dst.kernel[...] = _t(src.weight.permute(2, 3, 1, 0))  # OIHW -> HWIO
  dst.bias[...] = _t(src.bias)


def _copy_cnn(dst: models.CNN, src: Tudui):
  seq = src.model1
  _copy_conv(dst.conv1, seq[0])
  _copy_conv(dst.conv2, seq[2])
  _copy_conv(dst.conv3, seq[4])
  # torch flattens (C, H, W), we flatten (H, W, C): permute fc1's input columns.
  w = seq[7].weight  # (64, C*H*W)
  side = int(math.isqrt(w.shape[1] // 64))
  w_hwc = w.reshape(64, 64, side, side).permute(0, 2, 3, 1).reshape(64, -1)
  dst.fc1.kernel[...] = _t(w_hwc).T
  dst.fc1.bias[...] = _t(seq[7].bias)
  _copy_linear(dst.fc2, seq[8])


def _copy_rnn(dst: models.RNNClassifier, src: nn.RNN):
  dst.weight_ih[...] = _t(src.weight_ih_l0).T
  dst.weight_hh[...] = _t(src.weight_hh_l0).T
  dst.bias_ih[...] = _t(src.bias_ih_l0)
  dst.bias_hh[...] = _t(src.bias_hh_l0)


def _nchw(x):
  return torch.tensor(np.asarray(x)).permute(0, 3, 1, 2)


# --- parameter counts ---------------------------------------------------------------


def _abstract(make):
  # Shapes only (nnx.eval_shape): counting needs no random numbers, and skips the
  # eager initialisation's per-shape compiles.
  return nnx.eval_shape(make)


@pytest.mark.parametrize(
  "in_channels,image_size,fc_in,expected",
  [
    (3, 32, 1024, 145_578),  # the note's CIFAR-10 net: 145,578 (torch's count)
    (1, 28, 576, None),  # MNIST: 28 -> 14 -> 7 -> 3, 64 * 3 * 3 = 576
    (1, 8, 64, None),  # scikit-learn digits: 8 -> 4 -> 2 -> 1
  ],
)
def test_cnn_param_count(in_channels, image_size, fc_in, expected):
  model = _abstract(
    lambda: models.CNN(in_channels=in_channels, image_size=image_size, rngs=nnx.Rngs(0))
  )
  n = torch_count(Tudui(in_channels, fc_in))
  assert count_params(model) == n
  if expected is not None:
    assert n == expected


def test_other_param_counts():
  count = lambda cls: count_params(_abstract(lambda: cls(rngs=nnx.Rngs(0))))
  assert count(models.MLP) == torch_count(TorchMLP()) == 203_530
  assert count(models.RNNClassifier) == torch_count(TorchRNN(28, 128, 10)) == 21_514
  assert count(models.RegressionNet) == torch_count(torch_regression()) == 61
  assert count(models.SoftmaxRegression) == torch_count(torch_softmax_regression()) == 7_850


def test_count_params_concrete_model():
  assert (
    count_params(models.RegressionNet(in_features=3, hidden=2, rngs=nnx.Rngs(0)))
    == 3 * 2 + 2 + 2 + 1
  )


# --- forward passes against torch with copied weights --------------------------------


@pytest.mark.parametrize("in_channels,image_size,fc_in", [(3, 32, 1024), (1, 8, 64)])
def test_cnn_matches_torch(in_channels, image_size, fc_in):
  torch.manual_seed(0)
  ref = Tudui(in_channels, fc_in).double()
  model = models.CNN(in_channels=in_channels, image_size=image_size, rngs=nnx.Rngs(0))
  _copy_cnn(model, ref)
  x = jax.random.uniform(jax.random.key(0), (4, image_size, image_size, in_channels))
  y = jnp.array([0, 3, 9, 1])
  # torch 2.13.0, float64: logits and the gradient of the mean cross-entropy.
  logits_t = ref(_nchw(x).double())
  nn.functional.cross_entropy(logits_t, torch.tensor(np.asarray(y), dtype=torch.long)).backward()

  def loss_fn(model):
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

  logits, grads = nnx.jit(lambda m: (m(x), nnx.grad(loss_fn)(m)))(model)
  assert logits.shape == (4, 10)
  np.testing.assert_allclose(logits, logits_t.detach().numpy(), rtol=1e-5, atol=1e-5)
  seq = ref.model1
  for ours, conv in [(grads.conv1, seq[0]), (grads.conv2, seq[2]), (grads.conv3, seq[4])]:
    g = conv.weight.grad.permute(2, 3, 1, 0).numpy()
    np.testing.assert_allclose(ours.kernel[...], g, rtol=1e-4, atol=1e-5 * np.abs(g).max())
    np.testing.assert_allclose(ours.bias[...], conv.bias.grad.numpy(), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(
    grads.fc2.kernel[...], seq[8].weight.grad.numpy().T, rtol=1e-4, atol=1e-6
  )


def test_mlp_matches_torch():
  torch.manual_seed(0)
  ref = TorchMLP()
  model = models.MLP(rngs=nnx.Rngs(0))
  _copy_linear(model.hidden, ref.hidden)
  _copy_linear(model.output, ref.output)
  x = jax.random.normal(jax.random.key(0), (5, 28, 28, 1))
  expected = ref(torch.tensor(np.asarray(x)).reshape(5, 784)).detach().numpy()  # torch 2.13.0
  np.testing.assert_allclose(model(x), expected, rtol=1e-5, atol=1e-5)  # images are flattened
  np.testing.assert_allclose(model(x.reshape(5, 784)), expected, rtol=1e-5, atol=1e-5)


def test_regression_and_softmax_regression_match_torch():
  torch.manual_seed(0)
  reg_t, soft_t = torch_regression(), torch_softmax_regression()
  reg, soft = models.RegressionNet(rngs=nnx.Rngs(0)), models.SoftmaxRegression(rngs=nnx.Rngs(1))
  _copy_linear(reg.linear1, reg_t[0])
  _copy_linear(reg.linear2, reg_t[2])
  _copy_linear(soft.linear, soft_t[1])
  x = jax.random.normal(jax.random.key(0), (6, 10))
  out = reg(x)
  assert out.shape == (6, 1)
  np.testing.assert_allclose(
    out, reg_t(torch.tensor(np.asarray(x))).detach().numpy(), rtol=1e-5, atol=1e-6
  )
  img = jax.random.uniform(jax.random.key(1), (3, 28, 28, 1))
  expected = soft_t(_nchw(img)).detach().numpy()  # nn.Flatten on (N, 1, 28, 28)
  np.testing.assert_allclose(soft(img), expected, rtol=1e-5, atol=1e-5)


def test_rnn_matches_torch():
  input_size, hidden, steps = 28, 128, 28  # the note's sizes: MNIST rows
  torch.manual_seed(0)
  ref = TorchRNN(input_size, hidden, 10)
  model = models.RNNClassifier(input_size=input_size, hidden_size=hidden, rngs=nnx.Rngs(0))
  _copy_rnn(model, ref.rnn)
  _copy_linear(model.fc, ref.fc)
  x = jax.random.normal(jax.random.key(0), (4, steps, input_size))
  xt = torch.tensor(np.asarray(x))
  # torch 2.13.0 nn.RNN via the note's module, and an explicit step-by-step loop of
  # torch's tanh recurrence with the same weights.
  expected = ref(xt).detach().numpy()
  h = torch.zeros(4, hidden)
  r = ref.rnn
  for t in range(steps):
    h = torch.tanh(xt[:, t] @ r.weight_ih_l0.T + r.bias_ih_l0 + h @ r.weight_hh_l0.T + r.bias_hh_l0)
  np.testing.assert_allclose(ref.fc(h).detach().numpy(), expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(model(x), expected, rtol=1e-5, atol=1e-5)


def test_rnn_reads_image_rows():
  model = models.RNNClassifier(rngs=nnx.Rngs(0))
  img = jax.random.uniform(jax.random.key(0), (3, 28, 28, 1))
  assert model(img).shape == (3, 10)
  np.testing.assert_array_equal(model(img), model(img[..., 0]))  # the note's reshape(-1, 28, 28)
  with pytest.raises(ValueError, match="RNNClassifier"):
    model(jnp.zeros((3, 28, 27)))


@pytest.mark.parametrize(
  "model_fn,x_shape,out_shape",
  [
    (lambda r: models.CNN(rngs=r), (2, 32, 32, 3), (2, 10)),
    (
      lambda r: models.CNN(in_channels=1, image_size=28, num_classes=7, rngs=r),
      (2, 28, 28, 1),
      (2, 7),
    ),
    (lambda r: models.CNN(in_channels=1, image_size=8, rngs=r), (2, 8, 8, 1), (2, 10)),
    (lambda r: models.MLP(in_features=64, hidden=32, rngs=r), (2, 8, 8, 1), (2, 10)),
    (lambda r: models.MLP(rngs=r), (2, 784), (2, 10)),
    (lambda r: models.RNNClassifier(input_size=24, num_classes=3, rngs=r), (2, 8, 8, 3), (2, 3)),
    (lambda r: models.SoftmaxRegression(in_features=64, rngs=r), (2, 8, 8, 1), (2, 10)),
    (lambda r: models.RegressionNet(in_features=4, hidden=3, rngs=r), (2, 4), (2, 1)),
  ],
)
def test_forward_shapes(model_fn, x_shape, out_shape):
  assert model_fn(nnx.Rngs(0))(jnp.ones(x_shape)).shape == out_shape


def test_cnn_rejects_wrong_image_size():
  with pytest.raises(ValueError, match="CNN expects"):
    models.CNN(rngs=nnx.Rngs(0))(jnp.zeros((1, 28, 28, 3)))


# --- initialisation ---------------------------------------------------------------------


def _check_uniform(a, bound, stats):
  a = np.asarray(a)
  assert np.abs(a).max() <= bound
  if stats:  # U(-b, b) has std b / sqrt(3); big layers only, for a tight check
    assert abs(a.std() - bound / math.sqrt(3)) < 0.02 * bound
    assert abs(a.mean()) < 0.02 * bound


def test_init_follows_torch_defaults():
  rngs = nnx.Rngs(0)
  cnn = models.CNN(rngs=rngs)
  for conv, c_in in [(cnn.conv1, 3), (cnn.conv2, 32), (cnn.conv3, 32)]:
    bound = 1 / math.sqrt(c_in * 25)  # kaiming_uniform(a=sqrt(5)): 1 / sqrt(fan_in)
    _check_uniform(conv.kernel[...], bound, stats=c_in == 32)
    _check_uniform(conv.bias[...], bound, stats=False)
  _check_uniform(cnn.fc1.kernel[...], 1 / 32, stats=True)
  _check_uniform(cnn.fc1.bias[...], 1 / 32, stats=False)
  mlp = models.MLP(rngs=rngs)
  _check_uniform(mlp.hidden.kernel[...], 1 / 28, stats=True)
  _check_uniform(mlp.output.kernel[...], 1 / 16, stats=True)
  rnn = models.RNNClassifier(rngs=rngs)
  for p in (rnn.weight_ih, rnn.weight_hh, rnn.bias_ih, rnn.bias_hh):
    _check_uniform(
      p[...], 1 / math.sqrt(128), stats=p is rnn.weight_hh
    )  # nn.RNN: U(+-1/sqrt(hidden))
  reg = models.RegressionNet(rngs=rngs)
  _check_uniform(reg.linear1.kernel[...], 1 / math.sqrt(10), stats=False)
  soft = models.SoftmaxRegression(rngs=rngs)
  w = np.asarray(soft.linear.kernel[...])
  assert abs(w.std() - 0.01) < 0.0005 and abs(w.mean()) < 0.0005  # d2l: normal(0, 0.01)
  np.testing.assert_array_equal(soft.linear.bias[...], 0.0)


def test_init_is_seeded():
  a, b, c = (models.CNN(rngs=nnx.Rngs(s)) for s in (0, 0, 1))
  np.testing.assert_array_equal(a.conv1.kernel[...], b.conv1.kernel[...])
  assert not np.array_equal(a.conv1.kernel[...], c.conv1.kernel[...])
  assert not np.array_equal(a.conv1.kernel[...], a.conv2.kernel[..., :3, :])


# --- training in a compiled loop ---------------------------------------------------------


def test_cnn_train_step_scan_matches_loop_and_compiles_once():
  graphdef, params = nnx.split(models.CNN(in_channels=1, image_size=8, rngs=nnx.Rngs(0)))
  xs = jax.random.uniform(jax.random.key(0), (3, 4, 8, 8, 1))
  ys = jax.random.randint(jax.random.key(1), (3, 4), 0, 10)
  traces = []

  def step(params, batch):
    x, y = batch

    def loss_fn(p):
      return optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p)(x), y).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    return jax.tree.map(lambda p, g: p - 0.1 * g, params, grads), (loss, grads)

  @jax.jit
  def jit_step(params, batch):
    traces.append(1)
    return step(params, batch)

  p_loop, losses = params, []
  for i in range(3):
    p_loop, (loss, grads) = jit_step(p_loop, (xs[i], ys[i]))
    losses.append(loss)
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))
  assert len(traces) == 1
  p_scan, (scan_losses, _) = jax.jit(lambda p, xs, ys: jax.lax.scan(step, p, (xs, ys)))(
    params, xs, ys
  )
  np.testing.assert_allclose(scan_losses, np.array(losses), rtol=1e-5)
  for a, b in zip(jax.tree.leaves(p_scan), jax.tree.leaves(p_loop)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# Bad input to the models: the message names the argument, the shape and what was expected.
r = nnx.Rngs(0)
CNN1 = models.CNN(in_channels=1, image_size=8, rngs=r)
CNN3 = models.CNN(in_channels=3, image_size=32, rngs=r)
MLP = models.MLP(in_features=64, hidden=8, rngs=r)
SOFTMAX = models.SoftmaxRegression(in_features=64, rngs=r)
RNN = models.RNNClassifier(input_size=28, hidden_size=8, rngs=r)
REG = models.RegressionNet(in_features=10, rngs=r)

BAD_INPUT = [
  (
    "cnn without channel axis",
    lambda: CNN1(jnp.zeros((5, 8, 8))),
    "CNN expects images x of shape (N, 8, 8, 1) (image_size=8, in_channels=1, channels last), "
    "got shape (5, 8, 8); the channel axis is missing: use x[..., None]",
  ),
  (
    "cnn wrong channel count",
    lambda: CNN1(jnp.zeros((5, 8, 8, 3))),
    "got shape (5, 8, 8, 3); 3 channels, but in_channels=1",
  ),
  (
    "cnn channels first",
    lambda: CNN3(jnp.zeros((2, 3, 32, 32))),
    "got shape (2, 3, 32, 32); this looks channels-first (NCHW): use x.transpose(0, 2, 3, 1)",
  ),
  (
    "cnn wrong image size",
    lambda: CNN3(jnp.zeros((2, 28, 28, 3))),
    "CNN expects images x of shape (N, 32, 32, 3)",
  ),
  (
    "mlp wrong feature count",
    lambda: MLP(jnp.zeros((4, 784))),
    "MLP: x of shape (4, 784) has 784 features per example; expected (N, 64) or (N, H, W, C) "
    "with H * W * C == 64 (in_features=64)",
  ),
  (
    "mlp wrong image size",
    lambda: MLP(jnp.zeros((4, 28, 28, 1))),
    "MLP: x of shape (4, 28, 28, 1) has 784 features per example",
  ),
  (
    "mlp one example without batch axis",
    lambda: MLP(jnp.zeros(64)),
    "MLP: x must be a batch (N, 64) or (N, H, W, C) with H * W * C == 64 (in_features=64), got "
    "shape (64,) (one example? add the batch axis: x[None])",
  ),
  (
    "softmax regression wrong features",
    lambda: SOFTMAX(jnp.zeros((4, 63))),
    "SoftmaxRegression: x of shape (4, 63) has 63 features per example; expected (N, 64)",
  ),
  (
    "rnn wrong rank",
    lambda: RNN(jnp.zeros((4, 28))),
    "RNNClassifier expects x of shape (N, T, 28) or images (N, H, W, C) with W * C == 28 "
    "(input_size=28), got shape (4, 28)",
  ),
  (
    "rnn wrong features per step",
    lambda: RNN(jnp.zeros((4, 28, 27))),
    "RNNClassifier expects x of shape (N, T, 28)",
  ),
  (
    "rnn images with channels",
    lambda: RNN(jnp.zeros((4, 28, 28, 3))),
    "(input_size=28), got shape (4, 28, 28, 3)",
  ),
  (
    "regression net wrong features",
    lambda: REG(jnp.zeros((4, 3))),
    "RegressionNet: x must have shape (N, 10) (in_features=10), got shape (4, 3)",
  ),
  (
    "cnn zero channels",
    lambda: models.CNN(in_channels=0, rngs=nnx.Rngs(0)),
    "CNN: in_channels must be a positive integer, got 0",
  ),
  (
    "cnn float image size",
    lambda: models.CNN(image_size=32.0, rngs=nnx.Rngs(0)),
    "CNN: image_size must be a positive integer, got 32.0",
  ),
  (
    "mlp zero hidden",
    lambda: models.MLP(hidden=0, rngs=nnx.Rngs(0)),
    "MLP: hidden must be a positive integer, got 0",
  ),
  (
    "rnn negative hidden",
    lambda: models.RNNClassifier(hidden_size=-1, rngs=nnx.Rngs(0)),
    "RNNClassifier: hidden_size must be a positive integer, got -1",
  ),
  (
    "softmax regression no classes",
    lambda: models.SoftmaxRegression(num_classes=0, rngs=nnx.Rngs(0)),
    "SoftmaxRegression: num_classes must be a positive integer, got 0",
  ),
  (
    "regression net bool features",
    lambda: models.RegressionNet(in_features=True, rngs=nnx.Rngs(0)),
    "RegressionNet: in_features must be a positive integer, got True",
  ),
]


@pytest.mark.parametrize("call,fragment", [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_input_names_what_was_expected(call, fragment):
  with pytest.raises(ValueError, match=re.escape(fragment)):
    call()
