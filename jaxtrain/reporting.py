"""Run reporting: progress bars, summary lines, metric files, curves and TensorBoard.

A :class:`Reporter` receives one result per epoch (an object or dict with the
fields of ``jaxtrain.loop.EpochResult``) and, depending on its ``mode`` and
``out_dir``:

* prints to a stream: a tqdm bar per epoch and a summary line (``'bar'``), only
  the summary lines (``'lines'``), nothing (``'quiet'``), or one JSON object per
  epoch (``'json'``, for scripts that parse the output);
* writes into ``out_dir``: ``config.json``, ``metrics.jsonl``, ``metrics.csv``,
  ``curves.png`` (the learning curves, redrawn every epoch) and TensorBoard
  scalars under ``tensorboard/``.

Everything written is flushed at the end of every epoch, so a run that crashes
or is interrupted keeps every finished epoch. :func:`read_scalars` reads the
TensorBoard event files back without TensorFlow or TensorBoard.

Typical use::

  with Reporter(out_dir="runs/cnn", epochs=20, config=dataclasses.asdict(cfg)) as rep:
    for epoch in range(1, 21):
      with rep.epoch_bar(epoch, num_batches=steps, batch_size=64) as bar:
        for i in range(steps):
          ...
          bar.update(loss=float(loss) if i % 10 == 0 else None)
      rep.end_epoch(result, line=format_epoch(result, 20))

This module does not import ``jaxtrain.loop`` (``loop`` may import this module),
and imports matplotlib and tensorboardX only when they are needed.
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import glob
import io
import json
import math
import os
import struct
import sys
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

MODES = ("bar", "lines", "quiet", "json")


class OutputError(OSError):
  """A run's output could not be written (disk full, read-only, no permission); one line."""

# The fields of ``jaxtrain.loop.EpochResult``, in its order (the CSV's columns).
FIELDS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc",
          "running_loss", "seconds")
# Fields a result may lack, with their value then: updates skipped for a
# non-finite loss or gradient (nan_policy='skip').
OPTIONAL = {"skipped": 0}
COLUMNS = FIELDS + tuple(OPTIONAL)

# TensorBoard tag -> result field. Tags are grouped by their prefix ("loss/",
# "accuracy/") so that TensorBoard draws train and test in the same section.
TAGS = {
    "loss/train": "train_loss",
    "loss/test": "test_loss",
    "accuracy/train": "train_acc",
    "accuracy/test": "test_acc",
    "lr": "lr",
    "running_loss": "running_loss",
    "time/epoch_seconds": "seconds",
    "skipped_updates": "skipped",
}


def _as_record(result: Any) -> dict[str, int | float]:
  """``result`` (dataclass, dict or any object with the fields) as a JSON-ready dict.

  Values are converted to python ``int``/``float``: results may hold numpy or
  jax scalars, which ``json`` cannot serialize (``np.float32``) or would keep
  on the device.
  """
  if isinstance(result, Mapping):
    get = result.__getitem__
  else:
    get = lambda name: getattr(result, name)  # noqa: E731
  record: dict[str, int | float] = {}
  for name in FIELDS:
    try:
      value = get(name)
    except (KeyError, AttributeError):
      raise TypeError(f"result {result!r} has no field {name!r}; expected the fields "
                      f"{', '.join(FIELDS)}") from None
    record[name] = int(value) if name == "epoch" else float(value)
  for name, default in OPTIONAL.items():
    try:
      record[name] = int(get(name))
    except (KeyError, AttributeError):
      record[name] = default
  return record


def _format_line(record: Mapping[str, float], epochs: int) -> str:
  # The default summary: the same text as ``jaxtrain.loop.format_epoch`` (copied
  # rather than imported, see the module docstring). Callers normally pass
  # ``line=format_epoch(...)`` so that the CLI's text stays defined in one place.
  width = len(str(epochs))
  return (f"epoch {record['epoch']:{width}d}/{epochs}  lr {record['lr']:.2e}  "
          f"loss {record['train_loss']:.4f}  train acc {record['train_acc']:.4f}  "
          f"test acc {record['test_acc']:.4f}  running_loss {record['running_loss']:.4f}  "
          f"({record['seconds']:.1f}s)")


