"""torch <-> jaxtrain interop (jaxtrain.interop) against torch 2.13.0 (CPU).

References: the torch models below are the notes' definitions (000_dc5555055295abc4.txt's
``Tudui``, 004's ``MLP``, 001's RNN classifier, 002's regression net, d2l's softmax
regression), run by torch itself; the training references are torch's own
``optim.SGD`` and ``lr_scheduler.StepLR`` running the notes' loop.

Tolerances (float32 in both frameworks, measured on this machine, torch 2.13.0,
jax 0.10.2): converted logits (magnitudes 0.1-0.8) differ by at most 1.8e-7 (max
abs over all models and both directions), checked at atol 1e-6 (+ rtol 1e-5);
round trips are exact (pure permutations). The 220-step training run and its
tolerances are in ``test_cnn_training_matches_torch``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from notes_torch import TorchMLP, TorchRNN, Tudui, torch_regression, torch_softmax_regression
from torch import nn

import jaxtrain.losses as L
from jaxtrain import data, interop, models, optim
from jaxtrain.train_step import create_train_state, make_train_step, merge_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- the notes' torch models ---------------------------------------------------------


# name: (torch model, jaxtrain model, jaxtrain input shape, NHWC -> torch input)
def _nchw(x):
  return torch.from_numpy(np.array(x)).permute(0, 3, 1, 2)  # a writable copy


def _plain(x):
  return torch.from_numpy(np.array(x))


CASES = {
  "cnn32": (lambda: Tudui(3, 1024), lambda r: models.CNN(rngs=r), (4, 32, 32, 3), _nchw),
  "cnn8": (
    lambda: Tudui(1, 64),
    lambda r: models.CNN(in_channels=1, image_size=8, rngs=r),
    (4, 8, 8, 1),
    _nchw,
  ),
  # MNIST-sized CNN: 3x3 final maps, so the (C, H, W) -> (H, W, C) permutation is non-trivial
  # in H and W as well (at 8x8 the final map is 1x1).
  "cnn28": (
    lambda: Tudui(1, 576),
    lambda r: models.CNN(in_channels=1, image_size=28, rngs=r),
    (4, 28, 28, 1),
    _nchw,
  ),
  "mlp": (TorchMLP, lambda r: models.MLP(rngs=r), (4, 28, 28, 1), _nchw),
  "rnn": (TorchRNN, lambda r: models.RNNClassifier(rngs=r), (4, 28, 28), _plain),
  "regression": (torch_regression, lambda r: models.RegressionNet(rngs=r), (6, 10), _plain),
  "softmax": (
    torch_softmax_regression,
    lambda r: models.SoftmaxRegression(rngs=r),
    (4, 28, 28, 1),
    _nchw,
  ),
}
# float32 logits, both frameworks: measured max abs difference 1.8e-7 (softmax regression;
# CNNs 0.2-0.9e-7), logits of magnitude 0.1-0.8.
TOL = dict(rtol=1e-5, atol=1e-6)


def _inputs(shape, seed=0):
  return np.asarray(jax.random.uniform(jax.random.key(seed), shape))


def _torch_logits(net, x, to_torch):
  with torch.no_grad():
    return net(to_torch(x)).numpy()


def _params(model):
  return [np.asarray(a) for a in jax.tree.leaves(nnx.state(model, nnx.Param))]


# --- state_dict conversion, both directions --------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_torch_to_jaxtrain_logits(name):
  make_torch, make_jax, shape, to_torch = CASES[name]
  torch.manual_seed(0)
  net = make_torch()
  model = interop.from_torch_state_dict(make_jax(nnx.Rngs(1)), net.state_dict())
  x = _inputs(shape)
  np.testing.assert_allclose(model(x), _torch_logits(net, x, to_torch), **TOL)


@pytest.mark.parametrize("name", sorted(CASES))
def test_jaxtrain_to_torch_logits(name):
  make_torch, make_jax, shape, to_torch = CASES[name]
  model = make_jax(nnx.Rngs(2))  # jaxtrain's own initialisation
  sd = interop.to_torch_state_dict(model)
  assert all(v.dtype == torch.float32 for v in sd.values())
  net = make_torch()
  assert list(sd) == list(net.state_dict())  # torch's keys, in torch's order
  net.load_state_dict(sd, strict=True)
  x = _inputs(shape, seed=1)
  np.testing.assert_allclose(_torch_logits(net, x, to_torch), model(x), **TOL)


@pytest.mark.parametrize("name", sorted(CASES))
def test_round_trip_is_exact(name):
  make_torch, make_jax, _, _ = CASES[name]
  torch.manual_seed(3)
  ref = make_torch().state_dict()
  back = interop.to_torch_state_dict(interop.from_torch_state_dict(make_jax(nnx.Rngs(0)), ref))
  assert list(back) == list(ref)
  for k in ref:  # transposes and permutations only: bit for bit
    torch.testing.assert_close(back[k], ref[k], rtol=0, atol=0, msg=k)
  model = make_jax(nnx.Rngs(4))
  again = make_jax(nnx.Rngs(5))
  interop.from_torch_state_dict(again, interop.to_torch_state_dict(model))
  for a, b in zip(_params(model), _params(again)):
    np.testing.assert_array_equal(a, b)


def test_cnn_flatten_order_matters():
  # The permutation of fc1 is what makes the CNN's logits match: a plain transpose
  # (a naive port) loads without a shape error but computes a different network.
  torch.manual_seed(0)
  net = Tudui(1, 576)
  model = interop.from_torch_state_dict(
    models.CNN(in_channels=1, image_size=28, rngs=nnx.Rngs(0)), net.state_dict()
  )
  x = _inputs((2, 28, 28, 1))
  expected = _torch_logits(net, x, _nchw)
  np.testing.assert_allclose(model(x), expected, **TOL)
  model.fc1.kernel[...] = jnp.asarray(net.model1[7].weight.detach().numpy().T)
  assert np.abs(np.asarray(model(x)) - expected).max() > 1e-3


def test_cnn_plain_sequential_keys_and_numpy_values():
  torch.manual_seed(0)
  net = Tudui(1, 64)
  seq = net.model1  # a bare nn.Sequential: keys "0.weight", ...
  numpy_sd = {k: v.numpy() for k, v in seq.state_dict().items()}  # numpy arrays work too
  model = interop.from_torch_state_dict(
    models.CNN(in_channels=1, image_size=8, rngs=nnx.Rngs(0)), numpy_sd
  )
  x = _inputs((3, 8, 8, 1))
  np.testing.assert_allclose(model(x), _torch_logits(seq, x, _nchw), **TOL)
  sd = interop.to_torch_state_dict(model, prefix="")
  assert list(sd) == list(seq.state_dict())
  seq.load_state_dict(sd, strict=True)
  # DataParallel's "module." prefix is stripped.
  dp = {"module." + k: v for k, v in net.state_dict().items()}
  interop.from_torch_state_dict(models.CNN(in_channels=1, image_size=8, rngs=nnx.Rngs(1)), dp)


# --- errors ---------------------------------------------------------------------------


def _cnn8_pair():
  torch.manual_seed(0)
  return Tudui(1, 64).state_dict(), models.CNN(in_channels=1, image_size=8, rngs=nnx.Rngs(0))


def test_missing_key_is_named_and_model_unchanged():
  sd, model = _cnn8_pair()
  before = _params(model)
  del sd["model1.7.bias"]
  with pytest.raises(ValueError, match=r"missing keys \['model1.7.bias'\]"):
    interop.from_torch_state_dict(model, sd)
  for a, b in zip(before, _params(model)):
    np.testing.assert_array_equal(a, b)


def test_unexpected_key_is_named():
  sd, model = _cnn8_pair()
  sd["model1.9.weight"] = torch.zeros(3)
  with pytest.raises(ValueError, match=r"unexpected keys \['model1.9.weight'\]"):
    interop.from_torch_state_dict(model, sd)


def test_wrong_shape_is_named_and_model_unchanged():
  torch.manual_seed(0)
  sd = Tudui(3, 1024).state_dict()  # CIFAR weights into the 8x8 digits CNN
  model = models.CNN(in_channels=1, image_size=8, rngs=nnx.Rngs(0))
  before = _params(model)
  with pytest.raises(ValueError, match=r"model1.0.weight: shape \(32, 3, 5, 5\).*\(32, 1, 5, 5\)"):
    interop.from_torch_state_dict(model, sd)
  for a, b in zip(before, _params(model)):
    np.testing.assert_array_equal(a, b)
  sd = TorchMLP().state_dict()
  sd["output.weight"] = sd["output.weight"].T  # a forgotten transpose
  with pytest.raises(ValueError, match=r"output.weight: shape \(256, 10\)"):
    interop.from_torch_state_dict(models.MLP(rngs=nnx.Rngs(0)), sd)


def test_unsupported_model():
  with pytest.raises(TypeError, match="no torch layout"):
    interop.to_torch_state_dict(nnx.Linear(2, 3, rngs=nnx.Rngs(0)))


# --- checkpoint files ------------------------------------------------------------------


def test_load_torch_checkpoint(tmp_path):
  torch.manual_seed(0)
  net = TorchRNN()
  x = _inputs((3, 28, 28))
  expected = _torch_logits(net, x, _plain)
  # The notes' way: torch.save(model.state_dict(), path); and a training checkpoint dict.
  torch.save(net.state_dict(), tmp_path / "rnn.pth")
  torch.save({"epoch": 3, "state_dict": net.state_dict(), "optimizer": {}}, tmp_path / "ckpt.pt")
  torch.save({"model": net.state_dict()}, tmp_path / "model.pt")
  for name in ("rnn.pth", "ckpt.pt", "model.pt"):
    model = interop.load_torch_checkpoint(models.RNNClassifier(rngs=nnx.Rngs(0)), tmp_path / name)
    np.testing.assert_allclose(model(x), expected, **TOL)
  torch.save([1, 2], tmp_path / "list.pt")
  with pytest.raises(ValueError, match="expected a state_dict"):
    interop.load_torch_checkpoint(models.RNNClassifier(rngs=nnx.Rngs(0)), tmp_path / "list.pt")


def test_save_torch_checkpoint(tmp_path):
  model = models.CNN(in_channels=1, image_size=8, rngs=nnx.Rngs(0))
  path = tmp_path / "from_jaxtrain.pth"
  interop.save_torch_checkpoint(model, path)
  net = Tudui(1, 64)
  net.load_state_dict(torch.load(path, weights_only=True), strict=True)  # what a torch user runs
  x = _inputs((3, 8, 8, 1))
  np.testing.assert_allclose(_torch_logits(net, x, _nchw), model(x), **TOL)


# --- end to end: the notes' training loop in both frameworks ---------------------------

# The notes' loop (000_dc5555055295abc4.txt): SGD lr 0.01, StepLR(step_size=5, gamma=0.1),
# cross entropy, running_loss summed per epoch. Data: scikit-learn's digits (offline),
# 8x8x1 with the CNN sized 8 (smaller and faster than CIFAR-shaped data), batch 64,
# drop_last: 22 batches an epoch; 10 epochs = 220 steps, so StepLR decays once (epoch 5).
# The scheduler is stepped per epoch (the notes step it per batch by mistake).
EPOCHS, BATCH, SEED = 10, 64, 0


def _torch_run(net, train):
  opt = torch.optim.SGD(net.parameters(), lr=0.01)
  sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.1)
  losses, running = [], []
  for epoch in range(EPOCHS):
    total = 0.0
    for x, y in data.batches(train, batch_size=BATCH, seed=SEED, epoch=epoch):
      x = data.to_float(x, train.max_value)  # torchvision's ToTensor
      loss = nn.functional.cross_entropy(net(_nchw(x)), torch.from_numpy(y).long())
      opt.zero_grad()
      loss.backward()
      opt.step()
      losses.append(loss.item())
      total += loss.item()
    running.append(total)
    sched.step()
  return np.array(losses), np.array(running)


def _jaxtrain_run(model, train):
  steps_per_epoch = data.num_batches(len(train), BATCH, drop_last=True)
  opt = optim.sgd(optim.step_lr(0.01, 5, 0.1, steps_per_epoch=steps_per_epoch))
  state = create_train_state(model, opt)
  # The batches as stored, uint8: the step scales them on the device.
  step = make_train_step(model, L.cross_entropy, opt, image_max=train.max_value)
  losses, running = [], []
  for epoch in range(EPOCHS):
    epoch_losses = []
    for batch in data.batches(train, batch_size=BATCH, seed=SEED, epoch=epoch):
      state, metrics = step(state, batch)
      epoch_losses.append(metrics["loss"])  # stays on the device until the epoch ends
    epoch_losses = [float(v) for v in epoch_losses]
    losses += epoch_losses
    running.append(sum(epoch_losses))
  return np.array(losses), np.array(running), merge_model(model, state)


def test_cnn_training_matches_torch():
  train = data.load_dataset("digits").train
  torch.manual_seed(0)
  net = Tudui(1, 64)  # torch's initialisation is the common start
  init = {k: v.clone() for k, v in net.state_dict().items()}
  model = interop.from_torch_state_dict(
    models.CNN(in_channels=1, image_size=8, rngs=nnx.Rngs(0)), net.state_dict()
  )
  loss_t, running_t = _torch_run(net, train)
  loss_j, running_j, trained = _jaxtrain_run(model, train)
  assert len(loss_t) == len(loss_j) == 220
  # The notes' net has no activation (a linear map) and lr 0.01 is small for these
  # inputs: the running loss falls slowly (50.69 -> 50.60 in torch over 10 epochs).
  assert running_t[-1] < running_t[0]
  # Every step's loss. Measured max relative deviation over the 220 steps: 2.1e-7
  # (float32 rounding of different conv/matmul kernels); checked at 1e-6. Sensitivity:
  # another batch order changes a step's loss by ~1e-2, a learning rate off by 1%
  # (0.0101) by up to 5e-6 within the first epoch (measured).
  rel = np.abs(loss_j - loss_t) / np.abs(loss_t)
  np.testing.assert_allclose(loss_j, loss_t, rtol=1e-6, err_msg=f"max rel dev {rel.max():.2e}")
  # running_loss per epoch: measured max relative deviation 3.3e-8.
  np.testing.assert_allclose(running_j, running_t, rtol=1e-6)
  # Final parameters, in torch layout: measured max abs difference 9.7e-8 (weights
  # O(0.1); every tensor moved by 8e-4 to 1.3e-2 (max abs) from its start); checked
  # at atol 1e-6.
  final = interop.to_torch_state_dict(trained)
  moved = min(float((net.state_dict()[k] - init[k]).abs().max()) for k in init)
  assert moved > 1e-4  # training changed every tensor, far beyond the tolerance
  for k, v in net.state_dict().items():
    np.testing.assert_allclose(final[k].numpy(), v.numpy(), rtol=0, atol=1e-6, err_msg=k)
