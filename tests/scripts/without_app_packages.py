"""Runs the command after it in a process where the training application's packages are missing.

    python tests/scripts/without_app_packages.py MODULE_OR_SCRIPT.py [ARGS...]

What ``pip install jaxtrain`` (the core, without the ``train`` extra) leaves out is made
unimportable (ModuleNotFoundError, as if not installed); then MODULE runs as ``python -m``
would run it (a ``.py`` path runs as a script). orbax-checkpoint stays: flax itself depends on it.
"""

from __future__ import annotations

import importlib.abc
import runpy
import sys

APPLICATION = {
  "sklearn",
  "tensorflow_datasets",
  "array_record",
  "PIL",
  "tqdm",
  "matplotlib",
  "tensorboardX",
  "importlib_resources",
  "torch",
}


class _NotInstalled(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in APPLICATION:
      raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    return None


sys.meta_path.insert(0, _NotInstalled())
target, sys.argv = sys.argv[1], sys.argv[1:]
if target.endswith(".py"):
  runpy.run_path(target, run_name="__main__")
else:
  runpy.run_module(target, run_name="__main__", alter_sys=True)