def _json_value(value: Any) -> Any:
  # json.dump's fallback for config values: paths, numpy scalars, anything else
  # is written as its string, so that an unusual config never kills a run.
  if hasattr(value, "tolist") and callable(value.tolist):  # numpy/jax scalars and arrays
    return value.tolist()
  return str(value)


def _title_from_config(config: Mapping[str, Any] | None) -> str | None:
  """'cnn on digits: cross_entropy, sgd' from a ``Config``-like dict, or None."""
  if not config:
    return None
  model, dataset = config.get("model"), config.get("dataset")
  if not (model and dataset):
    return None
  recipe = ", ".join(str(config[k]) for k in ("loss", "optimizer") if config.get(k))
  return f"{model} on {dataset}" + (f": {recipe}" if recipe else "")


class EpochBar:
  """The progress bar of one epoch; a context manager returned by ``Reporter.epoch_bar``.

  ``update`` never touches device values: the caller passes a python float it
  already fetched (typically every few batches), so the bar cannot slow the
  training loop down with device syncs. Outside ``'bar'`` mode every method
  does nothing.
  """

  def __init__(self, reporter: Reporter | None, epoch: int, epochs: int, num_batches: int,
               batch_size: int):
    self._reporter = reporter
    self._batch_size = batch_size
    self._bar = None
    if reporter is None:  # not in 'bar' mode
      return
    from tqdm.auto import tqdm  # noqa: PLC0415  (lazy: only 'bar' mode needs tqdm)

    # The bar counts images, not batches, so that tqdm's rate reads "img/s":
    # throughput comparable across batch sizes. leave=False removes the bar at
    # the end of the epoch; the summary line replaces it. mininterval=0.5 keeps
    # redraws (and output to non-TTY streams such as log files) cheap.
    # unit_scale (1.41k/1.41k, 5.2kimg/s) only for large counts: for small ones
    # it shows "0.00/32.0".
    width = len(str(epochs))
    total = num_batches * batch_size
    self._bar = tqdm(
        total=total, desc=f"epoch {epoch:{width}d}/{epochs}", unit="img",
        unit_scale=total >= 1000, leave=False, mininterval=0.5, file=reporter.stream,
        dynamic_ncols=True,
    )

  @property
  def active(self) -> bool:
    """Whether the bar is drawn (``'bar'`` mode): only then is a loss worth fetching for it."""
    return self._bar is not None

  def update(self, n_batches: int = 1, loss: float | None = None) -> None:
    """Advances by ``n_batches``; ``loss`` (a python float), if given, goes in the postfix."""
    if self._bar is None:
      return
    if loss is not None:
      # refresh=False: the bar redraws at its own pace (mininterval), not per call.
      self._bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
    self._bar.update(n_batches * self._batch_size)

  def close(self) -> None:
    """Removes the bar; idempotent."""
    if self._bar is not None:
      self._bar.close()
      self._bar = None
    if self._reporter is not None and self._reporter._bar is self:
      self._reporter._bar = None

  def __enter__(self) -> EpochBar:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


