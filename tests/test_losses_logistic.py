"""jaxtrain.losses._logistic (softplus, log_sigmoid with a shared exp) against torch 2.13.0.

The logistic losses (binary_cross_entropy_with_logits, soft_margin_loss,
multilabel_soft_margin_loss) are built on these; their own parity tests are in
test_losses_classification.py. Here: every regime of x, elementwise, value and
gradient, each element within 1e-6 relative of torch's, and at the oracle's float32
tolerance (oracle.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from oracle import assert_close, to_torch

from jaxtrain.losses._logistic import log_sigmoid, softplus

# Both sides of 0, where 1 + e rounds to 1 (|x| > 17), where exp(x) overflows
# (|x| > 89), the +-1e4 logits of the losses' edge cases, and infinities.
X = np.concatenate(
  [
    np.linspace(-30, 30, 241),
    [0.0, -0.0, 1e-8, -1e-8, 88.0, 90.0, -90.0, 1e4, -1e4, np.inf, -np.inf],
  ]
).astype(np.float32)


def _vjp(fn, x):
  y, vjp = jax.vjp(jax.jit(fn), jnp.asarray(x))
  return np.asarray(y), np.asarray(vjp(jnp.ones_like(y))[0])


def _torch(fn, x):
  tx = to_torch(x, requires_grad=True)
  y = fn(tx)
  (g,) = torch.autograd.grad(y.sum(), tx)
  return y.detach().numpy(), g.numpy()


@pytest.mark.parametrize(
  "ours, theirs",
  [
    # torch's softplus returns x itself above its threshold (20): equal in
    # float32, as log1p(exp(-20)) = 2e-9 is below half an ulp of 20.
    (softplus, F.softplus),
    (log_sigmoid, F.logsigmoid),
  ],
  ids=["softplus", "log_sigmoid"],
)
def test_value_and_gradient_match_torch(ours, theirs):
  value, grad = _vjp(ours, X)
  t_value, t_grad = _torch(theirs, X)
  # The scale-relative atol of assert_close would hide errors in the tiny tails
  # (log_sigmoid(30) = -9.4e-14): compare each element relative to itself, down
  # to float32's smallest normal number (XLA:CPU flushes subnormals to zero, as
  # log_sigmoid(88) = -6e-39 is).
  tiny = np.finfo(np.float32).tiny
  np.testing.assert_allclose(value, t_value, rtol=1e-6, atol=tiny)
  np.testing.assert_allclose(grad, t_grad, rtol=1e-6, atol=tiny)
  assert_close(value, t_value)


def test_nan_propagates():
  for fn in (softplus, log_sigmoid):
    value, grad = _vjp(fn, np.array([np.nan, 1.0], np.float32))
    assert np.isnan(value[0]) and np.isnan(grad[0]) and np.isfinite(value[1])


def test_under_vmap_and_second_derivative():
  # vmap of the custom rule, and jax.grad of the gradient (sigmoid's derivative,
  # sigmoid (1 - sigmoid)), which autodiff takes through the custom jvp.
  x = jnp.asarray(X[np.isfinite(X) & (np.abs(X) < 50)])
  np.testing.assert_array_equal(jax.vmap(softplus)(x), softplus(x))
  second = jax.vmap(jax.grad(jax.grad(softplus)))(x)
  s = jax.nn.sigmoid(x)
  np.testing.assert_allclose(second, s * (1 - s), rtol=1e-5, atol=1e-7)
