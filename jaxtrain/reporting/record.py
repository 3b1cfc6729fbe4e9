"""The record of one epoch, declared once: ``EpochResult``, its columns and its summary line.

``jaxtrain.loop`` builds these and every writer reads them: the metric files'
keys and columns, the JSON lines and the TensorBoard tags all derive from the
dataclass's fields, in their order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass
class EpochResult:
  """What one epoch reports; ``train_loss`` is the mean over examples."""

  epoch: int
  lr: float
  train_loss: float
  train_acc: float
  test_loss: float
  test_acc: float
  running_loss: float
  seconds: float
  skipped: int = 0  # updates skipped for a non-finite loss or gradient (nan_policy='skip')


# The fields in their order: the keys of metrics.jsonl and the columns of metrics.csv.
COLUMNS = tuple(f.name for f in dataclasses.fields(EpochResult))


def as_result(result: Any) -> EpochResult:
  """``result`` (an ``EpochResult``, a dict, or any object with its fields) as an ``EpochResult``.

  Values become python ``int`` (``epoch``, ``skipped``) and ``float``: results may
  hold numpy or jax scalars, which ``json`` cannot serialize (``np.float32``) or
  which would stay on the device. A field with a default (``skipped``) may be
  missing; it then takes the default.

  Raises:
    TypeError: ``result`` lacks a field that has no default.
  """
  if isinstance(result, Mapping):
    get = result.__getitem__
  else:
    get = lambda name: getattr(result, name)  # noqa: E731
  values = {}
  for field in dataclasses.fields(EpochResult):
    try:
      value = get(field.name)
    except (KeyError, AttributeError):
      if field.default is not dataclasses.MISSING:
        continue
      required = [
        f.name for f in dataclasses.fields(EpochResult) if f.default is dataclasses.MISSING
      ]
      raise TypeError(
        f"result {result!r} has no field {field.name!r}; expected the fields {', '.join(required)}"
      ) from None
    # The annotations are strings (``from __future__ import annotations``).
    values[field.name] = int(value) if field.type == "int" else float(value)
  return EpochResult(**values)


def format_epoch(r: EpochResult, epochs: int) -> str:
  """The one-line summary of epoch ``r`` of ``epochs``, as ``python -m jaxtrain.train`` prints it.

  ``"epoch  3/20  lr 5.00e-02  loss 0.5000  train acc 0.8000  test acc 0.7500
  running_loss 11.0000  (1.2s)"``, followed by ``"  skipped N"`` when updates
  were skipped.
  """
  width = len(str(epochs))
  return (
    f"epoch {r.epoch:{width}d}/{epochs}  lr {r.lr:.2e}  loss {r.train_loss:.4f}  "
    f"train acc {r.train_acc:.4f}  test acc {r.test_acc:.4f}  "
    f"running_loss {r.running_loss:.4f}  ({r.seconds:.1f}s)"
    + (f"  skipped {r.skipped}" if r.skipped else "")
  )
