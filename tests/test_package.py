"""Importing jaxtrain configures nothing: os.environ and JAX's configuration stay as they were.

And the core runs without the training application's packages."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "tests", "scripts")

# Imports every module of the package (the training application's too), then prints
# what changed in os.environ and in jax.config.


def test_importing_any_module_changes_no_environment_or_jax_config():
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  out = subprocess.run(
    [sys.executable, os.path.join(SCRIPTS, "import_everything.py")],
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
    cwd=ROOT,
  )
  assert out.returncode == 0, out.stderr
  count, changed_env, changed_config = out.stdout.strip().split(" ", 2)
  assert int(count) >= 30  # every module was imported
  assert (changed_env, changed_config) == ("[]", "[]"), out.stdout


def _without_app_packages(*argv, cwd):
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  return subprocess.run(
    [sys.executable, os.path.join(SCRIPTS, "without_app_packages.py"), *argv],
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
    cwd=cwd,
  )


def test_the_core_runs_without_the_training_application(tmp_path):
  # pip install jaxtrain: jax, flax, optax, chex, numpy. The losses, optimizers, models and
  # the train step import and train with none of the train extra's packages.
  proc = _without_app_packages(os.path.join(SCRIPTS, "core_train_step.py"), cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "core OK" in proc.stdout


def test_the_command_line_names_the_extra_it_needs(tmp_path):
  proc = _without_app_packages(
    "jaxtrain.train", "--epochs", "1", "--out", str(tmp_path / "run"), cwd=tmp_path
  )
  assert proc.returncode == 2
  assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
  assert (
    "No module named 'sklearn'" in proc.stderr and "pip install 'jaxtrain[train]'" in proc.stderr
  )
  assert not (tmp_path / "run").exists()


def test_the_version_is_declared_once():
  import tomllib

  import jaxtrain

  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    project = tomllib.load(f)["project"]
  assert "version" not in project and project["dynamic"] == ["version"]
  assert jaxtrain.__version__ == importlib.metadata.version("jaxtrain")
