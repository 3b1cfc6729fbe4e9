"""Every loss value printed in the notes under shared/seeds/, from the same inputs.

The printed values have four decimals; each test checks that rounding and, tighter,
torch 2.13.0's own value on the same inputs.
"""

import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F

import jaxtrain.losses as L

# 000_dc5555055295abc4.txt: inputs [1, 2, 3], targets [1, 2, 5], reshaped to (1, 1, 1, 3).
INPUTS = jnp.array([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3)
TARGETS = jnp.array([1.0, 2.0, 5.0]).reshape(1, 1, 1, 3)


def test_l1_mean_000():
  # printed in 000_dc5555055295abc4.txt: L1Loss() -> tensor(0.6667)
  assert round(float(L.l1_loss(INPUTS, TARGETS)), 4) == 0.6667
  np.testing.assert_allclose(L.l1_loss(INPUTS, TARGETS), 2 / 3, rtol=1e-7)


def test_l1_sum_000():
  # printed in 000_dc5555055295abc4.txt: L1Loss(reduction='sum') -> tensor(2.)
  assert float(L.l1_loss(INPUTS, TARGETS, reduction="sum")) == 2.0


def test_mse_000():
  # printed in 000_dc5555055295abc4.txt: MSELoss() -> tensor(1.3333)
  assert round(float(L.mse_loss(INPUTS, TARGETS)), 4) == 1.3333
  np.testing.assert_allclose(L.mse_loss(INPUTS, TARGETS), 4 / 3, rtol=1e-7)


def test_cross_entropy_000():
  # printed in 000_dc5555055295abc4.txt: x = [0.1, 0.2, 0.3] reshaped (1, 3), y = [1]
  # -> CrossEntropyLoss() = tensor(1.1019)
  x = jnp.array([0.1, 0.2, 0.3]).reshape(1, 3)
  y = jnp.array([1])
  value = L.cross_entropy(x, y)
  assert round(float(value), 4) == 1.1019
  # -x[1] + log(sum(exp(x))), the formula the note shows.
  np.testing.assert_allclose(value, -0.2 + np.log(np.exp([0.1, 0.2, 0.3]).sum()), rtol=1e-6)
  expected = F.cross_entropy(torch.tensor([[0.1, 0.2, 0.3]]), torch.tensor([1]))
  np.testing.assert_allclose(value, expected.item(), rtol=1e-6)


def test_mse_mae_002():
  # 002_be92e9498db7b7c3.txt: y_true = [1, 2, 3], y_pred = [1.5, 2.5, 3.5];
  # F.mse_loss(y_pred, y_true) and F.l1_loss(y_pred, y_true, reduction='mean').
  # The note prints .item() without showing it; each error is 0.5, so 0.25 and 0.5.
  y_true = jnp.array([1.0, 2.0, 3.0])
  y_pred = jnp.array([1.5, 2.5, 3.5])
  assert float(L.mse_loss(y_pred, y_true)) == 0.25
  assert float(L.l1_loss(y_pred, y_true, reduction="mean")) == 0.5
  t_true, t_pred = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.5, 2.5, 3.5])
  assert F.mse_loss(t_pred, t_true).item() == 0.25
  assert F.l1_loss(t_pred, t_true, reduction="mean").item() == 0.5


def test_example_prints_the_notes_values(capsys):
  # The README points to this example (python -m jaxtrain.examples.notes_losses).
  from jaxtrain.examples import notes_losses

  notes_losses.main()
  out = capsys.readouterr().out
  for value in ("0.6667", "2.0000", "1.3333", "1.1019", "0.2500", "0.5000"):
    assert value in out
