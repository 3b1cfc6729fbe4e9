"""Bad input everywhere users call in: losses, optimizers, models, the CLI and config files.

Each case asserts the error type and the message: the argument, the value and what
was expected. Losses and optimizers raise what torch 2.13.0 raises for the same call
(torch's own message for the optimizers, e.g. ``Invalid momentum value: -1``); the
model and CLI rules are jaxtrain's own. More cases live in test_losses_errors.py,
test_optim_*.py and test_train_cli.py; this file stands alone (nothing imported
from them).
"""

import re

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxtrain.losses as L
import jaxtrain.optim as O
from jaxtrain import loop, models, train

x23 = np.zeros((2, 3), np.float32)

# (id, call, error type, message fragment)
LOSSES = [
    ("ce class index too large", lambda: L.cross_entropy(x23, np.array([0, 3])), ValueError,
     "cross_entropy: target 3 is out of bounds; expected class indices in [0, 2]"),
    ("ce negative class index", lambda: L.cross_entropy(x23, np.array([-1, 0])), ValueError,
     "cross_entropy: target -1 is out of bounds"),
    ("ce float target", lambda: L.cross_entropy(x23, np.array([0.0, 1.0])), TypeError,
     "cross_entropy: target must hold integer class indices, got dtype float"),
    ("ce target batch mismatch", lambda: L.cross_entropy(x23, np.array([0, 1, 2])), ValueError,
     "cross_entropy: target shape (3,) must equal input shape (2, 3) without its class"),
    ("ce weight per class", lambda: L.cross_entropy(x23, np.array([0, 1]), weight=np.ones(4)),
     ValueError, "cross_entropy: weight must have shape (3,), one entry per class, got (4,)"),
    ("ce label_smoothing", lambda: L.cross_entropy(x23, np.array([0, 1]), label_smoothing=1.5),
     ValueError, "cross_entropy: label_smoothing must be in [0, 1], got 1.5"),
    ("nll index outside ignore_index",
     lambda: L.nll_loss(x23, np.array([0, -5]), ignore_index=-100), ValueError,
     "nll_loss: target -5 is out of bounds; expected class indices in [0, 2] or ignore_index=-100"),
    ("mse shapes do not broadcast", lambda: L.mse_loss(x23, np.zeros(4)), ValueError,
     "mse_loss: target shape (4,) cannot be broadcast with input shape (2, 3)"),
    ("bce shape mismatch", lambda: L.binary_cross_entropy(np.zeros(2), np.zeros(3)), ValueError,
     "binary_cross_entropy: target shape (3,) must equal input shape (2,)"),
    ("huber delta", lambda: L.huber_loss(np.zeros(2), np.zeros(2), delta=-1.0), ValueError,
     "huber_loss: delta must be positive, got delta=-1.0"),
    ("smooth_l1 beta", lambda: L.smooth_l1_loss(np.zeros(2), np.zeros(2), beta=-1.0), ValueError,
     "smooth_l1_loss: beta must be non-negative, got beta=-1.0"),
    ("unknown reduction", lambda: L.l1_loss(np.zeros(2), np.zeros(2), reduction="avg"), ValueError,
     "reduction='avg' is not valid; expected one of"),
]

OPTIMIZERS = [
    ("sgd negative lr", lambda: O.sgd(-0.1), "Invalid learning rate: -0.1"),
    ("sgd NaN lr", lambda: O.sgd(float("nan")), "Invalid learning rate: nan"),
    ("sgd negative momentum", lambda: O.sgd(0.1, momentum=-1), "Invalid momentum value: -1"),
    ("sgd nesterov without momentum", lambda: O.sgd(0.1, nesterov=True),
     "Nesterov momentum requires a momentum and zero dampening"),
    ("adam beta1 = 1", lambda: O.adam(0.1, betas=(1.0, 0.9)), "Invalid beta parameter at index 0: 1.0"),
    ("adam negative eps", lambda: O.adam(0.1, eps=-1), "Invalid epsilon value: -1"),
    ("adamw negative weight decay", lambda: O.adamw(0.1, weight_decay=-1),
     "Invalid weight_decay value: -1"),
    ("rmsprop negative alpha", lambda: O.rmsprop(0.1, alpha=-1), "Invalid alpha value: -1"),
    ("adagrad negative lr_decay", lambda: O.adagrad(0.1, lr_decay=-1), "Invalid lr_decay value: -1"),
    ("step_lr step_size 0", lambda: O.step_lr(0.1, 0, 0.1),
     "step_size must be a positive integer, got 0"),
    ("cosine T_max 0", lambda: O.cosine_annealing_lr(0.1, 0), "T_max must be a positive integer, got 0"),
]

