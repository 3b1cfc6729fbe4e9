"""Run reporting: progress bars, summary lines, metric files, curves and TensorBoard.

A :class:`Reporter` receives one result per epoch (an ``EpochResult``, or a dict
or object with its fields) and hands it to one writer per output, each behind
the small interface of :class:`writer.Writer` (start, write an epoch, close):

* ``console.ConsoleWriter`` prints to a stream: a tqdm bar per epoch and the
  summary line (``'bar'``; in a pipe or a file, the lines alone), only the
  summary lines (``'lines'``), or one JSON object per epoch (``'json'``, for
  scripts that parse the output); ``'quiet'`` prints nothing;
* into ``out_dir``: ``config.json``, then ``run_files.JsonlWriter``
  (``metrics.jsonl``), ``run_files.CsvWriter`` (``metrics.csv``),
  ``tensorboard.TensorBoardWriter`` (scalars under ``tensorboard/``) and
  ``curves.CurvesWriter`` (``curves.png``, redrawn every epoch in the
  background).

Everything written is flushed at the end of every epoch, so a run that crashes
or is interrupted keeps every finished epoch. A failed write (a full disk, a
read-only folder) raises :class:`OutputError`, one line naming the file; the
file keeps its last good content, and the other outputs still get the epoch.
:func:`read_scalars` reads the TensorBoard event files back without TensorFlow
or TensorBoard.

The modules: ``record`` (``EpochResult``, ``COLUMNS``, ``format_epoch``),
``writer`` (``Writer``, ``MultiWriter``), ``files`` (``OutputError``, atomic
writes and appends), ``console``, ``run_files``, ``tensorboard``, ``curves``
(``plot_curves``), ``tfevents`` (``read_scalars``).

Typical use::

  with Reporter(out_dir="runs/cnn", epochs=20, config=dataclasses.asdict(cfg)) as rep:
    for epoch in range(1, 21):
      with rep.epoch_bar(epoch, num_batches=steps, batch_size=64) as bar:
        for i in range(steps):
          ...
          bar.update(loss=float(loss) if i % 10 == 0 else None)
      rep.end_epoch(result)

matplotlib, tensorboardX and tqdm are imported only when they are needed.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from jaxtrain.reporting.console import ConsoleWriter, EpochBar, draws_in_place
from jaxtrain.reporting.curves import CurvesWriter, plot_curves, title_from_config
from jaxtrain.reporting.files import OutputError, writing
from jaxtrain.reporting.record import COLUMNS, EpochResult, as_result, format_epoch
from jaxtrain.reporting.run_files import CsvWriter, JsonlWriter, write_config
from jaxtrain.reporting.tensorboard import TAGS, TensorBoardWriter
from jaxtrain.reporting.tfevents import read_scalars
from jaxtrain.reporting.writer import MultiWriter, Writer

__all__ = [
  "COLUMNS",
  "MODES",
  "TAGS",
  "ConsoleWriter",
  "CsvWriter",
  "CurvesWriter",
  "EpochBar",
  "EpochResult",
  "JsonlWriter",
  "MultiWriter",
  "OutputError",
  "Reporter",
  "TensorBoardWriter",
  "Writer",
  "format_epoch",
  "plot_curves",
  "read_scalars",
]

MODES = ("bar", "lines", "quiet", "json")


class Reporter:
  """Reports a training run, epoch by epoch, to its writers; see the module docstring.

  The Reporter only chooses the writers and fans each epoch out to them
  (``MultiWriter``). It lives here, not in a module of its own, because it
  draws with ``plot_curves`` as this package names it: replacing
  ``jaxtrain.reporting.plot_curves`` (tests do) replaces what draws.

  Args:
    out_dir: directory for the run's files (created if missing), or None to
      write no files. ``config.json`` is written at once; ``metrics.jsonl`` and
      ``metrics.csv`` are started afresh (a rerun into the same directory
      replaces them rather than mixing two runs). TensorBoard event files are
      never deleted: a rerun adds a new event file next to the old one.
    mode: what goes to ``stream``, one of ``MODES``: ``'bar'`` (a tqdm bar per
      epoch and the summary line; the lines alone if ``stream`` is neither a
      terminal nor a notebook's output, where tqdm's redraws would all stay),
      ``'lines'`` (the summary lines), ``'quiet'`` (nothing), ``'json'`` (one
      JSON object of the result's fields per epoch).
    epochs: the number of epochs of the run (for "epoch 3/20").
    config: the run's configuration (e.g. ``dataclasses.asdict(config)``), or a
      dataclass instance; saved to ``config.json`` and used for the figure title.
    stream: where to print; ``sys.stdout`` by default (looked up when the
      Reporter is made, so that pytest's capture and redirections work).
    history: the results of epochs already run (a resumed run): they start the
      metric files and the curves.

  Raises:
    ValueError: for an unknown ``mode`` or ``epochs`` < 1.
    OutputError: ``out_dir`` or a file in it could not be written (also from
      ``end_epoch`` and ``close``).
  """

  def __init__(
    self,
    *,
    out_dir: str | os.PathLike | None,
    mode: str = "bar",
    epochs: int,
    config: Mapping[str, Any] | None = None,
    stream=None,
    history: Sequence = (),
  ):
    if mode not in MODES:
      raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got mode={mode!r}")
    if epochs < 1:
      raise ValueError(f"epochs must be at least 1, got epochs={epochs!r}")
    if config is not None and dataclasses.is_dataclass(config) and not isinstance(config, type):
      config = dataclasses.asdict(config)
    self.mode = mode
    self.epochs = epochs
    self.config = dict(config) if config is not None else None
    self.stream = stream if stream is not None else sys.stdout
    self.out_dir = os.fspath(out_dir) if out_dir is not None else None
    self.history: list[EpochResult] = [as_result(r) for r in history]
    self._closed = False

    writers: list[Writer] = []
    self._console = None
    if mode != "quiet":
      # tqdm's redraws would all stay in a pipe or a file: print the lines alone there.
      printed = "lines" if mode == "bar" and not draws_in_place(self.stream) else mode
      self._console = ConsoleWriter(self.stream, mode=printed, epochs=epochs)
      writers.append(self._console)
    if self.out_dir is not None:
      with writing(self.out_dir):
        os.makedirs(self.out_dir, exist_ok=True)
      write_config(os.path.join(self.out_dir, "config.json"), self.config)
      writers += [
        JsonlWriter(os.path.join(self.out_dir, "metrics.jsonl")),
        CsvWriter(os.path.join(self.out_dir, "metrics.csv")),
        TensorBoardWriter(os.path.join(self.out_dir, "tensorboard")),
        CurvesWriter(
          os.path.join(self.out_dir, "curves.png"),
          title=title_from_config(self.config),
          draw=plot_curves,
        ),
      ]
    self._writers = MultiWriter(writers)
    self._writers.start(self.history)

  def epoch_bar(self, epoch: int, num_batches: int, batch_size: int) -> EpochBar:
    """The progress bar of epoch ``epoch`` (1-based); inactive unless a bar is drawn.

    Args:
      epoch: the epoch number, as in the results (1-based).
      num_batches: the batches in the epoch.
      batch_size: examples per batch (the bar shows images per second).
    """
    if self._console is None:
      return EpochBar()
    return self._console.epoch_bar(epoch, num_batches, batch_size)

  def end_epoch(self, result: Any, *, line: str | None = None) -> None:
    """Reports a finished epoch: prints it and appends it to the run's files.

    Args:
      result: the epoch's results: an ``EpochResult``, a dict of its fields, or
        any object with them.
      line: the summary line to print in ``'bar'`` and ``'lines'`` mode;
        ``format_epoch(result, epochs)`` by default.

    Raises:
      OutputError: an output could not be written; the others have the epoch.
    """
    if self._closed:
      raise RuntimeError("end_epoch() after close()")
    result = as_result(result)
    self.history.append(result)
    self._writers.write_epoch(
      result, line if line is not None else format_epoch(result, self.epochs)
    )

  def close(self) -> None:
    """Closes the bar and the event file, and waits for the last curves; idempotent.

    Raises:
      OutputError: the last curves (or another output) could not be written.
    """
    if self._closed:
      return
    self._closed = True
    self._writers.close()

  def __enter__(self) -> Reporter:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()
