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

import jax
import jax.numpy as jnp
import optax

from jaxtrain.optim import _checks


def accumulate(
  optimizer: optax.GradientTransformation, every_k: int
) -> optax.GradientTransformationExtraArgs:
  """Averages the gradients of ``every_k`` calls, then applies ``optimizer`` once.

  Call ``i`` (from 0) adds ``g_i / every_k`` to the accumulated gradient, as
  torch's ``(loss / k).backward()`` adds to ``.grad``; the ``every_k``-th call
  gives the sum, the mean gradient, to ``optimizer``, returns its updates and
  starts a new sum at zero. The other calls return zero updates and leave
  ``optimizer``'s state alone, so its own count (and its learning-rate
  schedule) advances once per real update, not per micro-batch.

  The state is ``optax.MultiStepsState`` (``mini_step``, ``gradient_step``,
  ``inner_opt_state``, ``acc_grads``, ``skip_state=()``), as
  ``optax.MultiSteps(optimizer, every_k, use_grad_mean=True)`` keeps it. That
  class is not used itself: it resets its sum and masks its updates by
  multiplying by 0, which keeps inf and NaN (``0 * inf`` is NaN). A micro-batch
  with an inf gradient then made the next micro-batches' updates NaN and every
  later sum NaN, so that an optimizer that skips such an update
  (:func:`~jaxtrain.optim.grad_scaler`, ``optax.apply_if_finite``) never updated
  again. Here a select resets and masks.

  With :func:`~jaxtrain.optim.grad_scaler`, compose
  ``accumulate(grad_scaler(optimizer), every_k)``.

  Args:
    optimizer: the optimizer to apply to the accumulated gradient.
    every_k: the number of micro-batches per update.

  Returns:
    An ``optax.GradientTransformationExtraArgs``; its updates are zero except on
    every ``every_k``-th call. Extra keyword arguments of ``update`` go to
    ``optimizer`` (on every call; only the ``every_k``-th call's result is kept).

  Raises:
    TypeError: when ``optimizer`` is not an ``optax.GradientTransformation`` or
      ``every_k`` not an integer.
    ValueError: when ``every_k`` is below 1.
  """
  _checks.transformation("accumulate", "optimizer", optimizer, example="jaxtrain.optim.sgd(0.1)")
  every_k = _checks.positive_integer("accumulate", "every_k", every_k)
  inner = optax.with_extra_args_support(optimizer)

  def init_fn(params):
    return optax.MultiStepsState(
      mini_step=jnp.zeros([], jnp.int32),
      gradient_step=jnp.zeros([], jnp.int32),
      inner_opt_state=inner.init(params),
      acc_grads=optax.tree.zeros_like(params),
      skip_state=(),
    )

  def update_fn(updates, state, params=None, **extra_args):
    acc = jax.tree.map(lambda a, g: a + (g / every_k).astype(a.dtype), state.acc_grads, updates)
    emit = state.mini_step == every_k - 1
    # The inner update runs on every call (a select, not a branch: no host round
    # trip for the flag on an accelerator); its result is kept on the k-th.
    inner_updates, inner_state = inner.update(
      optax.tree.cast_like(acc, updates), state.inner_opt_state, params, **extra_args
    )
    new_state = optax.MultiStepsState(
      mini_step=jnp.where(emit, 0, state.mini_step + 1).astype(jnp.int32),
      gradient_step=jnp.where(emit, optax.safe_increment(state.gradient_step), state.gradient_step),
      inner_opt_state=jax.tree.map(
        lambda new, old: jnp.where(emit, new, old), inner_state, state.inner_opt_state
      ),
      acc_grads=jax.tree.map(lambda a: jnp.where(emit, jnp.zeros_like(a), a), acc),
      skip_state=(),
    )
    updates = jax.tree.map(lambda u: jnp.where(emit, u, jnp.zeros_like(u)), inner_updates)
    return updates, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
