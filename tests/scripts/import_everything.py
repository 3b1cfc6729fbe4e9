"""Imports every module of jaxtrain, then prints the module count and what changed in
os.environ and in jax.config (tests/test_package.py)."""

import importlib
import os
import pkgutil

import jax

env, config = dict(os.environ), dict(jax.config.values)
import jaxtrain  # noqa: E402  (after the snapshot it is compared with)

modules = sorted(m.name for m in pkgutil.walk_packages(jaxtrain.__path__, "jaxtrain."))
for name in modules:
  importlib.import_module(name)
changed_env = sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k))
changed_config = sorted(k for k in config if config[k] != jax.config.values[k])
print(len(modules), changed_env, changed_config)