class Reporter:
  """Reports a training run, epoch by epoch; see the module docstring.

  Args:
    out_dir: directory for the run's files (created if missing), or None to
      write no files. ``config.json`` is written at once; ``metrics.jsonl`` and
      ``metrics.csv`` are started afresh (a rerun into the same directory
      replaces them rather than mixing two runs). TensorBoard event files are
      never deleted: a rerun adds a new event file next to the old one.
    mode: what goes to ``stream``, one of ``MODES``: ``'bar'`` (a tqdm bar per
      epoch and the summary line), ``'lines'`` (the summary lines), ``'quiet'``
      (nothing), ``'json'`` (one JSON object of the result's fields per epoch).
    epochs: the number of epochs of the run (for "epoch 3/20").
    config: the run's configuration (e.g. ``dataclasses.asdict(config)``), or a
      dataclass instance; saved to ``config.json`` and used for the figure title.
    stream: where to print; ``sys.stdout`` by default (looked up when the
      Reporter is made, so that pytest's capture and redirections work).
    history: the results of epochs already run (a resumed run): they start the
      metric files and the curves.

  Raises:
    ValueError: for an unknown ``mode`` or ``epochs`` < 1.
  """

  def __init__(self, *, out_dir: str | os.PathLike | None, mode: str = "bar", epochs: int,
               config: Mapping[str, Any] | None = None, stream=None, history: Sequence = ()):
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
    self.history: list[dict[str, int | float]] = []
    self._bar: EpochBar | None = None
    self._events = None  # the TensorBoard event file, opened at the first epoch
    self._curves = _CurvesInBackground() if self.out_dir is not None else None
    self._closed = False
    if self.out_dir is not None:
      os.makedirs(self.out_dir, exist_ok=True)
      _write_atomic(os.path.join(self.out_dir, "config.json"),
                    json.dumps(self.config if self.config is not None else {}, indent=2,
                               sort_keys=True, default=_json_value) + "\n")
      for name in ("metrics.jsonl", "metrics.csv"):
        path = os.path.join(self.out_dir, name)
        if os.path.exists(path):
          os.remove(path)
    # A resumed run's earlier epochs: the metric files are rewritten from them (so
    # they hold exactly the checkpointed epochs) and the curves include them.
    for record in map(_as_record, history):
      self.history.append(record)
      if self.out_dir is not None:
        self._append_metrics(record)

  def epoch_bar(self, epoch: int, num_batches: int, batch_size: int) -> EpochBar:
    """The progress bar of epoch ``epoch`` (1-based); a no-op outside ``'bar'`` mode.

    Args:
      epoch: the epoch number, as in the results (1-based).
      num_batches: the batches in the epoch.
      batch_size: examples per batch (the bar shows images per second).
    """
    if self.mode != "bar":
      return EpochBar(None, epoch, self.epochs, num_batches, batch_size)
    if self._bar is not None:  # a bar left open by the caller: replace it
      self._bar.close()
    self._bar = EpochBar(self, epoch, self.epochs, num_batches, batch_size)
    return self._bar

  def end_epoch(self, result: Any, *, line: str | None = None) -> None:
    """Reports a finished epoch: prints it and appends it to the run's files.

    Args:
      result: the epoch's results: an ``EpochResult``, a dict of its fields, or
        any object with them.
      line: the summary line to print in ``'bar'`` and ``'lines'`` mode; by
        default the same text as ``jaxtrain.loop.format_epoch``.
    """
    if self._closed:
      raise RuntimeError("end_epoch() after close()")
    record = _as_record(result)
    self.history.append(record)
    self._print(record, line)
    if self.out_dir is not None:
      self._append_metrics(record)
      self._write_scalars(record)
      # Redrawn after every epoch so the figure is current while the run goes on,
      # in a background thread: the next epoch does not wait for matplotlib.
      # Atomic, so a viewer never sees a half-written PNG.
      self._curves.draw(list(self.history), os.path.join(self.out_dir, "curves.png"),
                        title=_title_from_config(self.config))

  def _print(self, record: Mapping[str, float], line: str | None) -> None:
    if self.mode == "quiet":
      return
    if self.mode == "json":
      text = json.dumps(record)
    else:
      text = line if line is not None else _format_line(record, self.epochs)
    if self._bar is not None and self._bar._bar is not None:
      # A bar still open: tqdm.write prints above it instead of through it.
      self._bar._bar.write(text, file=self.stream)
    else:
      print(text, file=self.stream)
    self.stream.flush()

  def _append_metrics(self, record: Mapping[str, float]) -> None:
    # Opened, appended and closed per epoch: nothing stays buffered between
    # epochs, and the files can be read (or copied) while the run goes on.
    with open(os.path.join(self.out_dir, "metrics.jsonl"), "a", encoding="utf-8") as f:
      f.write(json.dumps(record) + "\n")
    path = os.path.join(self.out_dir, "metrics.csv")
    new = not os.path.exists(path)
    with open(path, "a", encoding="utf-8", newline="") as f:
      writer = csv.DictWriter(f, fieldnames=COLUMNS)
      if new:
        writer.writeheader()
      writer.writerow(record)

  def _write_scalars(self, record: Mapping[str, float]) -> None:
    # tensorboardX's synchronous EventsWriter, not its SummaryWriter: the
    # SummaryWriter hands events to a background thread through a queue and its
    # flush() does not wait for that queue (measured: after add_scalar x7 and
    # flush(), the file held only its header). Writing directly makes "flushed at
    # the end of every epoch" true, and uses no thread. Same file format, same
    # file name (events.out.tfevents.<time>.<host>); TensorBoard reads it.
    from tensorboardX.event_file_writer import EventsWriter  # noqa: PLC0415
    from tensorboardX.proto import event_pb2, summary_pb2  # noqa: PLC0415

    if self._events is None:
      logdir = os.path.join(self.out_dir, "tensorboard")
      os.makedirs(logdir, exist_ok=True)
      self._events = EventsWriter(os.path.join(logdir, "events"))
    values = [summary_pb2.Summary.Value(tag=tag, simple_value=record[field])
              for tag, field in TAGS.items()]
    self._events.write_event(event_pb2.Event(
        wall_time=time.time(), step=int(record["epoch"]),
        summary=summary_pb2.Summary(value=values)))
    self._events.flush()

  def close(self) -> None:
    """Closes the bar and the event file, and waits for the last curves; idempotent."""
    if self._bar is not None:
      self._bar.close()
    if self._events is not None:
      self._events.close()
      self._events = None
    if self._curves is not None:
      curves, self._curves = self._curves, None
      curves.close()
    self._closed = True

  def __enter__(self) -> Reporter:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


