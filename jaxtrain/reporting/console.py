"""Printing a run: the summary lines or JSON objects, and the progress bar of each epoch."""

from __future__ import annotations

import dataclasses
import json

from jaxtrain.reporting.files import writing
from jaxtrain.reporting.record import EpochResult
from jaxtrain.reporting.writer import Writer


def is_terminal(stream) -> bool:
  """Whether ``stream`` is a terminal: only there does a redrawn progress bar read as one.

  tqdm redraws with carriage returns; in a pipe or a log file every redraw
  stays, so a stream without ``isatty``, or a closed one, counts as no terminal.
  """
  isatty = getattr(stream, "isatty", None)
  if not callable(isatty):
    return False
  try:
    return bool(isatty())
  except (ValueError, OSError):  # a closed or detached stream
    return False


def draws_in_place(stream) -> bool:
  """Whether a progress bar for ``stream`` is redrawn in place, so that 'bar' mode draws one.

  On a terminal, and in a Jupyter notebook, where ``tqdm.auto`` draws a widget
  (its ``sys.stdout`` is not a terminal, but the bar never goes into it).
  """
  if is_terminal(stream):
    return True
  from tqdm.auto import tqdm  # noqa: PLC0415  (lazy, as for the bar)
  from tqdm.notebook import tqdm as widget_bar  # noqa: PLC0415

  return issubclass(tqdm, widget_bar)


class EpochBar:
  """The progress bar of one epoch; a context manager returned by ``Reporter.epoch_bar``.

  ``update`` never touches device values: the caller passes a python float it
  already fetched (typically every few batches), so the bar cannot slow the
  training loop down with device syncs. Made without a ``stream`` (no bar to
  draw: not ``'bar'`` mode, or not a terminal), every method does nothing.
  """

  def __init__(
    self, stream=None, *, epoch: int = 1, epochs: int = 1, num_batches: int = 0, batch_size: int = 1
  ):
    self._batch_size = batch_size
    self._bar = None
    if stream is None:
      return
    from tqdm.auto import tqdm  # noqa: PLC0415  (lazy: only 'bar' mode needs tqdm)

    # The bar counts images, not batches, so that tqdm's rate reads "img/s":
    # throughput comparable across batch sizes. leave=False removes the bar at
    # the end of the epoch; the summary line replaces it. mininterval=0.5 keeps
    # redraws cheap. unit_scale (1.41k/1.41k, 5.2kimg/s) only for large counts:
    # for small ones it shows "0.00/32.0".
    width = len(str(epochs))
    total = num_batches * batch_size
    self._bar = tqdm(
      total=total,
      desc=f"epoch {epoch:{width}d}/{epochs}",
      unit="img",
      unit_scale=total >= 1000,
      leave=False,
      mininterval=0.5,
      file=stream,
      dynamic_ncols=True,
    )

  @property
  def active(self) -> bool:
    """Whether the bar is drawn: only then is a loss worth fetching for it."""
    return self._bar is not None

  def update(self, n_batches: int = 1, loss: float | None = None) -> None:
    """Advances by ``n_batches``; ``loss`` (a python float), if given, goes in the postfix."""
    if self._bar is None:
      return
    if loss is not None:
      # refresh=False: the bar redraws at its own pace (mininterval), not per call.
      self._bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
    self._bar.update(n_batches * self._batch_size)

  def write(self, text: str, stream) -> None:
    """Prints ``text`` to ``stream`` above the bar (tqdm clears and redraws it), not through it."""
    if self._bar is None:
      print(text, file=stream)
    else:
      self._bar.write(text, file=stream)

  def close(self) -> None:
    """Removes the bar; idempotent."""
    if self._bar is not None:
      self._bar.close()
      self._bar = None

  def __enter__(self) -> EpochBar:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


class ConsoleWriter(Writer):
  """Prints each epoch to ``stream``, flushed at once.

  Args:
    stream: where to print.
    mode: ``'bar'`` (a progress bar per epoch, from ``epoch_bar``, and the
      summary line), ``'lines'`` (the summary line) or ``'json'`` (the epoch's
      fields as one JSON object, for scripts that parse the output).
    epochs: the number of epochs of the run (for the bar's "epoch 3/20").
  """

  MODES = ("bar", "lines", "json")

  def __init__(self, stream, *, mode: str, epochs: int):
    if mode not in self.MODES:
      raise ValueError(f"mode must be one of {', '.join(map(repr, self.MODES))}, got mode={mode!r}")
    self._stream = stream
    self._mode = mode
    self._epochs = epochs
    self._bar = EpochBar()  # none yet
    # An error names the file behind the stream ("<stdout>", "run.log") when it has one
    # (a file opened on a descriptor is named by that number).
    name = getattr(stream, "name", None)
    self._name = name if isinstance(name, str) and name else "the output stream"

  def epoch_bar(self, epoch: int, num_batches: int, batch_size: int) -> EpochBar:
    """The bar of epoch ``epoch``, drawn in ``'bar'`` mode (else inactive)."""
    self._bar.close()  # a bar left open by the caller: replace it
    stream = self._stream if self._mode == "bar" else None
    self._bar = EpochBar(
      stream, epoch=epoch, epochs=self._epochs, num_batches=num_batches, batch_size=batch_size
    )
    return self._bar

  def write_epoch(self, result: EpochResult, line: str) -> None:
    text = json.dumps(dataclasses.asdict(result)) if self._mode == "json" else line
    with writing(self._name):
      self._bar.write(text, self._stream)  # above a bar still open, if any
      self._stream.flush()

  def close(self) -> None:
    self._bar.close()
