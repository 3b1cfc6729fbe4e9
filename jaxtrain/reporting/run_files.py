"""The run folder's text files: ``config.json``, ``metrics.jsonl`` and ``metrics.csv``."""

from __future__ import annotations

import abc
import csv
import dataclasses
import io
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from jaxtrain.reporting.files import append, write_atomic, writing
from jaxtrain.reporting.record import COLUMNS, EpochResult
from jaxtrain.reporting.writer import Writer


def write_config(path: str, config: Mapping[str, Any] | None) -> None:
  """Writes ``config`` as indented, key-sorted JSON (``{}`` for None), atomically."""
  write_atomic(
    path,
    json.dumps(config if config is not None else {}, indent=2, sort_keys=True, default=_json_value)
    + "\n",
  )


def _json_value(value: Any) -> Any:
  # json.dump's fallback for config values: paths, numpy scalars, anything else
  # is written as its string, so that an unusual config never kills a run.
  if hasattr(value, "tolist") and callable(value.tolist):  # numpy/jax scalars and arrays
    return value.tolist()
  return str(value)


class _MetricFile(Writer):
  """A file of one entry per epoch, started afresh and appended to after every epoch.

  Started afresh: a rerun into the same folder replaces the file rather than
  mixing two runs; a resumed run rewrites it from the checkpointed epochs, so
  it holds exactly those. Opened, appended and closed per epoch: nothing stays
  buffered between epochs, and the file can be read (or copied) while the run
  goes on.
  """

  def __init__(self, path: str):
    self.path = path

  def start(self, history: Sequence[EpochResult]) -> None:
    with writing(self.path):
      if os.path.exists(self.path):
        os.remove(self.path)
    if history:
      append(self.path, self._entries(history))

  def write_epoch(self, result: EpochResult, line: str) -> None:
    append(self.path, self._entries([result]))

  @abc.abstractmethod
  def _entries(self, results: Sequence[EpochResult]) -> str:
    """The text that appends ``results`` to the file."""


class JsonlWriter(_MetricFile):
  """``metrics.jsonl``: one JSON object per epoch, the fields of ``EpochResult`` in order."""

  def _entries(self, results: Sequence[EpochResult]) -> str:
    return "".join(json.dumps(dataclasses.asdict(r)) + "\n" for r in results)


class CsvWriter(_MetricFile):
  """``metrics.csv``: a header of ``COLUMNS``, then one row per epoch (``csv``'s "\\r\\n" ends)."""

  def _entries(self, results: Sequence[EpochResult]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS)
    if self._size() == 0:  # new (or emptied): the header first
      writer.writeheader()
    writer.writerows(dataclasses.asdict(r) for r in results)
    return text.getvalue()

  def _size(self) -> int:
    try:
      return os.path.getsize(self.path)
    except FileNotFoundError:
      return 0
