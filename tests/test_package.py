"""Importing jaxtrain configures nothing: the environment and JAX's configuration stay as they were."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Imports every module of the package (the training application's too), then prints
# what changed in os.environ and in jax.config.
PROBE = """
import importlib, os, pkgutil
import jax
env, config = dict(os.environ), dict(jax.config.values)
import jaxtrain
modules = sorted(m.name for m in pkgutil.walk_packages(jaxtrain.__path__, "jaxtrain."))
for name in modules:
  importlib.import_module(name)
changed_env = sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k))
changed_config = sorted(k for k in config if config[k] != jax.config.values[k])
print(len(modules), changed_env, changed_config)
"""


def test_importing_any_module_changes_no_environment_or_jax_config():
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                       timeout=300, cwd=ROOT)
  assert out.returncode == 0, out.stderr
  count, changed_env, changed_config = out.stdout.strip().split(" ", 2)
  assert int(count) >= 30  # every module was imported
  assert (changed_env, changed_config) == ("[]", "[]"), out.stdout
