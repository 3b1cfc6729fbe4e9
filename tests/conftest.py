import os
import sys

import pytest
import torch

# Tests import their shared helpers (oracle.py) as plain modules.
sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(scope="module")
def one_torch_thread():
  """torch on one thread for a module: steadier, and fair to the other core's work."""
  threads = torch.get_num_threads()
  torch.set_num_threads(1)
  yield
  torch.set_num_threads(threads)