class _CurvesInBackground:
  """Draws the learning curves in one worker thread, off the training loop's path.

  Only the newest request matters: a drawing that a newer one has overtaken
  before it started is skipped. ``close`` waits for the last one and raises its
  error, if it failed.
  """

  def __init__(self):
    self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="jaxtrain-curves")
    self._latest = 0
    self._future: concurrent.futures.Future | None = None

  def draw(self, history: list, path: str, *, title: str | None) -> None:
    self._latest += 1
    ticket = self._latest
    if self._future is not None and self._future.done():
      self._future.result()  # a failed drawing is reported, not lost

    def job():
      if ticket == self._latest:
        plot_curves(history, path, title=title)

    self._future = self._pool.submit(job)

  def close(self) -> None:
    self._pool.shutdown(wait=True)
    if self._future is not None:
      self._future.result()


def _write_atomic(path: str, data: str | bytes) -> None:
  """Writes ``path`` through a temporary file in its directory and ``os.replace``."""
  directory, base = os.path.split(os.path.abspath(path))
  # Not tempfile.mkstemp: it creates files with mode 0600, and os.replace would
  # carry that to config.json and curves.png. os.open(..., 0o666) applies the
  # umask like an ordinary open(); O_EXCL with a random name avoids collisions.
  tmp = os.path.join(directory, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


# ---------------------------------------------------------------------------
# Reading TensorBoard event files.


def _masked_crc32c(data: bytes) -> int:
  from tensorboardX.crc32c import crc32c  # noqa: PLC0415

  x = crc32c(data) & 0xFFFFFFFF
  return (((x >> 15) | (x << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _records(path: str, *, check_crc: bool) -> Iterable[bytes]:
  """The records of one TFRecord file; stops quietly at a truncated last record.

  Each record is: uint64 length, uint32 masked CRC32C of the length, the data,
  uint32 masked CRC32C of the data (all little-endian). A run killed while
  writing leaves a partial last record; it is skipped, as TensorBoard does.
  """
  with open(path, "rb") as f:
    while True:
      header = f.read(12)
      if len(header) < 12:
        return
      (length,), (length_crc,) = struct.unpack("<Q", header[:8]), struct.unpack("<I", header[8:])
      if check_crc and _masked_crc32c(header[:8]) != length_crc:
        raise ValueError(f"{path}: corrupt record header (CRC mismatch)")
      data = f.read(length)
      footer = f.read(4)
      if len(data) < length or len(footer) < 4:
        return
      if check_crc and _masked_crc32c(data) != struct.unpack("<I", footer)[0]:
        raise ValueError(f"{path}: corrupt record data (CRC mismatch)")
      yield data


def read_scalars(tensorboard_dir: str | os.PathLike, *,
                 check_crc: bool = True) -> dict[str, list[tuple[int, float]]]:
  """Reads the scalars of TensorBoard event files, without TensorFlow or TensorBoard.

  Args:
    tensorboard_dir: a directory of ``events.out.tfevents.*`` files (read in
      name order, i.e. by creation time), or one event file.
    check_crc: verify the records' checksums (pure-python CRC32C unless the
      ``crc32c`` package is installed; turn off for very large files).

  Returns:
    tag -> [(step, value), ...] in the order written. Values are float32 as
    stored (``simple_value``; scalars written as tensors are read too).
  """
  from tensorboardX.proto import event_pb2  # noqa: PLC0415

  path = os.fspath(tensorboard_dir)
  files = [path] if os.path.isfile(path) else sorted(
      glob.glob(os.path.join(path, "**", "*tfevents*"), recursive=True))
  scalars: dict[str, list[tuple[int, float]]] = {}
  for name in files:
    for data in _records(name, check_crc=check_crc):
      try:
        event = event_pb2.Event.FromString(data)
      except Exception as e:  # protobuf's DecodeError; one error type for bad files
        raise ValueError(f"{name}: corrupt event record ({e})") from e
      if not event.HasField("summary"):
        continue
      for value in event.summary.value:
        kind = value.WhichOneof("value")
        if kind == "simple_value":
          number = value.simple_value
        elif kind == "tensor" and len(value.tensor.float_val) == 1:
          number = value.tensor.float_val[0]
        elif kind == "tensor" and len(value.tensor.double_val) == 1:
          number = value.tensor.double_val[0]
        else:  # images, histograms, text: not scalars
          continue
        scalars.setdefault(value.tag, []).append((int(event.step), float(number)))
  return scalars


# ---------------------------------------------------------------------------
# Learning curves.


def plot_curves(history: list, path: str | os.PathLike, *, title: str | None = None) -> None:
  """Draws the learning curves of ``history`` to the PNG ``path`` (atomically).

  d2l's ``Animator`` draws train loss, train acc and test acc on one axes with
  ylim clipped to [0.3, 0.9]; a loss starting at 2.3 then dwarfs (or clips) the
  accuracies. Here two panels share the epoch axis: loss (train and test) on
  the left, accuracy (train and test, 0-100 %) on the right, each with its own
  scale. The best test accuracy is marked, since that is what a report quotes.

  Args:
    history: the epochs' results (``EpochResult`` objects or dicts), in order.
    path: the PNG to write.
    title: the figure's title, e.g. ``'cnn on digits: cross_entropy, sgd'``.
  """
  # matplotlib.figure.Figure with the Agg canvas directly: no pyplot, so no
  # global state, no display backend, and no figures kept alive by pyplot.
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
  from matplotlib.figure import Figure  # noqa: PLC0415
  from matplotlib.ticker import MaxNLocator, PercentFormatter  # noqa: PLC0415

  records = [_as_record(r) for r in history]
  epochs = [r["epoch"] for r in records]
  column = lambda name: [r[name] for r in records]  # noqa: E731

  fig = Figure(figsize=(6.4, 4.2), dpi=150, layout="constrained")
  FigureCanvasAgg(fig)
  ax_loss, ax_acc = fig.subplots(1, 2, sharex=True)
  # Markers only while the points are few: a single epoch is otherwise invisible,
  # and 100 epochs of markers are clutter.
  marker = "o" if len(records) <= 25 else None
  style = dict(marker=marker, markersize=3, linewidth=1.6)
  # Train solid, test dashed, the same colour per split in both panels, so the
  # two legends read alike (d2l: train loss '-', train acc 'm--', test acc 'g-.').
  train_color, test_color = "tab:blue", "tab:orange"

  ax_loss.plot(epochs, column("train_loss"), color=train_color, label="train loss", **style)
  ax_loss.plot(epochs, column("test_loss"), color=test_color, linestyle="--",
               label="test loss", **style)
  ax_loss.set_ylabel("loss")
  losses = [v for v in column("train_loss") + column("test_loss") if math.isfinite(v)]
  if losses and min(losses) >= 0:
    # Losses here are non-negative: 0 is the natural floor. The top gets a 5 %
    # margin so the first epoch's markers are not cut by the frame.
    ax_loss.set_ylim(0, 1.05 * max(losses) or 1.0)

  ax_acc.plot(epochs, column("train_acc"), color=train_color, label="train acc", **style)
  ax_acc.plot(epochs, column("test_acc"), color=test_color, linestyle="--",
              label="test acc", **style)
  ax_acc.set_ylabel("accuracy")
  ax_acc.set_ylim(0, 1.02)  # fixed: comparable across runs, and 100 % stays visible
  ax_acc.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
  test_acc = column("test_acc")
  finite = [(v, e) for v, e in zip(test_acc, epochs) if math.isfinite(v)]
  if finite:
    best, best_epoch = max(finite, key=lambda p: (p[0], -p[1]))  # the first best epoch
    ax_acc.plot([best_epoch], [best], marker="*", markersize=10, color=test_color,
                markeredgecolor="black", markeredgewidth=0.6, linestyle="none",
                label=f"best test {best:.1%} (epoch {best_epoch})", zorder=3)

  # Learning-rate changes (StepLR, MultiStepLR) as faint vertical lines between
  # the epochs: they explain the kinks in the curves. Schedules that change the
  # rate every epoch (cosine, exponential) would fill the panel with lines, so
  # only a few changes are drawn.
  lrs = column("lr")
  changes = [(a + b) / 2 for a, b, la, lb in zip(epochs, epochs[1:], lrs, lrs[1:]) if la != lb]
  if 0 < len(changes) <= 6:
    for ax in (ax_loss, ax_acc):
      for i, x in enumerate(changes):
        ax.axvline(x, color="gray", linestyle=":", linewidth=1,
                   label="lr change" if i == 0 and ax is ax_loss else None)

  for ax in (ax_loss, ax_acc):
    ax.set_xlabel("epoch")
    # Whole epochs, in steps of 1, 2, 5 or 10 (not 3, 6, 9, ...).
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    if len(epochs) == 1:  # autoscaling a single point gives a fractional x range
      ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
    ax.grid(True, alpha=0.3)
  # loc="best": the curves' usual corners (loss: upper right is empty, accuracy:
  # lower right) are not empty for a run that diverges or has just started.
  ax_loss.legend(fontsize=8, loc="best")
  ax_acc.legend(fontsize=8, loc="best")
  if title:
    fig.suptitle(title, fontsize=11)

  buffer = io.BytesIO()
  fig.savefig(buffer, format="png")
  _write_atomic(os.fspath(path), buffer.getvalue())
