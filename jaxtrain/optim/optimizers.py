"""``torch.optim``'s optimizers as optax chains, with torch's arguments and defaults.

Each function returns an ``optax.GradientTransformation`` whose updates, applied
with ``optax.apply_updates``, give the parameters ``torch.optim.<Class>.step()``
gives for the same gradients: the same algorithm, the same operation order
(torch's single-tensor CPU path), so the two trajectories agree to float32
rounding. ``update`` needs ``params`` whenever ``weight_decay`` is non-zero.

``lr`` is a float or an optax schedule (a function of the update count, such as
:func:`jaxtrain.optim.step_lr`); update ``k`` (counting from 0) uses ``lr(k)``,
which is torch's learning rate at its ``k``-th ``optimizer.step()`` when the
scheduler is stepped after each optimizer step.

Arguments are checked when the optimizer is built. Values are validated as torch
validates them, with torch's messages (``ValueError``: ``Invalid learning rate:
-0.1``), and a NaN hyper-parameter is rejected everywhere in the same wording
(``Invalid momentum value: nan``), also where torch's SGD accepts it (its
``lr < 0.0`` checks let NaN through) or never checks (``dampening``): a NaN
hyper-parameter turns every parameter into NaN at the first update. Types are
checked too (``TypeError`` naming the argument): numbers must be numbers (a bool
is not), flags bools, ``betas`` a pair; torch fails on some of these only at
the first comparison (``'<' not supported between instances of 'str' and
'float'``) and accepts others (``SGD(momentum=True)``, ``Adam(betas=(0.9, 0.99,
0.9))``).

Naming: ``g`` is the gradient, ``p`` the parameter, ``t`` the step from 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import optax

from jaxtrain.optim import _checks, _transforms

ScalarOrSchedule = float | Callable[[jax.typing.ArrayLike], jax.typing.ArrayLike]


def _is_traced(value) -> bool:
  # optax.inject_hyperparams passes hyper-parameters as (possibly traced) arrays;
  # those cannot be checked, and were checked when given as numbers.
  return _checks.is_traced(value)


def _check_lr(fn: str, lr: ScalarOrSchedule) -> None:
  _checks.lr_or_schedule(fn, lr)
  if callable(lr):
    return
  # torch: `if not 0.0 <= lr`, which also rejects NaN (torch's SGD alone checks
  # `lr < 0.0` and lets NaN through; jaxtrain rejects it everywhere).
  _checks.check_value(lambda x: 0.0 <= x, lr, f"Invalid learning rate: {lr}")


def _check_nonnegative(fn: str, name: str, value, message: str) -> None:
  """A number >= 0: torch's `not 0.0 <= value` check, which rejects NaN, and message."""
  _checks.number(fn, name, value)
  _checks.check_value(lambda x: 0.0 <= x, value, message)


def _check_flags(fn: str, **flags) -> None:
  for name, value in flags.items():
    _checks.flag(fn, name, value)


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
      ``weight_decay``, and for ``nesterov`` without momentum or with dampening;
      for a NaN ``lr``, ``momentum``, ``dampening`` or ``weight_decay``.
    TypeError: for a hyper-parameter that is not a number (``lr``: or a
      schedule), a flag that is not a bool.
  """
  _check_lr("sgd", lr)
  # torch checks `momentum < 0.0` and `weight_decay < 0.0`, which let NaN through,
  # and never checks dampening; jaxtrain rejects NaN in torch's wording.
  _check_nonnegative("sgd", "momentum", momentum, f"Invalid momentum value: {momentum}")
  _checks.number("sgd", "dampening", dampening)
  _checks.check_value(
    lambda x: not math.isnan(x), dampening, f"Invalid dampening value: {dampening}"
  )
  _check_nonnegative(
    "sgd", "weight_decay", weight_decay, f"Invalid weight_decay value: {weight_decay}"
  )
  _check_flags("sgd", nesterov=nesterov, maximize=maximize)
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
    ValueError: as torch does, for a negative or NaN ``lr``, ``eps``,
      ``momentum``, ``weight_decay`` or ``alpha``.
    TypeError: for a hyper-parameter that is not a number (``lr``: or a
      schedule), a flag that is not a bool.
  """
  _check_lr("rmsprop", lr)
  _check_nonnegative("rmsprop", "eps", eps, f"Invalid epsilon value: {eps}")
  _check_nonnegative("rmsprop", "momentum", momentum, f"Invalid momentum value: {momentum}")
  _check_nonnegative(
    "rmsprop", "weight_decay", weight_decay, f"Invalid weight_decay value: {weight_decay}"
  )
  _check_nonnegative("rmsprop", "alpha", alpha, f"Invalid alpha value: {alpha}")
  _check_flags("rmsprop", centered=centered, maximize=maximize)
  scale = optax.scale_by_stddev if centered else optax.scale_by_rms
  return _chain(
    _maximize(maximize),
    _weight_decay(weight_decay),
    scale(decay=alpha, eps=eps, initial_scale=0.0, eps_in_sqrt=False, bias_correction=False),
    # torch: `if momentum > 0`; the buffer starts at zero, as optax.trace's.
    None if _is_zero(momentum) else optax.trace(decay=momentum),
    optax.scale_by_learning_rate(lr),
  )


