"""The interface every output implements, and the fan-out to several of them.

Modelled on clu's ``metric_writers``: each output (console, metric files,
TensorBoard, curves) is a ``Writer`` and knows nothing of the others;
``MultiWriter`` hands each call to all of them.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Sequence

from jaxtrain.reporting.record import EpochResult


class Writer(abc.ABC):
  """One output of a run: started once, given each finished epoch, closed once.

  An ``OSError`` of a writer reaches the caller as an ``OutputError`` naming the
  file (``jaxtrain.reporting.files.writing``).
  """

  def start(self, history: Sequence[EpochResult]) -> None:  # noqa: B027  (optional)
    """Called once, before the first ``write_epoch``, with the epochs already run.

    ``history`` is empty for a new run and holds the checkpointed epochs of a
    resumed one. The default does nothing.
    """

  @abc.abstractmethod
  def write_epoch(self, result: EpochResult, line: str) -> None:
    """Reports a finished epoch; ``line`` is its summary line, for writers that print."""

  def close(self) -> None:  # noqa: B027  (optional)
    """Finishes the output (waits for work in the background); idempotent.

    The default does nothing.
    """


class MultiWriter(Writer):
  """Hands every call to each of ``writers``, in order.

  A writer that fails does not stop the others: each gets the call, then the
  first error is raised (the later ones are attached as notes). A writer that
  failed is closed (its errors ignored: one report per failure) and left out of
  later calls, so that a full disk is reported once, and the outputs that still
  work keep every epoch.
  """

  def __init__(self, writers: Sequence[Writer]):
    self._writers = list(writers)

  def start(self, history: Sequence[EpochResult]) -> None:
    try:
      self._each(lambda w: w.start(history))
    except BaseException:
      # No one will close a fan-out whose start failed (the Reporter is not made).
      for writer in self._writers:
        with contextlib.suppress(Exception):
          writer.close()
      raise

  def write_epoch(self, result: EpochResult, line: str) -> None:
    self._each(lambda w: w.write_epoch(result, line))

  def close(self) -> None:
    writers, self._writers = self._writers, []
    _raise_first([_error_of(w.close) for w in writers])

  def _each(self, call) -> None:
    errors, working = [], []
    for writer in self._writers:
      error = _error_of(lambda: call(writer))  # noqa: B023  (called at once)
      if error is None:
        working.append(writer)
      else:
        errors.append(error)
        with contextlib.suppress(Exception):
          writer.close()
    self._writers = working
    _raise_first(errors)


def _error_of(call) -> Exception | None:
  try:
    call()
  except Exception as e:  # KeyboardInterrupt and SystemExit pass at once
    return e
  return None


def _raise_first(errors: list[Exception | None]) -> None:
  errors = [e for e in errors if e is not None]
  if not errors:
    return
  for later in errors[1:]:
    errors[0].add_note(f"also: {type(later).__name__}: {later}")
  raise errors[0]
