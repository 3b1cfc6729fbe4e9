"""Sequence losses: torch's connectionist temporal classification (CTC) loss.

``ctc_loss`` mirrors ``torch.nn.functional.ctc_loss``: same argument names,
defaults, values and (quirky) gradients, with the hyper-parameters keyword-only.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxtrain.losses._checks import is_concrete
from jaxtrain.losses._reduction import as_float, check_reduction, reduce_loss

_NAME = "ctc_loss"


# --------------------------------------------------------------------------------------
# Input handling.


def _int_array(x, *, name: str, booleans: bool = False) -> jax.Array:
  """``x`` (array, Python int or sequence of ints) as an integer array, else ``TypeError``.

  With ``booleans``, a boolean ``x`` is read as labels 0 and 1 (torch casts it).
  """
  if not isinstance(x, (jax.Array, np.ndarray)):
    x = np.asarray(x)
  dtype = jnp.result_type(x)
  if booleans and dtype == jnp.bool_:
    return jnp.asarray(x).astype(jnp.int32)
  if not jnp.issubdtype(dtype, jnp.integer):
    raise TypeError(
      f"{_NAME}: {name} must hold integers, got dtype {dtype} (torch expects int64 / Long)"
    )
  return jnp.asarray(x)


def _lengths(x, batch: int, *, name: str, batched: bool) -> jax.Array:
  """One length per sample, shape ``(batch,)``."""
  x = _int_array(x, name=name)
  if x.ndim > 1 or x.size != batch:
    expected = f"({batch},)" if batched else "() or (1,) for unbatched log_probs"
    raise ValueError(
      f"{_NAME}: {name} must have one entry per sample (batch size {batch}), "
      f"got shape {tuple(x.shape)}; expected {expected}"
    )
  return x.reshape(batch)


def _concrete_max(x) -> int | None:
  """``max(x)`` as a Python int when ``x`` holds values now (0 for an empty ``x``), else None."""
  if not is_concrete(x):
    return None
  return int(np.max(np.asarray(x), initial=0))


def _padded_targets(targets, target_lengths, batch: int, *, batched: bool) -> jax.Array:
  """Targets as a padded ``(batch, S)`` array, whatever form they came in."""
  if targets.ndim == 2:
    if targets.shape[0] != batch:
      raise ValueError(
        f"{_NAME}: padded targets must have shape (N, S) with N = {batch} (the batch size "
        f"of log_probs), got shape {tuple(targets.shape)}"
      )
    return targets
  if targets.ndim != 1:
    raise ValueError(
      f"{_NAME}: targets must be 1-D (concatenated, or (S,) for unbatched log_probs) or "
      f"2-D (N, S) padded, got shape {tuple(targets.shape)}"
    )
  if not batched:
    return targets[None]
  # Concatenated targets: sample n is targets[offset_n : offset_n + target_lengths[n]].
  total = int(jnp.sum(target_lengths)) if is_concrete(target_lengths) else None
  if total is not None and targets.shape[0] != total:
    raise ValueError(
      f"{_NAME}: concatenated (1-D) targets must have length sum(target_lengths) = {total}, "
      f"got length {targets.shape[0]}"
    )
  # The padded width must be static: the longest target when the lengths are concrete,
  # else the whole concatenation (an upper bound, at the price of a wider lattice).
  width = _concrete_max(target_lengths)
  if width is None:
    width = targets.shape[0]
  if width == 0 or targets.shape[0] == 0:
    return jnp.zeros((batch, width), targets.dtype)
  offsets = jnp.cumsum(target_lengths) - target_lengths
  index = offsets[:, None] + jnp.arange(width)[None, :]
  # Reads past the end (possible only with traced, inconsistent lengths) give -1, an
  # invalid label, hence a NaN loss rather than a silently wrong one.
  return jnp.take(targets, index, mode="fill", fill_value=-1)


def _check_values(log_probs, targets, input_lengths, target_lengths) -> None:
  """Value checks, on whichever arguments hold values now (none inside jit or vmap)."""
  T, _, C = log_probs.shape
  for lengths, name in ((input_lengths, "input_lengths"), (target_lengths, "target_lengths")):
    if is_concrete(lengths) and lengths.size and int(jnp.min(lengths)) < 0:
      raise ValueError(f"{_NAME}: {name} must be non-negative, got value {int(jnp.min(lengths))}")
  longest = _concrete_max(input_lengths)
  if longest is not None and longest > T:
    raise ValueError(
      f"{_NAME}: input_lengths must be at most T = {T} (log_probs.shape[0]), got value {longest}"
    )
  longest = _concrete_max(target_lengths)
  if longest is not None and longest > targets.shape[1]:
    raise ValueError(
      f"{_NAME}: padded targets must have width S >= max(target_lengths) = {longest}, "
      f"got width {targets.shape[1]}"
    )
  if longest is not None and is_concrete(targets):
    t = np.asarray(targets)
    within = np.arange(t.shape[1])[None, :] < np.asarray(target_lengths)[:, None]
    bad = t[within & ((t < 0) | (t >= C))]
    if bad.size:
      raise ValueError(
        f"{_NAME}: targets hold label {int(bad[0])}, out of range; expected labels in "
        f"[0, {C - 1}] (C = log_probs.shape[-1])"
      )


# --------------------------------------------------------------------------------------
# The forward (alpha) recursion and torch's gradient.


def _logsumexp3(a, b, c):
  """``log(exp(a) + exp(b) + exp(c))`` whose value and gradient are clean at all ``-inf``."""
  m = jnp.maximum(jnp.maximum(a, b), c)
  reachable = m != -jnp.inf  # NaN counts: it propagates, as in torch's recursion
  # Shift by the (constant) max for stability; where no path reaches a state (all three
  # -inf), the double `where` keeps both the value (-inf) and its gradient (0) NaN-free,
  # where a plain logsumexp would back-propagate 0/0.
  shift = jax.lax.stop_gradient(jnp.where(reachable, m, 0.0))
  s = jnp.exp(a - shift) + jnp.exp(b - shift) + jnp.exp(c - shift)
  return jnp.where(reachable, jnp.log(jnp.where(reachable, s, 1.0)) + shift, -jnp.inf)


def _shift_right(x, k: int):
  """``x[:, s - k]`` along the lattice axis, ``-inf`` where ``s < k``."""
  return jnp.pad(x, ((0, 0), (k, 0)), constant_values=-jnp.inf)[:, : x.shape[1]]


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _emissions(num_classes: int, log_probs, index):
  """``log_probs[t, n, index[n, s]]`` for every ``t``: ``(T, N, C), (N, S') -> (T, N, S')``.

  One gather of ``N * S'`` columns of the ``(T, N * C)`` view. Its gradient adds
  the ``N * S'`` columns of the cotangent into rows of a ``(N * C, T)`` array (each
  a contiguous run of ``T``), then transposes. ``take_along_axis`` with the index
  broadcast over ``T`` built a ``(T, N, S', 3)`` index array for the gather and the
  scatter of its gradient; contiguous rows avoid it. A scatter into columns of the
  ``(T, N * C)`` view and a one-hot ``einsum`` were slower (measurements:
  docs/log.md, 2026-11-22, session 4).
  """
  T, N, _ = log_probs.shape
  columns = _flat_index(index, num_classes)
  return jnp.take(log_probs.reshape(T, -1), columns, axis=1, mode="clip").reshape(T, N, -1)


def _flat_index(index, num_classes: int):
  """Positions ``n * C + index[n, s]`` in a flattened ``(N, C)``, as one ``(N * S',)`` vector."""
  n = jnp.arange(index.shape[0], dtype=index.dtype)[:, None]
  return (n * num_classes + index).reshape(-1)


def _emissions_fwd(num_classes, log_probs, index):
  return _emissions(num_classes, log_probs, index), index


def _emissions_bwd(num_classes, index, g):
  T, N, _ = g.shape
  rows = _flat_index(index, num_classes)
  grad = (
    jnp.zeros((N * num_classes, T), g.dtype)
    .at[rows]
    .add(g.reshape(T, -1).T, mode="promise_in_bounds")
  )
  return grad.T.reshape(T, N, num_classes), None


_emissions.defvjp(_emissions_fwd, _emissions_bwd)


def _ctc_nll_forward(log_probs, labels, input_lengths, target_lengths, blank: int):
  """Per-sample ``-log p(target | log_probs)``, shape ``(N,)``; differentiable as is.

  Also returns ``alpha`` at the last valid step and the trailing blank (``(N,)``),
  which torch's gradient needs when the last label is the blank itself.
  """
  T, N, C = log_probs.shape
  S = labels.shape[1]
  # The extended sequence: blank, l_1, blank, l_2, ..., l_L, blank (then padding).
  ext = jnp.full((N, 2 * S + 1), blank, labels.dtype).at[:, 1::2].set(labels)
  # A path may skip the blank between two labels only when they differ.
  can_skip = ext != jnp.pad(ext, ((0, 0), (2, 0)), constant_values=blank)[:, : 2 * S + 1]
  valid_label = (ext >= 0) & (ext < C)
  emit = _emissions(C, log_probs, jnp.clip(ext, 0, C - 1))
  emit = jnp.where(valid_label[None], emit, jnp.nan)

  # alpha_{-1} puts all mass on a virtual state before position 0, so t = 0 needs no
  # special case and an input of length 0 keeps it (loss 0 iff the target is empty).
  alpha = jnp.full((N, 2 * S + 1), -jnp.inf, log_probs.dtype).at[:, 0].set(0.0)

  def step(alpha, xs):
    t, emit_t = xs
    skip = jnp.where(can_skip, _shift_right(alpha, 2), -jnp.inf)
    new = _logsumexp3(alpha, _shift_right(alpha, 1), skip) + emit_t
    # Steps past a sample's input length leave its alpha (and the gradient) untouched.
    return jnp.where((t < input_lengths)[:, None], new, alpha), None

  alpha, _ = jax.lax.scan(step, alpha, (jnp.arange(T), emit))

  # A path ends on the last label or the trailing blank: lattice positions 2L - 1, 2L.
  last = 2 * target_lengths
  end_blank = jnp.take_along_axis(alpha, last[:, None], axis=1, mode="fill", fill_value=jnp.nan)
  end_label = jnp.take_along_axis(
    alpha, jnp.maximum(last - 1, 0)[:, None], axis=1, mode="fill", fill_value=jnp.nan
  )
  end_label = jnp.where(target_lengths[:, None] > 0, end_label, -jnp.inf)
  nll = -_logsumexp3(end_blank, end_label, jnp.full_like(end_blank, -jnp.inf))[:, 0]
  # Lengths that only a traced call can carry past the checks give NaN, not a wrong number.
  bad = (input_lengths < 0) | (input_lengths > T) | (target_lengths < 0) | (target_lengths > S)
  return jnp.where(bad, jnp.nan, nll), end_blank[:, 0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _ctc_nll(log_probs, labels, input_lengths, target_lengths, blank: int, zero_infinity: bool):
  nll, _ = _ctc_nll_forward(log_probs, labels, input_lengths, target_lengths, blank)
  return jnp.where(zero_infinity & jnp.isinf(nll), 0.0, nll)


def _ctc_nll_fwd(log_probs, labels, input_lengths, target_lengths, blank, zero_infinity):
  nll, pullback, end_blank = jax.vjp(
    lambda lp: _ctc_nll_forward(lp, labels, input_lengths, target_lengths, blank),
    log_probs,
    has_aux=True,
  )
  out = jnp.where(zero_infinity & jnp.isinf(nll), 0.0, nll)
  return out, (pullback, log_probs, labels, input_lengths, target_lengths, nll, end_blank)


def _ctc_nll_bwd(blank, zero_infinity, residuals, g):
  pullback, log_probs, labels, input_lengths, target_lengths, nll, end_blank = residuals
  (grad,) = pullback(g)  # the true derivative: -g_n * gamma[t, n, c]
  T, _, C = log_probs.shape
  valid = (jnp.arange(T)[:, None] < input_lengths[None, :])[:, :, None]
  # torch's kernel returns g_n * (exp(log_probs) - gamma): the gradient with respect to
  # the logits of a log_softmax, not with respect to log_probs themselves.
  grad = grad + jnp.where(valid, jnp.exp(log_probs), 0.0) * g[None, :, None]
  # torch's kernel seeds gamma at the last valid step assuming the last label differs
  # from the blank; when it equals it, the trailing blank's share (its posterior,
  # exp(alpha + nll)) is overwritten, not added. Put it back to match.
  last_label = jnp.take_along_axis(labels, jnp.maximum(target_lengths - 1, 0)[:, None], axis=1)
  overwritten = (target_lengths > 0) & (last_label[:, 0] == blank) & (input_lengths > 0)
  share = jnp.where(overwritten & jnp.isfinite(nll), jnp.exp(end_blank + nll) * g, 0.0)
  at_last_blank = (jnp.arange(T)[:, None] == input_lengths - 1)[:, :, None] & (
    jnp.arange(C) == blank
  )
  grad = grad + jnp.where(at_last_blank, share[None, :, None], 0.0)
  # torch's formula, exp(lp) - exp(log gamma + nll - lp), is exp(-inf + inf) = NaN where
  # a log-probability lp is -inf (at a valid step), and NaN at every valid step of a
  # sample whose loss is NaN.
  grad = jnp.where(valid & ((log_probs == -jnp.inf) | jnp.isnan(nll)[None, :, None]), jnp.nan, grad)
  # It meets exp(-inf + inf) for an impossible target too: NaN at every valid step, or
  # 0 under zero_infinity.
  fill = 0.0 if zero_infinity else jnp.nan
  grad = jnp.where(valid & jnp.isinf(nll)[None, :, None], fill, grad)
  return grad, None, None, None


_ctc_nll.defvjp(_ctc_nll_fwd, _ctc_nll_bwd)


# --------------------------------------------------------------------------------------
# The public loss.


def ctc_loss(
  log_probs,
  targets,
  input_lengths,
  target_lengths,
  *,
  blank: int = 0,
  reduction: str = "mean",
  zero_infinity: bool = False,
) -> jax.Array:
  r"""Connectionist temporal classification loss, ``torch.nn.functional.ctc_loss``.

  For sample :math:`n` with input length :math:`T_n` and target
  :math:`l = (l_1, \dots, l_L)`, let :math:`l' = (b, l_1, b, l_2, \dots, l_L, b)` be
  the extended sequence of length :math:`2L + 1` (:math:`b` = ``blank``). The forward
  variables, in log space,

  .. math::
     \alpha_t(s) = x_{t, l'_s} + \log \sum_{k \in K(s)} \exp \alpha_{t-1}(k), \qquad
     K(s) = \{s, s-1\} \cup \{s - 2 : l'_s \ne l'_{s-2}\},

  start from :math:`\alpha_0(0) = x_{0,b}`, :math:`\alpha_0(1) = x_{0,l_1}`, and give

  .. math::
     \ell_n = -\log\big(e^{\alpha_{T_n - 1}(2L)} + e^{\alpha_{T_n - 1}(2L - 1)}\big).

  Only the first ``input_lengths[n]`` time steps and ``target_lengths[n]`` labels are
  read. A target no alignment can produce (too long for the input, counting the blank
  each repeated label needs) has :math:`\ell_n = +\infty`. ``'mean'`` divides each
  :math:`\ell_n` by :math:`\max(L_n, 1)`, then averages over the batch.

  Args:
    log_probs: log-probabilities :math:`x`, shape ``(T, N, C)``, or ``(T, C)``
      unbatched; normally ``log_softmax`` output (see the Note on gradients).
    targets: integer labels in ``[0, C)``: padded ``(N, S)`` with
      ``S >= max(target_lengths)``, or, for batched input, 1-D concatenated of
      length ``sum(target_lengths)``; ``(S,)`` (or ``(1, S)``) when unbatched.
    input_lengths: ``(N,)`` integers in ``[0, T]`` (array or sequence), or a scalar
      when unbatched.
    target_lengths: ``(N,)`` non-negative integers, or a scalar when unbatched.
    blank: the blank label, in ``[0, C)``.
    reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
    zero_infinity: replace infinite losses, and their gradients, by 0.

  Returns:
    The loss in ``log_probs``' dtype: shape ``(N,)`` for ``'none'`` (``()`` unbatched),
    else a scalar.

  Example:
    >>> x = jax.nn.log_softmax(jnp.zeros((3, 1, 2)))  # T=3, N=1, C=2, uniform
    >>> ctc_loss(x, jnp.array([[1]]), [3], [1], reduction='sum')  # -log(6/8)
    Array(0.28768206, dtype=float32)

  Note:
    * **Gradient.** As torch's kernel, the gradient with respect to ``log_probs`` is
      :math:`g_n (e^{x_{t,n,c}} - \gamma_{t,n,c})` for :math:`t < T_n` (0 after),
      where :math:`\gamma` is the posterior probability of emitting :math:`c` at
      :math:`t`. The true derivative is :math:`-g_n\gamma`; the extra
      :math:`g_n e^{x}` sums to zero through ``log_softmax``, so the two agree on
      the logits, which is how torch users call it, but not for unnormalised
      ``log_probs``. This function returns torch's gradient, not the true one.
    * An infinite loss with ``zero_infinity=False`` has a NaN gradient at every valid
      time step of that sample (torch's ``exp(-inf + inf)``), even under a zero
      cotangent; ``'mean'`` and ``'sum'`` are then ``inf``.
    * An input length of 0 gives loss 0 for an empty target and ``inf`` otherwise.
    * Labels equal to ``blank`` inside a target are not rejected (torch neither);
      they are treated as ordinary symbols of the extended sequence, as torch does.
      When the *last* label is the blank, torch's gradient at the last valid step
      drops the trailing blank's share of :math:`\gamma_{t,n,b}`; this is reproduced.
    * Differences from torch 2.13: unbatched 1-D targets are read as padded (only
      the first ``target_lengths`` entries are used), where torch requires their
      length to equal ``target_lengths``; float or bool targets raise ``TypeError``
      where torch silently casts them; out-of-range labels raise ``ValueError``
      where torch reads arbitrary memory. Inside ``jit``/``vmap``, where values
      cannot be checked, such labels and inconsistent lengths give NaN.
    * Concatenated targets inside ``jit`` (traced lengths) are padded to the full
      concatenated length, so the lattice is ``2 * sum(target_lengths) + 1`` wide;
      prefer padded targets for long batches under ``jit``.
    * float16/bfloat16 inputs are computed in float32 and returned in their dtype
      (torch's CPU kernel rejects them).
  """
  check_reduction(reduction)
  (log_probs,), out_dtype = as_float(log_probs, names=("log_probs",), loss=_NAME)
  if log_probs.ndim not in (2, 3):
    raise ValueError(
      f"{_NAME}: log_probs must be 3-D (T, N, C) or 2-D (T, C) unbatched, "
      f"got shape {tuple(log_probs.shape)}"
    )
  if log_probs.size == 0:
    raise ValueError(f"{_NAME}: log_probs must not be empty, got shape {tuple(log_probs.shape)}")
  batched = log_probs.ndim == 3
  if not batched:
    log_probs = log_probs[:, None, :]
  _, N, C = log_probs.shape
  if not isinstance(blank, (int, np.integer)) or isinstance(blank, bool):
    raise TypeError(f"{_NAME}: blank must be a Python int, got {blank!r}")
  if not 0 <= blank < C:
    raise ValueError(f"{_NAME}: blank={blank} must be in label range [0, {C - 1}] (C = {C})")

  targets = _int_array(targets, name="targets", booleans=True)
  input_lengths = _lengths(input_lengths, N, name="input_lengths", batched=batched)
  target_lengths = _lengths(target_lengths, N, name="target_lengths", batched=batched)
  labels = _padded_targets(targets, target_lengths, N, batched=batched)
  _check_values(log_probs, labels, input_lengths, target_lengths)
  # Entries past a target's length are padding, whatever they hold.
  within = jnp.arange(labels.shape[1])[None, :] < target_lengths[:, None]
  labels = jnp.where(within, labels, blank)

  nll = _ctc_nll(log_probs, labels, input_lengths, target_lengths, blank, bool(zero_infinity))
  if reduction == "mean":
    nll = nll / jnp.maximum(target_lengths, 1).astype(nll.dtype)
  out = reduce_loss(nll, reduction, out_dtype=out_dtype)
  return out if batched or reduction != "none" else out[0]
