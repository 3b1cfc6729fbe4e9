"""Mixed precision with ``torch.autocast``'s semantics, for jaxtrain's train and eval steps.

``torch.autocast(device_type, dtype=torch.bfloat16)`` (or ``float16``) keeps the
parameters and the optimizer state in float32 and runs each op in a precision
chosen from three lists (torch 2.13, ``torch/amp/autocast_mode.py`` and ATen's
``autocast_mode.cpp``):

* **lower precision**: convolutions, matmuls, ``linear``, ``addmm``, ``bmm`` and
  the RNN cells: their inputs, weights included, are cast to the low precision
  and so is their result;
* **float32**: softmax, log-softmax, the losses (``cross_entropy``, ``nll_loss``,
  ``mse_loss``, ...), ``exp``, ``log``, ``pow``, sums and norms: their inputs are
  cast to float32;
* everything else runs in the precision of its inputs: a ReLU, a max-pool or a
  ``tanh`` after a low-precision convolution or matmul stays in low precision.

:func:`autocast` gives the same program for jaxtrain's models, whose layers are
convolutions, matmuls and elementwise ops between them: the parameters (float32,
as stored) and the images are cast to the low precision on their way into the
model, so every convolution and matmul and the ops between them run there, and
the logits are cast back to float32 before the loss, its softmax and every
reduction of the metrics. The gradient with respect to a float32 parameter flows
back through the cast and arrives in float32, as torch's does through its weight
cast. A model of your own that calls softmax or a reduction *inside* should cast
to float32 there, as torch's autocast would.

With ``'fp16'``, torch pairs autocast with ``torch.amp.GradScaler``:
``jaxtrain.optim.grad_scaler`` is that loss scaler.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

# Config/CLI name -> the dtype convolutions and matmuls run in (None: float32 throughout).
PRECISIONS = {"float32": None, "bf16": jnp.bfloat16, "fp16": jnp.float16}


def check_precision(precision: str) -> None:
  if precision not in PRECISIONS:
    raise ValueError(
      f"precision={precision!r} is not valid; expected one of {', '.join(PRECISIONS)}"
    )


def compute_dtype(precision: str):
  """The low-precision dtype of ``precision`` (``None`` for ``'float32'``)."""
  check_precision(precision)
  return PRECISIONS[precision]


def cast_floating(tree: Any, dtype) -> Any:
  """``tree`` with its float32 arrays cast to ``dtype`` (integer and other leaves as they are)."""
  if dtype is None:
    return tree

  def cast(x):
    x = jnp.asarray(x)
    return x.astype(dtype) if x.dtype == jnp.float32 else x

  return jax.tree.map(cast, tree)


def autocast(params: Any, images: jax.Array, precision: str) -> tuple[Any, jax.Array]:
  """The parameters and images a model runs on under ``torch.autocast(dtype=...)``.

  Args:
    params: the model's (float32) parameters.
    images: the float32 inputs.
    precision: ``'float32'`` (unchanged), ``'bf16'`` or ``'fp16'``.

  Returns:
    ``(params, images)``, both cast to the low precision.
  """
  dtype = compute_dtype(precision)
  return cast_floating(params, dtype), cast_floating(images, dtype)


def float32_logits(logits: jax.Array) -> jax.Array:
  """Logits as the loss takes them under autocast: float32 (the losses are on its float32 list)."""
  return logits.astype(jnp.float32) if logits.dtype in (jnp.bfloat16, jnp.float16) else logits
