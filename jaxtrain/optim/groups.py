"""torch's parameter groups: different optimizers for different parts of the tree.

torch::

  torch.optim.Adam([{"params": model.parameters()},
                    {"params": gru.parameters(), "lr": 1e-3, "weight_decay": 1e-4}],
                   lr=1e-2)

jaxtrain, with the parameters in one pytree ``{"model": ..., "gru": ...}``::

  param_groups({"model": "model", "gru": "gru"},
               {"model": adam(lr=1e-2), "gru": adam(lr=1e-3, weight_decay=1e-4)})

Each group gets its own optimizer (any hyper-parameter may differ, as in torch,
and even the algorithm). Each group's state, and its schedule count, advance on
every update, as torch's groups all step together. Parameters torch's optimizer
was not given map to a group with ``optax.set_to_zero()``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

import jax
import optax

from jaxtrain.optim import _checks
from jaxtrain.optim.loss_scaling import GradScalerState


def param_groups(
  labels: Any | Callable[[Any], Any],
  optimizers: Mapping[Hashable, optax.GradientTransformation],
) -> optax.GradientTransformation:
  """One optimizer per parameter group, as torch's ``param_groups``.

  Built on ``optax.partition``: every leaf of the parameter tree is routed to the
  optimizer of its label, which sees (and keeps state for) only its own leaves.

  Args:
    labels: a pytree of group labels with the structure of the parameters, or a
      prefix of it (``{"model": "a", "gru": "b"}`` labels every leaf under
      ``"model"`` with ``"a"``), or a function from the parameters to such a tree.
    optimizers: the optimizer of each label (e.g. :func:`jaxtrain.optim.adam`).

  Returns:
    An ``optax.GradientTransformation``.

  Raises:
    TypeError: when ``optimizers`` is not a mapping of
      ``optax.GradientTransformation``, or ``labels`` is None.
    ValueError: when a label has no optimizer, ``labels`` has no leaves or
      ``optimizers`` is empty; at ``init``, when a group's optimizer is a
      :func:`~jaxtrain.optim.grad_scaler` (wrap the groups in one instead).
  """
  fn = "param_groups"
  if not isinstance(optimizers, Mapping):
    raise TypeError(
      f"{fn}: optimizers must be a mapping from label to optimizer, got {type(optimizers).__name__}"
    )
  if not optimizers:
    raise ValueError(f"{fn}: optimizers is empty; give one optimizer per label")
  for label, optimizer in optimizers.items():
    _checks.transformation(fn, f"optimizers[{label!r}]", optimizer, example="jaxtrain.optim.adam()")
  if labels is None:
    raise TypeError(
      f"{fn}: labels must be a pytree of labels or a function of the parameters, got None"
    )
  if not callable(labels):
    if not jax.tree.leaves(labels):
      raise ValueError(f"{fn}: labels has no leaves ({labels!r}); every parameter needs a label")
    unknown = {leaf for leaf in jax.tree.leaves(labels)} - set(optimizers)
    if unknown:
      raise ValueError(
        f"labels {sorted(map(repr, unknown))} have no optimizer; "
        f"optimizers are given for {sorted(map(repr, optimizers))}"
      )
  partition = optax.partition(dict(optimizers), labels)

  def init_fn(params):
    state = partition.init(params)
    scalers = [
      x
      for x in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, GradScalerState))
      if isinstance(x, GradScalerState)
    ]
    if scalers:
      # One train step has one loss, multiplied by one scale: a scaler per group
      # would unscale each group by its own.
      raise ValueError(
        f"{fn}: a group's optimizer is a grad_scaler; wrap all groups in one, "
        "grad_scaler(param_groups(...)), as torch's one GradScaler steps one "
        "optimizer with all its param groups"
      )
    return state

  return partition._replace(init=init_fn)