r = nnx.Rngs(0)
CNN1 = models.CNN(in_channels=1, image_size=8, rngs=r)
CNN3 = models.CNN(in_channels=3, image_size=32, rngs=r)
MLP = models.MLP(in_features=64, hidden=8, rngs=r)
SOFTMAX = models.SoftmaxRegression(in_features=64, rngs=r)
RNN = models.RNNClassifier(input_size=28, hidden_size=8, rngs=r)
REG = models.RegressionNet(in_features=10, rngs=r)

MODELS = [
    ("cnn without channel axis", lambda: CNN1(jnp.zeros((5, 8, 8))),
     "CNN expects images x of shape (N, 8, 8, 1) (image_size=8, in_channels=1, channels last), "
     "got shape (5, 8, 8); the channel axis is missing: use x[..., None]"),
    ("cnn wrong channel count", lambda: CNN1(jnp.zeros((5, 8, 8, 3))),
     "got shape (5, 8, 8, 3); 3 channels, but in_channels=1"),
    ("cnn channels first", lambda: CNN3(jnp.zeros((2, 3, 32, 32))),
     "got shape (2, 3, 32, 32); this looks channels-first (NCHW): use x.transpose(0, 2, 3, 1)"),
    ("cnn wrong image size", lambda: CNN3(jnp.zeros((2, 28, 28, 3))),
     "CNN expects images x of shape (N, 32, 32, 3)"),
    ("mlp wrong feature count", lambda: MLP(jnp.zeros((4, 784))),
     "MLP: x of shape (4, 784) has 784 features per example; expected (N, 64) or (N, H, W, C) "
     "with H * W * C == 64 (in_features=64)"),
    ("mlp wrong image size", lambda: MLP(jnp.zeros((4, 28, 28, 1))),
     "MLP: x of shape (4, 28, 28, 1) has 784 features per example"),
    ("mlp one example without batch axis", lambda: MLP(jnp.zeros(64)),
     "MLP: x must be a batch (N, 64) or (N, H, W, C) with H * W * C == 64 (in_features=64), got "
     "shape (64,) (one example? add the batch axis: x[None])"),
    ("softmax regression wrong features", lambda: SOFTMAX(jnp.zeros((4, 63))),
     "SoftmaxRegression: x of shape (4, 63) has 63 features per example; expected (N, 64)"),
    ("rnn wrong rank", lambda: RNN(jnp.zeros((4, 28))),
     "RNNClassifier expects x of shape (N, T, 28) or images (N, H, W, C) with W * C == 28 "
     "(input_size=28), got shape (4, 28)"),
    ("rnn wrong features per step", lambda: RNN(jnp.zeros((4, 28, 27))),
     "RNNClassifier expects x of shape (N, T, 28)"),
    ("rnn images with channels", lambda: RNN(jnp.zeros((4, 28, 28, 3))),
     "(input_size=28), got shape (4, 28, 28, 3)"),
    ("regression net wrong features", lambda: REG(jnp.zeros((4, 3))),
     "RegressionNet: x must have shape (N, 10) (in_features=10), got shape (4, 3)"),
    ("cnn zero channels", lambda: models.CNN(in_channels=0, rngs=nnx.Rngs(0)),
     "CNN: in_channels must be a positive integer, got 0"),
    ("cnn float image size", lambda: models.CNN(image_size=32.0, rngs=nnx.Rngs(0)),
     "CNN: image_size must be a positive integer, got 32.0"),
    ("mlp zero hidden", lambda: models.MLP(hidden=0, rngs=nnx.Rngs(0)),
     "MLP: hidden must be a positive integer, got 0"),
    ("rnn negative hidden", lambda: models.RNNClassifier(hidden_size=-1, rngs=nnx.Rngs(0)),
     "RNNClassifier: hidden_size must be a positive integer, got -1"),
    ("softmax regression no classes", lambda: models.SoftmaxRegression(num_classes=0,
                                                                       rngs=nnx.Rngs(0)),
     "SoftmaxRegression: num_classes must be a positive integer, got 0"),
    ("regression net bool features", lambda: models.RegressionNet(in_features=True,
                                                                  rngs=nnx.Rngs(0)),
     "RegressionNet: in_features must be a positive integer, got True"),
]

