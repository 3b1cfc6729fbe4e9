"""jaxtrain.losses.ranking against torch 2.13.0: values and gradients, every reduction x option.

Tolerance: rtol 1e-5, atol 1e-6 x the array's largest magnitude (tests/oracle.py).
"""

import pytest
from loss_cases import by_id, ranking_cases
from oracle import compare_with_torch


@pytest.mark.parametrize("case", **by_id(ranking_cases()))
def test_matches_torch(case):
  # Reference: torch 2.13.0 torch.nn.functional.<case.name> on the same arrays.
  compare_with_torch(case.jax_fn, case.torch_fn, case.args, grad_argnums=case.grad)
