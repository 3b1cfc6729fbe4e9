"""Sum versus mean reduction and the learning rate (003_*.txt), with d2l's ``sgd``.

003_*.txt: with ``l.sum().backward()`` the gradient is ``batch_size`` times the
gradient of the mean loss, so the same learning rate takes ``batch_size`` times
longer steps; d2l's hand-written ``sgd(params, lr, batch_size)`` divides by the
batch size to compensate. References: torch 2.13.0 autograd of
``F.cross_entropy(..., reduction='sum'|'mean')``, ``torch.optim.SGD``, and d2l's
``sgd`` (copied below) on d2l's softmax regression (784 -> 10).

Tolerance: ``rtol=1e-5``, ``atol=1e-6 * max(1, max|x|)`` (``oracle.assert_close``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from oracle import assert_close

from jaxtrain.optim import adam, sgd

# Not a power of 2, so that the factor B is not exact in floating point.
BATCH, STEPS = 50, 100


def d2l_sgd(params, lr, batch_size):
  """d2l.ai's minibatch SGD (chapter 3), verbatim: the gradients are of the summed loss."""
  with torch.no_grad():
    for param in params:
      param -= lr * param.grad / batch_size
      param.grad.zero_()


def softmax_regression(seed=0):
  rng = np.random.default_rng(seed)
  # MNIST-like inputs: mostly 0, else in [0, 1). (Dense uniform pixels would make
  # lr = 0.1 unstable along the mean direction, and the trajectory chaotic.)
  x = (rng.random((BATCH, 784)) * (rng.random((BATCH, 784)) < 0.15)).astype(np.float32)
  y = rng.integers(0, 10, BATCH)
  params = {
    "w": jnp.asarray(rng.normal(0, 0.01, (784, 10)), jnp.float32),  # d2l's initialization
    "b": jnp.zeros(10, jnp.float32),
  }
  return x, y, params


def cross_entropy(params, x, y, reduction):
  """Softmax regression's cross-entropy, reduced as torch's ``reduction``."""
  logits = x @ params["w"] + params["b"]
  per_example = -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1)[:, 0]
  return jnp.sum(per_example) if reduction == "sum" else jnp.mean(per_example)


grad_fn = jax.jit(jax.grad(cross_entropy), static_argnames="reduction")


def test_sum_gradient_is_batch_size_times_mean_gradient():
  x, y, params = softmax_regression()
  g_sum = grad_fn(params, x, y, reduction="sum")
  g_mean = grad_fn(params, x, y, reduction="mean")
  # torch 2.13.0: the same gradients from F.cross_entropy with each reduction.
  for reduction, jax_grad in (("sum", g_sum), ("mean", g_mean)):
    w = torch.from_numpy(np.array(params["w"])).requires_grad_(True)
    b = torch.from_numpy(np.array(params["b"])).requires_grad_(True)
    logits = torch.from_numpy(x) @ w + b
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y), reduction=reduction)
    loss.backward()
    assert_close(jax_grad["w"], w.grad.numpy(), what=f"{reduction}: w")
    assert_close(jax_grad["b"], b.grad.numpy(), what=f"{reduction}: b")
  assert_close(g_sum["w"], BATCH * g_mean["w"])
  assert_close(g_sum["b"], BATCH * g_mean["b"])


def test_same_lr_on_the_sum_takes_batch_size_times_longer_steps():
  x, y, params = softmax_regression()
  opt = sgd(lr=0.1)
  state = opt.init(params)
  step_sum, _ = opt.update(grad_fn(params, x, y, reduction="sum"), state, params)
  step_mean, _ = opt.update(grad_fn(params, x, y, reduction="mean"), state, params)
  assert_close(step_sum["w"], BATCH * step_mean["w"])


def run(opt, params, x, y, reduction):
  @jax.jit
  def step(params, state):
    updates, state = opt.update(grad_fn(params, x, y, reduction=reduction), state, params)
    return optax.apply_updates(params, updates), state

  state = opt.init(params)
  for _ in range(STEPS):
    params, state = step(params, state)
  return params


@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
def test_lr_over_batch_size_on_the_sum_is_lr_on_the_mean(weight_decay):
  """sgd(lr / B, weight_decay=B * wd) on the summed loss == sgd(lr, weight_decay=wd) on the mean.

  Weight decay is added to the gradient before the lr, so it must be scaled up by
  B to stay the same (torch 2.13.0 torch.optim.SGD on the mean loss is the reference).
  """
  x, y, params = softmax_regression()
  lr, momentum = 0.1, 0.9
  sum_opt = sgd(lr / BATCH, momentum=momentum, weight_decay=BATCH * weight_decay)
  on_sum = run(sum_opt, params, x, y, "sum")
  on_mean = run(sgd(lr, momentum=momentum, weight_decay=weight_decay), params, x, y, "mean")
  w = torch.from_numpy(np.array(params["w"])).requires_grad_(True)
  b = torch.from_numpy(np.array(params["b"])).requires_grad_(True)
  torch_opt = torch.optim.SGD([w, b], lr=lr, momentum=momentum, weight_decay=weight_decay)
  for _ in range(STEPS):
    torch_opt.zero_grad()
    torch.nn.functional.cross_entropy(torch.from_numpy(x) @ w + b, torch.from_numpy(y)).backward()
    torch_opt.step()
  for key, t in (("w", w), ("b", b)):
    assert_close(on_sum[key], t.detach().numpy(), what=f"sum: {key}")
    assert_close(on_mean[key], t.detach().numpy(), what=f"mean: {key}")
  assert float(jnp.max(jnp.abs(on_sum["w"] - params["w"]))) > 1e-2


def test_d2l_sgd_is_jaxtrain_sgd_with_lr_over_batch_size():
  """d2l's ``l.sum().backward(); sgd([W, b], lr, batch_size)`` is ``sgd(lr / batch_size)``.

  (jaxtrain's sgd applied to the gradients of the summed loss.)
  """
  x, y, params = softmax_regression()
  lr = 0.1
  w = torch.from_numpy(np.array(params["w"])).requires_grad_(True)
  b = torch.from_numpy(np.array(params["b"])).requires_grad_(True)
  for _ in range(STEPS):
    logits = torch.from_numpy(x) @ w + b
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y), reduction="none")
    loss.sum().backward()
    d2l_sgd([w, b], lr, BATCH)
  ours = run(sgd(lr / BATCH), params, x, y, "sum")
  assert_close(ours["w"], w.detach().numpy(), what="w")
  assert_close(ours["b"], b.detach().numpy(), what="b")
  # And it is not sgd(lr) on the sum, which steps BATCH times too far.
  too_far = run(sgd(lr), params, x, y, "sum")
  assert not np.allclose(too_far["w"], w.detach().numpy(), rtol=1e-3)


def test_adam_barely_cares_about_the_reduction():
  """Adam divides by sqrt(v): scaling gradients by B changes only eps's weight.

  adam(eps=B * eps) on the summed loss is adam(eps) on the mean loss exactly (in
  exact arithmetic); with the same eps the two differ by eps's relative size.
  """
  x, y, params = softmax_regression()
  on_mean = run(adam(lr=1e-2), params, x, y, "mean")
  on_sum = run(adam(lr=1e-2, eps=BATCH * 1e-8), params, x, y, "sum")
  for key in ("w", "b"):
    assert_close(on_sum[key], on_mean[key], what=key)