# (id, argv or TOML text, message fragment): every one exits 2 with one line.
CLI = [
    ("unknown nan policy", ["--nan-policy", "ignore"],
     "argument --nan-policy: invalid choice: 'ignore'"),
    ("momentum not a number", ["--momentum", "fast"], "argument --momentum: invalid float value"),
    ("batch size 0", ["--batch-size", "0"], "batch_size must be a positive integer, got 0"),
    ("keep 0", ["--keep", "0"], "keep must be a positive integer, got 0"),
    ("zero epochs", ["--epochs", "0"],
     "epochs must be a positive integer, got 0"),
    ("unknown flag", ["--learning-rate", "0.1"], "unrecognized arguments: --learning-rate 0.1"),
    ("resume a folder that is not a run", ["--resume", "{tmp}/nowhere"],
     "--resume '{tmp}/nowhere': no run there (no config.json)"),
    ("missing tfds dataset", ["--dataset", "mnist", "--data-dir", "{tmp}/data"], "mnist"),
    ("config: unknown key", "learning_rate = 0.1\n",
     "unknown key 'learning_rate'; known keys: batch-size"),
    ("config: wrong type", 'epochs = "ten"\n', "epochs must be a int, got 'ten'"),
    ("config: bad nan_policy", 'nan_policy = "ignore"\n',
     "nan_policy='ignore' is not valid; expected one of stop, skip"),
    ("config: list of strings", 'betas = ["a", "b"]\n', "betas must be a list of floats, got ['a', 'b']"),
    ("config: bool for a float", "lr = true\n", "lr must be a float, got True"),
]


@pytest.mark.parametrize("call,error,fragment", [c[1:] for c in LOSSES], ids=[c[0] for c in LOSSES])
def test_losses(call, error, fragment):
  with pytest.raises(error, match=re.escape(fragment)):
    call()


@pytest.mark.parametrize("call,fragment", [c[1:] for c in OPTIMIZERS], ids=[c[0] for c in OPTIMIZERS])
def test_optimizers(call, fragment):
  with pytest.raises(ValueError, match=re.escape(fragment)):
    call()


@pytest.mark.parametrize("call,fragment", [c[1:] for c in MODELS], ids=[c[0] for c in MODELS])
def test_models(call, fragment):
  with pytest.raises(ValueError, match=re.escape(fragment)):
    call()


@pytest.mark.parametrize("args,fragment", [c[1:] for c in CLI], ids=[c[0] for c in CLI])
def test_cli(args, fragment, tmp_path, capsys):
  tmp = str(tmp_path)
  if isinstance(args, str):  # a config file
    (tmp_path / "run.toml").write_text(args)
    args = ["--config", str(tmp_path / "run.toml")]
  argv = [a.format(tmp=tmp) for a in args] + ["--out", str(tmp_path / "run")]
  try:
    code = train.main(argv)
  except SystemExit as e:  # argparse's own errors
    code = e.code
  err = capsys.readouterr().err
  assert code == 2
  assert fragment.format(tmp=tmp) in err
  assert err.count("\n") == 1 and "Traceback" not in err


def test_config_validate_names_the_field():
  # Config used from python (notebooks), without the CLI.
  with pytest.raises(ValueError, match=re.escape("nan_policy='never' is not valid; expected one "
                                                 "of stop, skip")):
    loop.fit(loop.Config(nan_policy="never"))


def test_make_train_step_rejects_an_unknown_nan_policy():
  from jaxtrain.train_step import make_train_step
  with pytest.raises(ValueError, match=re.escape("nan_policy='ignore' is not valid; expected one "
                                                 "of stop, skip (or None: no check)")):
    make_train_step(MLP, L.cross_entropy, O.sgd(0.1), nan_policy="ignore")


def test_there_are_at_least_30_cases_spanning_the_four_areas():
  assert min(len(LOSSES), len(OPTIMIZERS), len(MODELS), len(CLI)) >= 8
  assert len(LOSSES) + len(OPTIMIZERS) + len(MODELS) + len(CLI) >= 30
