import os
import sys

import jax
import pytest
import torch

# Tests import their shared helpers (oracle.py) as plain modules.
sys.path.insert(0, os.path.dirname(__file__))

# The scripts tests run in subprocesses: not modules to collect (--doctest-modules
# would import, and so run, them).
collect_ignore = ["scripts"]

# The torch-parity tests compare float32 matmuls and convolutions at float32
# tolerance: they assume float32 arithmetic, the CPU's default, where a GPU would
# use TF32 and a TPU bfloat16 passes by default. Set here so that the suite means
# the same on every backend (and in the subprocesses tests start).
jax.config.update("jax_default_matmul_precision", "highest")
os.environ["JAX_DEFAULT_MATMUL_PRECISION"] = "highest"


@pytest.fixture(scope="module")
def one_torch_thread():
  """torch on one thread for a module: steadier, and fair to the other core's work."""
  threads = torch.get_num_threads()
  torch.set_num_threads(1)
  yield
  torch.set_num_threads(threads)
