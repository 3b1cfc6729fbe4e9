"""jaxtrain's per-program XLA options (jaxtrain/_xla_options.py): CPU programs only, the user's
flags win, an option the jaxlib rejects is dropped with one warning and training goes on."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxtrain.losses as L
from jaxtrain import _xla_options, models, ops, optim, parallel
from jaxtrain.train_step import create_train_state, make_train_step

OPTION = "xla_cpu_experimental_ynn_fusion_type"


@pytest.fixture
def fresh_checks():
  _xla_options._accepted.cache_clear()
  yield
  _xla_options._accepted.cache_clear()


def _uses_ynn_convolutions(compiler_options) -> bool:
  # The CNN's second convolution, compiled only: YNNPACK's convolution fusions are
  # what the option turns off.
  x, k = jnp.ones((64, 16, 16, 32)), jnp.ones((5, 5, 32, 32))
  fn = jax.jit(lambda x, k: ops.conv2d(x, k, padding=2), compiler_options=compiler_options)
  return "__ynn_fusion" in fn.lower(x, k).compile().as_text()


def test_cpu_programs_get_the_eigen_convolution_option(fresh_checks):
  options = _xla_options.for_mesh(parallel.data_mesh())
  if _xla_options._jaxlib_release() not in _xla_options.MEASURED_ON:
    # Another jaxlib (jax>=0.10 allows one): its programs are compiled as JAX would.
    assert options is None
    return
  assert options == {OPTION: _xla_options.CPU_OPTIONS[OPTION]}
  assert not _uses_ynn_convolutions(options)
  assert _uses_ynn_convolutions(None)  # jaxlib 0.10's default, which the option changes


def test_other_platforms_get_no_options():
  for platform in ("cuda", "rocm", "tpu"):
    assert _xla_options.wanted(platform) == {}


def test_user_flags_win_and_the_switch_turns_options_off(monkeypatch, fresh_checks):
  monkeypatch.setenv("XLA_FLAGS", f"--{OPTION}=individual_convolution")
  assert _xla_options.for_platform("cpu") is None
  monkeypatch.delenv("XLA_FLAGS")
  monkeypatch.setenv(_xla_options.ENV_SWITCH, "0")
  assert _xla_options.for_platform("cpu") is None


def test_other_jaxlib_releases_get_no_options(monkeypatch):
  # The option's value is XLA's default list of fusion kinds minus convolutions: a list
  # that belongs to the jaxlib release it was read from.
  monkeypatch.setattr(_xla_options, "_jaxlib_release", lambda: (0, 11))
  assert _xla_options.wanted("cpu") == {}


def test_an_unknown_option_warns_once_and_training_goes_on(monkeypatch, fresh_checks):
  # The detection, on whichever jaxlib runs the suite.
  monkeypatch.setattr(_xla_options, "MEASURED_ON", (_xla_options._jaxlib_release(),))
  monkeypatch.setattr(
    _xla_options,
    "CPU_OPTIONS",
    {"xla_cpu_no_such_option_in_any_jaxlib": "1", OPTION: _xla_options.CPU_OPTIONS[OPTION]},
  )
  model = models.CNN(in_channels=1, image_size=8, rngs=nnx.Rngs(0))
  opt = optim.sgd(0.01)
  x = np.random.default_rng(0).uniform(size=(16, 8, 8, 1)).astype(np.float32)
  y = np.arange(16, dtype=np.int32) % 10
  with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    steps = [make_train_step(model, L.cross_entropy, opt) for _ in range(2)]
    state = create_train_state(model, opt)
    for step in steps:
      state, metrics = step(state, (x, y))
  rejected = [w for w in seen if "xla_cpu_no_such_option_in_any_jaxlib" in str(w.message)]
  assert len(rejected) == 1, [str(w.message) for w in seen]
  assert "compiling without it" in str(rejected[0].message)
  assert np.isfinite(float(metrics["loss"])) and int(state.step) == 2
  # The option jaxlib knows is still applied.
  assert _xla_options.for_platform("cpu") == {OPTION: _xla_options.CPU_OPTIONS[OPTION]}
