"""Learning curves: ``plot_curves`` draws them to a PNG, ``CurvesWriter`` redraws it every epoch."""

from __future__ import annotations

import concurrent.futures
import io
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jaxtrain.reporting.files import write_atomic, writing
from jaxtrain.reporting.record import EpochResult, as_result
from jaxtrain.reporting.writer import Writer


def title_from_config(config: Mapping[str, Any] | None) -> str | None:
  """'cnn on digits: cross_entropy, sgd' from a ``Config``-like dict, or None."""
  if not config:
    return None
  model, dataset = config.get("model"), config.get("dataset")
  if not (model and dataset):
    return None
  recipe = ", ".join(str(config[k]) for k in ("loss", "optimizer") if config.get(k))
  return f"{model} on {dataset}" + (f": {recipe}" if recipe else "")


class CurvesWriter(Writer):
  """Redraws the curves of every epoch so far into ``path`` after each epoch.

  The drawing runs in one worker thread, off the training loop's path: the next
  epoch does not wait for matplotlib. Only the newest request matters: a
  drawing that a newer one has overtaken before it started is skipped. The PNG
  is replaced atomically, so a viewer never sees a half-written one. A drawing
  that failed is raised by the next ``write_epoch``, or by ``close``, which
  waits for the last drawing.

  Args:
    path: the PNG to write.
    title: the figure's title, or None.
    draw: ``draw(history, path, title=title)`` draws the figure (``plot_curves``).
  """

  def __init__(self, path: str, *, title: str | None, draw: Callable[..., None]):
    self.path = path
    self._title = title
    self._draw = draw
    self._history: list[EpochResult] = []
    self._pool: concurrent.futures.ThreadPoolExecutor | None = None
    self._latest = 0
    self._future: concurrent.futures.Future | None = None

  def start(self, history: Sequence[EpochResult]) -> None:
    self._history = list(history)  # a resumed run's epochs start the curves

  def write_epoch(self, result: EpochResult, line: str) -> None:
    self._raise_failed_drawing()
    self._history.append(result)
    if self._pool is None:
      self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="jaxtrain-curves")
    self._latest += 1
    ticket, history = self._latest, list(self._history)

    def job():
      if ticket == self._latest:
        with writing(self.path):
          self._draw(history, self.path, title=self._title)

    self._future = self._pool.submit(job)

  def close(self) -> None:
    if self._pool is not None:
      pool, self._pool = self._pool, None
      pool.shutdown(wait=True)
    self._raise_failed_drawing()

  def _raise_failed_drawing(self) -> None:
    future = self._future
    if future is not None and future.done():
      self._future = None  # a failure is reported once, then forgotten
      future.result()


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

  Raises:
    OutputError: the PNG could not be written; a ``path`` already there is kept whole.
  """
  # matplotlib.figure.Figure with the Agg canvas directly: no pyplot, so no
  # global state, no display backend, and no figures kept alive by pyplot.
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
  from matplotlib.figure import Figure  # noqa: PLC0415
  from matplotlib.ticker import MaxNLocator, PercentFormatter  # noqa: PLC0415

  records = [as_result(r) for r in history]
  epochs = [r.epoch for r in records]
  column = lambda name: [getattr(r, name) for r in records]  # noqa: E731

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
  ax_loss.plot(
    epochs, column("test_loss"), color=test_color, linestyle="--", label="test loss", **style
  )
  ax_loss.set_ylabel("loss")
  losses = [v for v in column("train_loss") + column("test_loss") if math.isfinite(v)]
  if losses and min(losses) >= 0:
    # Losses here are non-negative: 0 is the natural floor. The top gets a 5 %
    # margin so the first epoch's markers are not cut by the frame.
    ax_loss.set_ylim(0, 1.05 * max(losses) or 1.0)

  ax_acc.plot(epochs, column("train_acc"), color=train_color, label="train acc", **style)
  ax_acc.plot(
    epochs, column("test_acc"), color=test_color, linestyle="--", label="test acc", **style
  )
  ax_acc.set_ylabel("accuracy")
  ax_acc.set_ylim(0, 1.02)  # fixed: comparable across runs, and 100 % stays visible
  ax_acc.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
  test_acc = column("test_acc")
  finite = [(v, e) for v, e in zip(test_acc, epochs) if math.isfinite(v)]
  if finite:
    best, best_epoch = max(finite, key=lambda p: (p[0], -p[1]))  # the first best epoch
    ax_acc.plot(
      [best_epoch],
      [best],
      marker="*",
      markersize=10,
      color=test_color,
      markeredgecolor="black",
      markeredgewidth=0.6,
      linestyle="none",
      label=f"best test {best:.1%} (epoch {best_epoch})",
      zorder=3,
    )

  # Learning-rate changes (StepLR, MultiStepLR) as faint vertical lines between
  # the epochs: they explain the kinks in the curves. Schedules that change the
  # rate every epoch (cosine, exponential) would fill the panel with lines, so
  # only a few changes are drawn.
  lrs = column("lr")
  changes = [(a + b) / 2 for a, b, la, lb in zip(epochs, epochs[1:], lrs, lrs[1:]) if la != lb]
  if 0 < len(changes) <= 6:
    for ax in (ax_loss, ax_acc):
      for i, x in enumerate(changes):
        ax.axvline(
          x,
          color="gray",
          linestyle=":",
          linewidth=1,
          label="lr change" if i == 0 and ax is ax_loss else None,
        )

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
  write_atomic(os.fspath(path), buffer.getvalue())
