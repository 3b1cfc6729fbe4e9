"""Gradient accumulation: k micro-batches, one optimizer update.

torch::

  for i, (x, y) in enumerate(loader):          # micro-batches of size b
    (loss_fn(model(x), y) / k).backward()      # mean-reduced loss, divided by k
    if (i + 1) % k == 0:
      opt.step(); opt.zero_grad()

jaxtrain: ``accumulate(adam(...), k)`` and one ``update`` per micro-batch; the
wrapped optimizer sees the mean of the k gradients every k-th call (the other
calls return zero updates), which with equal micro-batch sizes and a
mean-reduced loss is the gradient of one batch of ``k * b``.
"""

from __future__ import annotations

import optax

from jaxtrain.optim import _checks


def accumulate(
    optimizer: optax.GradientTransformation, every_k: int
) -> optax.GradientTransformation:
  """Averages the gradients of ``every_k`` calls, then applies ``optimizer`` once.

  A thin wrapper of ``optax.MultiSteps(optimizer, every_k, use_grad_mean=True)``.
  The wrapped optimizer's own count (and so its learning-rate schedule) advances
  once per real update, not per micro-batch.

  Args:
    optimizer: the optimizer to apply to the accumulated gradient.
    every_k: the number of micro-batches per update.

  Returns:
    An ``optax.GradientTransformation``; its updates are zero except on every
    ``every_k``-th call.

  Raises:
    TypeError: when ``optimizer`` is not an ``optax.GradientTransformation`` or
      ``every_k`` not an integer.
    ValueError: when ``every_k`` is below 1.
  """
  _checks.transformation("accumulate", "optimizer", optimizer, example="jaxtrain.optim.sgd(0.1)")
  every_k = _checks.positive_integer("accumulate", "every_k", every_k)
  multi_steps = optax.MultiSteps(optimizer, every_k_schedule=every_k, use_grad_mean=True)
  return multi_steps.gradient_transformation()
