"""``torch.optim``'s optimizers as optax chains, with torch's arguments and defaults.

Each function returns an ``optax.GradientTransformation`` whose updates, applied
with ``optax.apply_updates``, give the parameters ``torch.optim.<Class>.step()``
gives for the same gradients: the same algorithm, the same operation order
(torch's single-tensor CPU path), so the two trajectories agree to float32
rounding. ``update`` needs ``params`` whenever ``weight_decay`` is non-zero.

``lr`` is a float or an optax schedule (a function of the update count, such as
:func:`jaxtrain.optim.step_lr`); update ``k`` (counting from 0) uses ``lr(k)``,
which is torch's learning rate at its ``k``-th ``optimizer.step()`` when the
scheduler is stepped after each optimizer step. Hyper-parameters are validated
as torch validates them, with torch's messages (``ValueError``).

Naming: ``g`` is the gradient, ``p`` the parameter, ``t`` the step from 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import optax

from jaxtrain.optim import _transforms

ScalarOrSchedule = float | Callable[[jax.typing.ArrayLike], jax.typing.ArrayLike]


def _is_traced(value) -> bool:
  # optax.inject_hyperparams passes hyper-parameters as (possibly traced) arrays;
  # those cannot be checked, and were checked when given as numbers.
  return isinstance(value, jax.core.Tracer)


def _check(ok: Callable[[float], bool], value, message: str) -> None:
  if _is_traced(value):
    return
  if not ok(float(value)):
    raise ValueError(message)


def _check_lr(lr: ScalarOrSchedule) -> None:
  if callable(lr):
    return
  # torch: `if not 0.0 <= lr`, which also rejects NaN (torch's SGD alone checks
  # `lr < 0.0` and lets NaN through; jaxtrain rejects it everywhere).
  _check(lambda x: 0.0 <= x, lr, f"Invalid learning rate: {lr}")


def _check_nonnegative(value, message: str) -> None:
  _check(lambda x: 0.0 <= x, value, message)


def _chain(*transforms: optax.GradientTransformation | None) -> optax.GradientTransformation:
  return optax.chain(*(t for t in transforms if t is not None))


def _maximize(maximize: bool) -> optax.GradientTransformation | None:
  # torch negates the gradient first (`grad = -grad`), before weight decay.
  return optax.scale(-1.0) if maximize else None


def _weight_decay(weight_decay) -> optax.GradientTransformation | None:
  # torch's (coupled) weight decay: grad.add(param, alpha=weight_decay).
  return None if _is_zero(weight_decay) else optax.add_decayed_weights(weight_decay)


def _is_zero(value) -> bool:
  """Whether a hyper-parameter is the number 0, so its transform can be left out.

  A jax array (a hyper-parameter injected by ``optax.inject_hyperparams``, which
  may change between steps) counts as non-zero: its transform stays in the
  chain, where a zero value is then exact, and the state keeps one structure.
  """
  return not isinstance(value, jax.Array) and float(value) == 0.0


def sgd(
    lr: ScalarOrSchedule = 1e-3,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
  """Stochastic gradient descent, as ``torch.optim.SGD``.

  Update rule (torch's ``_single_tensor_sgd``)::

    g <- -g                                   if maximize
    g <- g + weight_decay * p                 if weight_decay != 0
    if momentum != 0:
      b_1 = g;  b_t = momentum * b_{t-1} + (1 - dampening) * g
      g <- g + momentum * b_t   if nesterov   else   b_t
    p <- p - lr * g

  Composition: ``optax.add_decayed_weights``, ``optax.trace`` (exact for
  ``dampening == 0``; with dampening, :func:`~jaxtrain.optim._transforms.trace_with_dampening`,
  since optax has no dampening and torch's first buffer is the undampened
  gradient), ``optax.scale_by_learning_rate``.

  Args:
    lr: learning rate, a float or a schedule (torch's default 1e-3).
    momentum: momentum factor.
    dampening: dampening for momentum.
    weight_decay: L2 penalty added to the gradient.
    nesterov: Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.
    maximize: maximize the objective instead of minimizing it.

  Returns:
    An ``optax.GradientTransformation``.

  Raises:
    ValueError: as torch does, for a negative ``lr``, ``momentum`` or
      ``weight_decay``, and for ``nesterov`` without momentum or with dampening.
  """
  _check_lr(lr)
  _check_nonnegative(momentum, f"Invalid momentum value: {momentum}")
  _check_nonnegative(weight_decay, f"Invalid weight_decay value: {weight_decay}")
  if nesterov and not (_is_traced(momentum) or _is_traced(dampening)):
    if float(momentum) <= 0 or float(dampening) != 0:
      raise ValueError("Nesterov momentum requires a momentum and zero dampening")
  if _is_zero(momentum):
    momentum_transform = None
  elif _is_zero(dampening):
    momentum_transform = optax.trace(decay=momentum, nesterov=nesterov)
  else:
    momentum_transform = _transforms.trace_with_dampening(momentum, dampening, nesterov)
  return _chain(
      _maximize(maximize),
      _weight_decay(weight_decay),
      momentum_transform,
      optax.scale_by_learning_rate(lr),
  )


def rmsprop(
    lr: ScalarOrSchedule = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
  """RMSprop, as ``torch.optim.RMSprop``.

  Update rule (torch's ``_single_tensor_rmsprop``)::

    g <- -g                                   if maximize
    g <- g + weight_decay * p                 if weight_decay != 0
    v_t = alpha * v_{t-1} + (1 - alpha) * g^2         (v_0 = 0)
    a_t = alpha * a_{t-1} + (1 - alpha) * g           (centered only)
    d = sqrt(v_t - a_t^2) + eps   if centered   else   sqrt(v_t) + eps
    if momentum > 0:  b_t = momentum * b_{t-1} + g / d;  p <- p - lr * b_t
    else:             p <- p - lr * g / d

  Differences from ``optax.rmsprop`` handled here: torch adds ``eps`` *outside*
  the square root (optax's default is inside), its smoothing default is 0.99
  (optax: 0.9), and with momentum torch multiplies by ``lr`` *after* the momentum
  buffer (optax before it, which differs as soon as ``lr`` follows a schedule).
  Composition: ``optax.scale_by_rms`` / ``optax.scale_by_stddev`` with
  ``eps_in_sqrt=False``, ``optax.trace``, ``optax.scale_by_learning_rate``.

  Args:
    lr: learning rate, a float or a schedule.
    alpha: smoothing constant of the squared-gradient average.
    eps: added to the denominator, outside the square root.
    weight_decay: L2 penalty added to the gradient.
    momentum: momentum factor.
    centered: normalize by the estimated variance instead of the second moment.
    maximize: maximize the objective instead of minimizing it.

  Returns:
    An ``optax.GradientTransformation``.

  Raises:
    ValueError: as torch does, for a negative ``lr``, ``eps``, ``momentum``,
      ``weight_decay`` or ``alpha``.
  """
  _check_lr(lr)
  _check_nonnegative(eps, f"Invalid epsilon value: {eps}")
  _check_nonnegative(momentum, f"Invalid momentum value: {momentum}")
  _check_nonnegative(weight_decay, f"Invalid weight_decay value: {weight_decay}")
  _check_nonnegative(alpha, f"Invalid alpha value: {alpha}")
  scale = optax.scale_by_stddev if centered else optax.scale_by_rms
  return _chain(
      _maximize(maximize),
      _weight_decay(weight_decay),
      scale(decay=alpha, eps=eps, initial_scale=0.0, eps_in_sqrt=False, bias_correction=False),
      # torch: `if momentum > 0`; the buffer starts at zero, as optax.trace's.
      None if _is_zero(momentum) else optax.trace(decay=momentum),
      optax.scale_by_learning_rate(lr),
  )


def _check_betas(betas: Sequence[float]) -> tuple[float, float]:
  b1, b2 = betas
  for i, b in enumerate((b1, b2)):
    _check(lambda x: 0.0 <= x < 1.0, b, f"Invalid beta parameter at index {i}: {b}")
  return float(b1), float(b2)


def adam(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
  """Adam, as ``torch.optim.Adam``; ``weight_decay`` is L2 added to the gradient.

  Update rule (torch's ``_single_tensor_adam``), ``(b1, b2) = betas``::

    g <- -g                                   if maximize
    g <- g + weight_decay * p                 if weight_decay != 0  (coupled L2)
    m_t = b1 * m_{t-1} + (1 - b1) * g
    v_t = b2 * v_{t-1} + (1 - b2) * g^2
    vmax_t = max(vmax_{t-1}, v_t)             if amsgrad (raw second moment)
    p <- p - lr * (m_t / (1 - b1^t)) / (sqrt(v_t or vmax_t) / sqrt(1 - b2^t) + eps)

  torch's ``weight_decay`` here is *not* optax's ``adamw`` decay: it enters the
  moments, as ``optax.chain(optax.add_decayed_weights(wd), optax.adam(lr))``. Use
  :func:`adamw` for decoupled decay. Composition: ``optax.add_decayed_weights``,
  :func:`~jaxtrain.optim._transforms.scale_by_torch_adam` (AMSGrad on the raw
  second moment, float64-accurate bias corrections), ``optax.scale_by_learning_rate``.

  Args:
    lr: learning rate, a float or a schedule.
    betas: decay rates of the first and second moment averages, each in [0, 1).
    eps: added to the denominator, outside the square root.
    weight_decay: L2 penalty added to the gradient.
    amsgrad: use the running maximum of the second moment (AMSGrad).
    maximize: maximize the objective instead of minimizing it.

  Returns:
    An ``optax.GradientTransformation``.

  Raises:
    ValueError: as torch does, for a negative ``lr``, ``eps`` or ``weight_decay``,
      and for a beta outside [0, 1).
  """
  _check_lr(lr)
  _check_nonnegative(eps, f"Invalid epsilon value: {eps}")
  b1, b2 = _check_betas(betas)
  _check_nonnegative(weight_decay, f"Invalid weight_decay value: {weight_decay}")
  return _chain(
      _maximize(maximize),
      _weight_decay(weight_decay),
      _transforms.scale_by_torch_adam(b1, b2, eps, amsgrad),
      optax.scale_by_learning_rate(lr),
  )


def adamw(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
  """AdamW (decoupled weight decay), as ``torch.optim.AdamW``.

  Update rule (torch's ``_single_tensor_adam`` with ``decoupled_weight_decay``)::

    g <- -g                                   if maximize
    p <- p * (1 - lr_t * weight_decay)        (the scheduled lr of this step)
    then Adam's step without weight decay (see :func:`adam`) on the decayed p

  which is ``p <- p - lr_t * (adam_direction + weight_decay * p_old)``: optax's
  ``add_decayed_weights`` placed after the Adam scaling and before the learning
  rate. Differences from ``optax.adamw``: torch's default ``weight_decay`` is 1e-2
  (optax: 1e-4), AMSGrad and bias corrections as in :func:`adam`.

  Args:
    lr: learning rate, a float or a schedule.
    betas: decay rates of the first and second moment averages, each in [0, 1).
    eps: added to the denominator, outside the square root.
    weight_decay: decoupled weight decay coefficient (torch's default 1e-2).
    amsgrad: use the running maximum of the second moment (AMSGrad).
    maximize: maximize the objective instead of minimizing it.

  Returns:
    An ``optax.GradientTransformation``.

  Raises:
    ValueError: as :func:`adam`.
  """
  _check_lr(lr)
  _check_nonnegative(eps, f"Invalid epsilon value: {eps}")
  b1, b2 = _check_betas(betas)
  _check_nonnegative(weight_decay, f"Invalid weight_decay value: {weight_decay}")
  return _chain(
      _maximize(maximize),
      _transforms.scale_by_torch_adam(b1, b2, eps, amsgrad),
      _weight_decay(weight_decay),
      optax.scale_by_learning_rate(lr),
  )


def adagrad(
    lr: ScalarOrSchedule = 1e-2,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
  """Adagrad, as ``torch.optim.Adagrad``.

  Update rule (torch's ``_single_tensor_adagrad``), ``t`` from 1::

    g <- -g                                   if maximize
    g <- g + weight_decay * p                 if weight_decay != 0
    clr = lr_t / (1 + (t - 1) * lr_decay)
    s_t = s_{t-1} + g^2                       (s_0 = initial_accumulator_value)
    p <- p - clr * g / (sqrt(s_t) + eps)

  Differences from ``optax.adagrad``: torch adds ``eps`` outside the square root,
  starts the accumulator at 0 by default (optax: 0.1) and has ``lr_decay``, which
  here divides the (possibly scheduled) learning rate inside the lr schedule.
  Composition: ``optax.add_decayed_weights``,
  :func:`~jaxtrain.optim._transforms.scale_by_torch_adagrad`,
  ``optax.scale_by_learning_rate``.

  Args:
    lr: learning rate, a float or a schedule.
    lr_decay: learning-rate decay (inverse-time, per step).
    weight_decay: L2 penalty added to the gradient.
    initial_accumulator_value: starting value of the sum of squared gradients.
    eps: added to the denominator, outside the square root.
    maximize: maximize the objective instead of minimizing it.

  Returns:
    An ``optax.GradientTransformation``.

  Raises:
    ValueError: as torch does, for a negative ``lr``, ``lr_decay``,
      ``weight_decay``, ``initial_accumulator_value`` or ``eps``.
  """
  _check_lr(lr)
  _check_nonnegative(lr_decay, f"Invalid lr_decay value: {lr_decay}")
  _check_nonnegative(weight_decay, f"Invalid weight_decay value: {weight_decay}")
  _check_nonnegative(
      initial_accumulator_value,
      f"Invalid initial_accumulator_value value: {initial_accumulator_value}",
  )
  _check_nonnegative(eps, f"Invalid epsilon value: {eps}")
  if _is_zero(lr_decay):
    clr = lr
  else:
    base = lr if callable(lr) else (lambda count: lr)
    # torch: clr = lr / (1 + (step - 1) * lr_decay); optax's count is step - 1.
    clr = lambda count: base(count) / (1 + count * lr_decay)  # noqa: E731
  return _chain(
      _maximize(maximize),
      _weight_decay(weight_decay),
      _transforms.scale_by_torch_adagrad(initial_accumulator_value, eps),
      optax.scale_by_learning_rate(clr),
  )
