"""``softplus`` and ``log_sigmoid`` for the logistic losses, with one ``exp`` per element.

Both are written with :math:`e = \\exp(-|x|) \\in (0, 1]`, which never overflows:

.. math::
   \\mathrm{softplus}(x) = \\max(x, 0) + \\log(1 + e), \\qquad
   \\log\\sigma(x) = \\min(x, 0) - \\log(1 + e)

as torch's CPU kernels compute them (``log1p(exp(-|x|))``). Their derivatives,
:math:`\\sigma(x)` and :math:`\\sigma(-x)`, reuse the same :math:`e`:
:math:`1 / (1 + e)` on one side of 0 and :math:`e / (1 + e)` on the other.

``jax.nn.softplus`` is ``logaddexp(x, 0)``, whose JVP computes two more
exponentials from its result (``exp(x - out)`` for each argument) and whose NaN
and infinity handling adds selects; the logistic losses are made of such
elementwise work, which these forms do once (measurements: docs/log.md,
2026-11-22, session 4).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxtrain.losses._checks import plain_when_concrete


@jax.custom_jvp
def _softplus(x: jax.Array) -> jax.Array:
  r"""``log(1 + exp(x))`` without overflow; gradient ``sigmoid(x)``."""
  return jnp.maximum(x, 0) + jnp.log1p(jnp.exp(-jnp.abs(x)))


@_softplus.defjvp
def _softplus_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  e = jnp.exp(-jnp.abs(x))
  r = 1 / (1 + e)
  return jnp.maximum(x, 0) + jnp.log1p(e), dx * jnp.where(x >= 0, r, e * r)


# Not -softplus(-x), which gives the same numbers: the two extra negations are
# elementwise passes of their own in value and gradient, which XLA:CPU pays for in
# binary_cross_entropy_with_logits and multilabel_soft_margin_loss.
@jax.custom_jvp
def _log_sigmoid(x: jax.Array) -> jax.Array:
  r"""``log(sigmoid(x))`` without overflow; gradient ``sigmoid(-x)``."""
  return jnp.minimum(x, 0) - jnp.log1p(jnp.exp(-jnp.abs(x)))


@_log_sigmoid.defjvp
def _log_sigmoid_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  e = jnp.exp(-jnp.abs(x))
  r = 1 / (1 + e)
  return jnp.minimum(x, 0) - jnp.log1p(e), dx * jnp.where(x >= 0, e * r, r)


@jax.custom_jvp
def _log_sigmoid_pair(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  r"""``(log sigmoid(x), log sigmoid(-x))`` from one ``exp`` and one ``log1p``."""
  lg = jnp.log1p(jnp.exp(-jnp.abs(x)))
  return jnp.minimum(x, 0) - lg, jnp.minimum(-x, 0) - lg


@_log_sigmoid_pair.defjvp
def _log_sigmoid_pair_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  e = jnp.exp(-jnp.abs(x))
  r = 1 / (1 + e)
  lg = jnp.log1p(e)
  sig_pos, sig_neg = jnp.where(x >= 0, r, e * r), jnp.where(x >= 0, e * r, r)
  return (jnp.minimum(x, 0) - lg, jnp.minimum(-x, 0) - lg), (dx * sig_neg, -dx * sig_pos)


softplus = plain_when_concrete(_softplus)
log_sigmoid = plain_when_concrete(_log_sigmoid)
log_sigmoid_pair = plain_when_concrete(_log_sigmoid_pair)
