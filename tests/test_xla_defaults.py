"""jaxtrain's XLA defaults (jaxtrain/_xla_defaults.py): added on import, the user's flags win.

Each case runs in a fresh interpreter: XLA reads XLA_FLAGS once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Prints XLA_FLAGS after importing jaxtrain, and whether the CNN's convolutions
# compiled to YNNPACK fusions (the default this setting turns off) or not.
PROBE = """
import os, jax, jax.numpy as jnp, jaxtrain
from jaxtrain import ops
# The CNN's second convolution (compiled only, not run).
x, k = jnp.ones((64, 16, 16, 32)), jnp.ones((5, 5, 32, 32))
hlo = jax.jit(lambda x, k: ops.conv2d(x, k, padding=2)).lower(x, k).compile().as_text()
print(repr(os.environ.get("XLA_FLAGS")))
print("ynn conv" if "__ynn_fusion" in hlo else "no ynn conv")
print(jaxtrain._xla_defaults.applied())
"""


def _probe(env_extra, code=PROBE):
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAXTRAIN_XLA_DEFAULTS")}
  env.update(env_extra, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
  assert out.returncode == 0, out.stderr
  return out.stdout.split("\n")[:3]


def test_import_adds_the_eigen_convolution_flag():
  flags, conv, applied = _probe({})
  assert flags == repr("--xla_cpu_experimental_ynn_fusion_type=-individual_convolution")
  assert conv == "no ynn conv"
  assert applied == "True"


def test_user_flags_are_kept_and_win():
  flags, conv, _ = _probe({"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=individual_convolution"})
  assert flags == repr("--xla_cpu_experimental_ynn_fusion_type=individual_convolution")
  assert conv == "ynn conv"  # the user's choice: YNNPACK convolutions
  other = "--xla_force_host_platform_device_count=2"
  flags, _, _ = _probe({"XLA_FLAGS": other})
  assert flags == repr(f"{other} --xla_cpu_experimental_ynn_fusion_type=-individual_convolution")


def test_turned_off_by_environment():
  flags, conv, _ = _probe({"JAXTRAIN_XLA_DEFAULTS": "0"})
  assert flags == repr(None)
  assert conv == "ynn conv"


@pytest.mark.parametrize("early", [True, False])
def test_applied_says_when_it_came_too_late(early):
  code = ("import jax.numpy as jnp\n" + ("" if early else "jnp.ones(2).block_until_ready()\n")
          + "import jaxtrain\nprint(jaxtrain._xla_defaults.applied())\nprint()\nprint()\n")
  assert _probe({}, code)[0] == str(early)
