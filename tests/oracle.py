"""torch as the oracle: compare a jaxtrain function's value and gradients with torch's.

Tolerance (float32): ``rtol=1e-5`` plus ``atol=1e-6 * scale``, where ``scale`` is the
largest magnitude in the torch array being compared (at least 1). Summation order
differs between XLA and ATen, so entries that cancel to near zero are judged against
the array's scale rather than their own size, which float32 cannot bound.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import torch

RTOL = 1e-5
ATOL = 1e-6


def assert_close(actual, expected, *, rtol=RTOL, atol=ATOL, what=""):
  """``actual`` equals ``expected`` within ``rtol`` and ``atol * scale``; inf and NaN must match."""
  actual = np.asarray(actual, dtype=np.float64)
  expected = np.asarray(expected, dtype=np.float64)
  assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != torch {expected.shape}"
  finite = np.isfinite(expected)
  scale = max(1.0, float(np.max(np.abs(expected[finite]), initial=0.0)))
  np.testing.assert_allclose(
    actual, expected, rtol=rtol, atol=atol * scale, equal_nan=True, err_msg=what
  )


def to_torch(x, requires_grad=False):
  t = torch.from_numpy(np.array(x))
  if requires_grad:
    t.requires_grad_(True)
  return t


def compare_with_torch(
  jax_fn: Callable,
  torch_fn: Callable,
  args: Sequence[np.ndarray],
  *,
  grad_argnums: Sequence[int] = (0,),
  rtol: float = RTOL,
  atol: float = ATOL,
  seed: int = 0,
):
  """Checks value and vector-Jacobian products of ``jax_fn`` against ``torch_fn``.

  Both functions take the same positional arrays (``args``, numpy). The value is
  compared, then the gradient of ``sum(out * cotangent)`` with respect to every
  argument in ``grad_argnums``, with a random cotangent when the output is not a
  scalar (so 'none' reductions test the full VJP). The jax side runs under
  ``jax.jit``.

  Returns:
    ``(jax value, torch value)`` as numpy arrays, for extra assertions.
  """
  targs = [to_torch(a, requires_grad=i in grad_argnums) for i, a in enumerate(args)]
  t_out = torch_fn(*targs)
  rng = np.random.default_rng(seed)
  cot = (
    np.ones(t_out.shape, np.float32)
    if t_out.ndim == 0
    else rng.standard_normal(t_out.shape).astype(np.float32)
  )
  t_grads = []
  if grad_argnums:
    t_grads = torch.autograd.grad(
      (t_out.float() * torch.from_numpy(cot)).sum(),
      [targs[i] for i in grad_argnums],
      allow_unused=True,
    )

  def value_and_vjp(jargs, cot):
    def f(*diff):
      full = list(jargs)
      for i, d in zip(grad_argnums, diff):
        full[i] = d
      return jax_fn(*full)

    out, pullback = jax.vjp(f, *[jargs[i] for i in grad_argnums])
    return out, pullback(jnp.asarray(cot, out.dtype))

  jargs = [jnp.asarray(a) for a in args]
  j_out, j_grads = jax.jit(value_and_vjp)(jargs, cot)

  t_val = t_out.detach().float().numpy()
  assert str(j_out.dtype) == str(t_out.dtype).removeprefix("torch."), (
    f"result dtype {j_out.dtype} != torch {t_out.dtype}"
  )
  assert_close(j_out, t_val, rtol=rtol, atol=atol, what="value")
  for i, jg, tg in zip(grad_argnums, j_grads, t_grads):
    expected = np.zeros(np.shape(args[i])) if tg is None else tg.float().numpy()
    assert_close(jg, expected, rtol=rtol, atol=atol, what=f"gradient wrt argument {i}")
  return np.asarray(j_out), t_val
