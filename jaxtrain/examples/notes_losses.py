"""The loss values printed in the notes, computed with jaxtrain.

Run ``python -m jaxtrain.examples.notes_losses``. Each line gives the call, jaxtrain's
value, and what the note prints (000_dc5555055295abc4.txt, 002_be92e9498db7b7c3.txt).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import jaxtrain.losses as L


def notes_losses() -> list[tuple[str, float, str]]:
  """``(call, value, what the note prints)`` for every loss example in the notes."""
  inputs = jnp.array([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3)
  targets = jnp.array([1.0, 2.0, 5.0]).reshape(1, 1, 1, 3)
  logits = jnp.array([0.1, 0.2, 0.3]).reshape(1, 3)
  y_true = jnp.array([1.0, 2.0, 3.0])
  y_pred = jnp.array([1.5, 2.5, 3.5])
  return [
    ("l1_loss(inputs, targets)", L.l1_loss(inputs, targets), "tensor(0.6667)"),
    (
      "l1_loss(inputs, targets, reduction='sum')",
      L.l1_loss(inputs, targets, reduction="sum"),
      "tensor(2.)",
    ),
    ("mse_loss(inputs, targets)", L.mse_loss(inputs, targets), "tensor(1.3333)"),
    ("cross_entropy(x, y=[1])", L.cross_entropy(logits, jnp.array([1])), "tensor(1.1019)"),
    ("mse_loss(y_pred, y_true)", L.mse_loss(y_pred, y_true), "MSE Loss: (not shown)"),
    ("l1_loss(y_pred, y_true)", L.l1_loss(y_pred, y_true), "MAE Loss: (not shown)"),
  ]


def main() -> None:
  print(f"jaxtrain on {jax.default_backend()}: the loss values of the notes")
  rows = notes_losses()
  width = max(len(call) for call, _, _ in rows)
  for call, value, note in rows:
    print(f"  {call:<{width}}  {float(value):.4f}   note: {note}")


if __name__ == "__main__":
  main()