def _check_adam(
  fn: str, lr, betas: Sequence[float], eps, weight_decay, amsgrad, maximize
) -> tuple[float, float]:
  """Adam's and AdamW's checks, in torch's order; returns the betas as floats."""
  _check_lr(fn, lr)
  _check_nonnegative(fn, "eps", eps, f"Invalid epsilon value: {eps}")
  b1, b2 = _checks.pair(fn, "betas", betas, expected="a pair (beta1, beta2)")
  for i, b in enumerate((b1, b2)):
    _checks.number(fn, f"betas[{i}]", b)
    # torch: `not 0.0 <= betas[i] < 1.0`, which rejects NaN.
    _checks.check_value(lambda x: 0.0 <= x < 1.0, b, f"Invalid beta parameter at index {i}: {b}")
  _check_nonnegative(
    fn, "weight_decay", weight_decay, f"Invalid weight_decay value: {weight_decay}"
  )
  _check_flags(fn, amsgrad=amsgrad, maximize=maximize)
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
    ValueError: as torch does, for a negative or NaN ``lr``, ``eps`` or
      ``weight_decay``, and for a beta outside [0, 1); for ``betas`` that are not
      two.
    TypeError: for a hyper-parameter that is not a number (``lr``: or a
      schedule), ``betas`` that are not a tuple or list, a flag that is not a bool.
  """
  b1, b2 = _check_adam("adam", lr, betas, eps, weight_decay, amsgrad, maximize)
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
  b1, b2 = _check_adam("adamw", lr, betas, eps, weight_decay, amsgrad, maximize)
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
  starts the accumulator at 0 by default (optax: 0.1) and has ``lr_decay``. Its
  ``t`` is Adagrad's own step count, not the (scheduled) learning rate's: the two
  part when :func:`~jaxtrain.optim.grad_scaler` skips a step, where torch's
  scheduler still steps and its Adagrad does not. Composition:
  ``optax.add_decayed_weights``,
  :func:`~jaxtrain.optim._transforms.scale_by_torch_adagrad`,
  :func:`~jaxtrain.optim._transforms.scale_by_inverse_time_decay` (when
  ``lr_decay != 0``), ``optax.scale_by_learning_rate``.

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
    ValueError: as torch does, for a negative or NaN ``lr``, ``lr_decay``,
      ``weight_decay``, ``initial_accumulator_value`` or ``eps``.
    TypeError: for a hyper-parameter that is not a number (``lr``: or a
      schedule), a flag that is not a bool.
  """
  _check_lr("adagrad", lr)
  _check_nonnegative("adagrad", "lr_decay", lr_decay, f"Invalid lr_decay value: {lr_decay}")
  _check_nonnegative(
    "adagrad", "weight_decay", weight_decay, f"Invalid weight_decay value: {weight_decay}"
  )
  _check_nonnegative(
    "adagrad",
    "initial_accumulator_value",
    initial_accumulator_value,
    f"Invalid initial_accumulator_value value: {initial_accumulator_value}",
  )
  _check_nonnegative("adagrad", "eps", eps, f"Invalid epsilon value: {eps}")
  _check_flags("adagrad", maximize=maximize)
  return _chain(
    _maximize(maximize),
    _weight_decay(weight_decay),
    _transforms.scale_by_torch_adagrad(initial_accumulator_value, eps),
    # torch's step counter, not the schedule's count: they part when a step is
    # skipped (grad_scaler), where torch's scheduler steps and its Adagrad does not.
    None if _is_zero(lr_decay) else _transforms.scale_by_inverse_time_decay(lr_decay),
    optax.scale_by_learning_rate(lr),
  )
