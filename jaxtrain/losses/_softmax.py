"""The log-sum-exp of shifted logits for ``cross_entropy``, with a gradient that recomputes.

``log_sum_exp(x, m, axis)`` is :math:`\\log \\sum_c \\exp(x_c - m)` along ``axis``
(``m``: the maximum of ``x`` there, kept dimension), log_softmax's own steps as
torch's CPU kernel takes them. Its derivative is the softmax,

.. math:: \\partial / \\partial x_c = e_c / s, \\quad e_c = \\exp(x_c - m), \\; s = \\sum_c e_c

Autodiff of the plain expression keeps :math:`e` for the backward pass: on XLA:CPU
that is a whole ``(N, C)`` array written by a kernel of its own, then read by the
sum and again by the gradient. Here the JVP rule computes :math:`e` anew from ``x``
behind an ``optimization_barrier`` (which stops XLA from merging it with the
forward's), so the forward is two reductions (the maximum, and the exponentials
summed in the same pass) and the gradient one elementwise pass, with no
``(N, C)`` temporary between them (measurements: docs/log.md, 2026-11-22,
session 5; current loss timings: benchmarks/RESULTS.md). The numbers are the
same operations on the same values: the gradient is :math:`e \\cdot (g / s)`,
as autodiff of the plain expression gives it. A ``custom_jvp``, not a
``custom_vjp``: forward mode, Hessians and ``vmap`` work as for any JAX function.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxtrain.losses._checks import plain_when_concrete


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _log_sum_exp(x: jax.Array, m: jax.Array, axis: int) -> jax.Array:
  r"""``log(sum(exp(x - m), axis))``: ``x`` any shape, ``m`` broadcastable (keepdims)."""
  return jnp.log(jnp.sum(jnp.exp(x - m), axis=axis))


@_log_sum_exp.defjvp
def _log_sum_exp_jvp(axis, primals, tangents):
  x, m = primals
  dx, dm = tangents
  s = jnp.sum(jnp.exp(x - m), axis=axis)
  # The barrier hides that this is the forward's exp(x - m): XLA fuses the
  # recomputation into the gradient's kernel instead of keeping the array.
  xb, mb = jax.lax.optimization_barrier((x, m))
  e = jnp.exp(xb - mb)
  return jnp.log(s), jnp.sum(e * (dx - dm), axis=axis) / s


log_sum_exp = plain_when_concrete(_log_sum_exp)
