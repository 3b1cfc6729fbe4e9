"""Dynamic loss scaling for float16 mixed precision, as ``torch.amp.GradScaler``.

torch::

  scaler = torch.amp.GradScaler(init_scale=2.0**16, growth_interval=2000)
  for x, y in loader:
    opt.zero_grad()
    with torch.autocast("cuda", dtype=torch.float16):
      loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()   # gradients of loss * scale
    scaler.step(opt)                # unscale; skip opt.step() if any is inf or NaN
    scaler.update()                 # back off on inf/NaN, grow after growth_interval good steps
    scheduler.step()

jaxtrain: ``opt = grad_scaler(sgd(...))``; the loss is multiplied by
``loss_scale(opt_state)`` before differentiating, and ``opt.update`` does the
rest of the three calls. ``found_inf(opt_state)`` says whether the last update
was skipped.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxtrain.optim import _checks

# optax's states whose count drives a schedule (the learning rate of every jaxtrain
# and optax optimizer given a schedule, optax.inject_hyperparams' hyper-parameters).
_SCHEDULE_STATES = (optax.ScaleByScheduleState,)
_INJECT_STATES = (
  optax.InjectHyperparamsState,
  optax.InjectStatefulHyperparamsState,
)


class GradScalerState(NamedTuple):
  """State of :func:`grad_scaler`."""

  scale: jax.Array  # float32 scalar: torch's `_scale`, what the next loss is multiplied by.
  growth_tracker: jax.Array  # int32 scalar: torch's `_growth_tracker`.
  found_inf: jax.Array  # int32 scalar: 1 if the last update was skipped, else 0.
  inner_state: optax.OptState  # the wrapped optimizer's state.


def grad_scaler(
  optimizer: optax.GradientTransformation,
  *,
  init_scale: float = 2.0**16,
  growth_factor: float = 2.0,
  backoff_factor: float = 0.5,
  growth_interval: int = 2000,
) -> optax.GradientTransformationExtraArgs:
  """Wraps ``optimizer`` in ``torch.amp.GradScaler``'s dynamic loss scaling.

  ``update(grads, state, params)`` takes the gradients of the *scaled* loss,
  ``loss * loss_scale(state)``, and does what torch's ``scaler.unscale_(opt);
  scaler.step(opt); scaler.update()`` do (torch 2.13.0, ``torch/amp/grad_scaler.py``
  and the CPU kernels of ``aten/src/ATen/native/cpu/AmpGradScalerKernels.cpp``)::

    inv_scale = 1 / scale                       (float32, see below)
    found_inf = any(not isfinite(g))            over every leaf, on the SCALED g
    g <- g * inv_scale                          (in float32 for bfloat16 g)
    if found_inf:  updates = 0, inner state unchanged (but schedule counts, below)
    else:          updates, inner state = optimizer.update(g, inner state, params)
    # torch._amp_update_scale_:
    if found_inf:  scale <- scale * backoff_factor;  growth_tracker <- 0
    elif growth_tracker + 1 == growth_interval:
                   scale <- scale * growth_factor if that is finite, else scale
                   growth_tracker <- 0
    else:          growth_tracker <- growth_tracker + 1

  torch details reproduced:

  * ``inv_scale`` is ``scale.double().reciprocal().float()`` in torch, which is
    the correctly rounded float32 ``1 / scale`` (a float32 reciprocal is never
    close enough to a float32 rounding midpoint for the float64 step to round
    differently). Here: exact exponent arithmetic when ``scale`` is a power of
    two (always, with power-of-two ``init_scale`` and factors, as the defaults),
    else float32 division (correctly rounded on XLA:CPU; XLA:GPU's float32
    division is within 2 ulps).
  * The kernel tests each value for inf/NaN *before* multiplying by
    ``inv_scale`` (``if (!std::isfinite(val_in)) *found_inf_ptr = 1.f;`` then
    ``val_in * inv_scale_val``): a finite scaled gradient that overflows only
    once unscaled (``scale < 1``) is not caught, in torch as here.
  * Growth needs ``growth_interval`` consecutive unskipped updates (the tracker
    is compared with ``==`` after incrementing) and is dropped, with the tracker
    still reset, when ``scale * growth_factor`` is not finite in float32.
  * The scale is float32 and the tracker int32; ``scale * factor`` rounds once
    to float32. torch multiplies in float64 before that rounding: the same
    number for power-of-two factors, within 1 ulp of the scale otherwise.
  * A skipped update leaves the wrapped optimizer's state (Adam's step count and
    moments, the momentum buffer, Adagrad's sums and step) unchanged, as a
    skipped ``optimizer.step()`` does, and returns zero updates.
  * float16 gradients raise, as torch's ``"Attempting to unscale FP16
    gradients."``: keep float32 parameters (and gradients) with a float16 forward.

  Schedules: torch's ``scheduler.step()`` runs whether or not ``scaler.step()``
  skipped ``optimizer.step()``, so its learning rate counts iterations, skipped
  or not. jaxtrain's schedules are functions of optax's update count, which
  lives in the optimizer state (``optax.ScaleByScheduleState``, and
  ``optax.inject_hyperparams``' count). On a skipped update those counts
  advance and the rest of the inner state does not, so the learning rate of
  update ``k`` is ``lr(k)`` with ``k`` counting every update, skipped or not,
  and trajectories match torch step for step with a per-batch schedule (a
  ``StepLR`` stepped every batch), a per-epoch one or a constant ``lr``.

  Composition, as torch's recipes compose them:

  * ``grad_scaler(param_groups(labels, {...}))``: one scaler around all groups,
    torch's one optimizer with param groups (an inf anywhere skips every group).
    A ``grad_scaler`` per group is rejected at ``init``: the loss is multiplied
    by one scale.
  * ``accumulate(grad_scaler(opt), k)``: torch's gradient accumulation with a
    scaler unscales, checks and updates the scale once per real step, on the
    accumulated gradient, and keeps the scale fixed over the ``k``
    micro-batches. Multiply every micro-batch's loss by ``loss_scale(state)``;
    ``accumulate`` sums ``g / k`` as torch sums the gradients of ``loss / k``.
    An inf or NaN micro-batch skips its own update only. The other order,
    ``grad_scaler(accumulate(opt, k))``, would check and rescale every
    micro-batch, which torch cannot do; ``init`` rejects it, and a
    ``grad_scaler`` inside another.

  Works under ``jax.jit``, ``lax.scan`` and ``vmap``: the skip is a select, not
  a branch (no host round trip for the flag on an accelerator).

  Not reproduced: XLA flushes float32 subnormals to zero on CPU, so a scale
  below ``2**-126`` (after about 140 consecutive backoffs from ``2**16``)
  becomes 0 here while torch keeps a subnormal; torch's ``enabled=False``
  (use ``optimizer`` itself), ``update(new_scale)`` (replace ``state.scale``).

  Args:
    optimizer: the optax optimizer to wrap (e.g. :func:`jaxtrain.optim.adam`).
    init_scale: the first scale (torch's ``init_scale``), a finite number > 0,
      rounded to float32.
    growth_factor: multiplies the scale after ``growth_interval`` consecutive
      unskipped updates; > 1.
    backoff_factor: multiplies the scale after a skipped update; in (0, 1).
    growth_interval: the number of consecutive unskipped updates before a
      growth; a positive integer below ``2**31``.

  Returns:
    An ``optax.GradientTransformationExtraArgs``; its state is a
    :class:`GradScalerState`. Extra keyword arguments of ``update`` go to
    ``optimizer``.

  Raises:
    ValueError: as torch does, ``The growth factor must be > 1.0.`` and ``The
      backoff factor must be < 1.0.`` (torch raises ``AssertionError``), also
      for NaN; for an ``init_scale`` that is not finite and > 0 in float32, a
      ``backoff_factor`` <= 0, a ``growth_interval`` below 1 or above
      ``2**31 - 1``.
    TypeError: when ``optimizer`` is not an ``optax.GradientTransformation``, a
      factor or ``init_scale`` not a number, ``growth_interval`` not an integer.
  """
  fn = "grad_scaler"
  _checks.transformation(fn, "optimizer", optimizer, example="jaxtrain.optim.adam()")
  init_scale = _checks.concrete_number(fn, "init_scale", init_scale)
  growth_factor = _checks.concrete_number(fn, "growth_factor", growth_factor)
  backoff_factor = _checks.concrete_number(fn, "backoff_factor", backoff_factor)
  # torch's own two checks, worded as torch; `not x > 1.0` also rejects NaN.
  if not growth_factor > 1.0:
    raise ValueError("The growth factor must be > 1.0.")
  if not backoff_factor < 1.0:
    raise ValueError("The backoff factor must be < 1.0.")
  if not backoff_factor > 0.0:
    raise ValueError(f"{fn}: backoff_factor must be > 0, got {backoff_factor!r}")
  with np.errstate(over="ignore", under="ignore"):
    init_scale32 = np.float32(init_scale)
  if not (np.isfinite(init_scale32) and init_scale32 > 0):
    raise ValueError(f"{fn}: init_scale must be a finite number > 0 in float32, got {init_scale!r}")
  growth_interval = _checks.positive_integer(fn, "growth_interval", growth_interval)
  if growth_interval > np.iinfo(np.int32).max:
    # torch's tracker is an int32 too; it would overflow before reaching it.
    raise ValueError(f"{fn}: growth_interval must be below 2**31, got {growth_interval}")
  with np.errstate(over="ignore", under="ignore"):
    growth32, backoff32 = np.float32(growth_factor), np.float32(backoff_factor)
  inner = optax.with_extra_args_support(optimizer)

  def init_fn(params):
    inner_state = inner.init(params)
    _reject_nested(inner_state)
    return GradScalerState(
      scale=jnp.asarray(init_scale32, jnp.float32),
      growth_tracker=jnp.zeros([], jnp.int32),
      found_inf=jnp.zeros([], jnp.int32),
      inner_state=inner_state,
    )

  def update_fn(updates, state, params=None, **extra_args):
    leaves = jax.tree.leaves(updates)
    _check_gradient_dtypes(leaves)
    inv_scale = _reciprocal(state.scale)
    found = functools.reduce(
      jnp.logical_or, [jnp.any(~jnp.isfinite(g)) for g in leaves], jnp.zeros([], bool)
    )
    unscaled = jax.tree.map(functools.partial(_unscale, inv_scale=inv_scale), updates)
    inner_updates, inner_state = inner.update(unscaled, state.inner_state, params, **extra_args)
    inner_updates = jax.tree.map(lambda u: jnp.where(found, jnp.zeros_like(u), u), inner_updates)
    inner_state = _after_skip(found, state.inner_state, inner_state)
    # torch._amp_update_scale_.
    successful = state.growth_tracker + 1
    grow = successful == growth_interval
    grown = state.scale * growth32
    scale = jnp.where(
      found,
      state.scale * backoff32,
      jnp.where(grow & jnp.isfinite(grown), grown, state.scale),
    )
    tracker = jnp.where(found | grow, jnp.zeros_like(successful), successful)
    return inner_updates, GradScalerState(
      scale=scale,
      growth_tracker=tracker,
      found_inf=found.astype(jnp.int32),
      inner_state=inner_state,
    )

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _reciprocal(scale: jax.Array) -> jax.Array:
  """``float32(1 / scale)`` correctly rounded, as torch's float64 reciprocal rounded.

  For a power of two ``2**k`` (biased exponent ``e = k + 127``, zero mantissa),
  ``2**-k`` has biased exponent ``254 - e``: its bits are ``(254 << 23) - bits``,
  exact on every backend. Other scales (and those whose reciprocal would not be
  a normal float32) use division.
  """
  bits = jax.lax.bitcast_convert_type(scale, jnp.int32)
  exponent = bits >> 23  # the sign bit is 0: scales are positive
  power_of_two = ((bits & 0x7FFFFF) == 0) & (exponent >= 1) & (exponent <= 253)
  exact = jax.lax.bitcast_convert_type((254 << 23) - bits, jnp.float32)
  return jnp.where(power_of_two, exact, jnp.float32(1.0) / scale)


def _unscale(g: jax.Array, *, inv_scale: jax.Array) -> jax.Array:
  # torch's kernel multiplies reduced-precision values in float (its opmath
  # type) and rounds back; float32 and float64 values in their own type.
  compute = jnp.float32 if jnp.dtype(g.dtype).itemsize < 4 else g.dtype
  return (g.astype(compute) * inv_scale.astype(compute)).astype(g.dtype)


def _check_gradient_dtypes(leaves) -> None:
  for g in leaves:
    dtype = jnp.result_type(g)
    if dtype == jnp.float16:
      raise TypeError(
        "Attempting to unscale FP16 gradients. (grad_scaler: as torch's GradScaler, "
        "it needs float32 parameters and gradients; run the forward pass in float16 "
        "and keep float32 parameters)"
      )
    if not jnp.issubdtype(dtype, jnp.floating):
      raise TypeError(f"grad_scaler: gradients must be floating point, got a leaf of {dtype}")


def _after_skip(found: jax.Array, old: Any, new: Any) -> Any:
  """The inner state after an update that ``found`` may have skipped.

  ``new`` where nothing was found; else ``old``, except that schedule counts
  (and ``inject_hyperparams``' hyper-parameters, functions of its count) take
  their values from ``new``: torch's scheduler steps on skipped iterations.
  """

  def is_node(x):
    return isinstance(x, _SCHEDULE_STATES + _INJECT_STATES)

  old_nodes, treedef = jax.tree.flatten(old, is_leaf=is_node)
  new_nodes = treedef.flatten_up_to(new)
  merged = []
  for o, n in zip(old_nodes, new_nodes, strict=True):
    if isinstance(o, _SCHEDULE_STATES):
      merged.append(n)
    elif isinstance(o, _INJECT_STATES):
      merged.append(n._replace(inner_state=_after_skip(found, o.inner_state, n.inner_state)))
    else:
      merged.append(jnp.where(found, o, n))
  return treedef.unflatten(merged)


def _reject_nested(inner_state) -> None:
  nodes = jax.tree.leaves(
    inner_state, is_leaf=lambda x: isinstance(x, (GradScalerState, optax.MultiStepsState))
  )
  for node in nodes:
    if isinstance(node, GradScalerState):
      raise ValueError(
        "grad_scaler: the optimizer it wraps holds another grad_scaler; use one, "
        "around everything (the loss can be multiplied by one scale)"
      )
    if isinstance(node, optax.MultiStepsState):
      raise ValueError(
        "grad_scaler: the optimizer it wraps accumulates gradients (accumulate); "
        "compose accumulate(grad_scaler(optimizer), every_k), which unscales and "
        "checks the accumulated gradient once per update, as torch does"
      )


def _the_scaler_state(opt_state, fn: str) -> GradScalerState:
  found = [
    node
    for node in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, GradScalerState))
    if isinstance(node, GradScalerState)
  ]
  if not found:
    raise ValueError(
      f"{fn}: opt_state holds no GradScalerState; build the optimizer with "
      "jaxtrain.optim.grad_scaler(...) (got a state of type "
      f"{type(opt_state).__name__})"
    )
  if len(found) > 1:
    raise ValueError(
      f"{fn}: opt_state holds {len(found)} GradScalerStates (one grad_scaler per "
      "param group?); the loss can be multiplied by one scale: wrap all groups in "
      "one grad_scaler(param_groups(...))"
    )
  return found[0]


def loss_scale(opt_state) -> jax.Array:
  """The scale the next update expects the loss to be multiplied by.

  torch's ``scaler.get_scale()`` (what ``scaler.scale(loss)`` multiplies by).
  ``opt_state`` is any pytree holding the state of one :func:`grad_scaler`
  (the optimizer state, or a train state around it).

  Returns:
    A float32 scalar array.

  Raises:
    ValueError: when ``opt_state`` holds no :class:`GradScalerState`, or several.
  """
  return _the_scaler_state(opt_state, "loss_scale").scale


def found_inf(opt_state) -> jax.Array:
  """1 (int32) if the last update skipped the optimizer step (inf or NaN found), else 0.

  With ``accumulate(grad_scaler(...), k)``, the last *real* update's flag: it
  keeps its value over the next ``k - 1`` micro-batches.

  Raises:
    ValueError: when ``opt_state`` holds no :class:`GradScalerState`, or several.
  """
  return _the_scaler_state(opt_state, "found_inf").found_inf
