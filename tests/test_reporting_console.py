"""The progress bar is drawn where it is redrawn in place: in a pipe or a file, 'bar' prints lines.

tqdm redraws its bar with carriage returns; in a log file or a pipe every redraw
stays, so there the Reporter prints the summary lines alone. Terminals get the
bar, and so do notebooks, where tqdm.auto draws a widget.
"""

from __future__ import annotations

import io
import os

import pytest

from jaxtrain.reporting import Reporter


class Terminal(io.StringIO):
  """A stream that says it is a terminal, as sys.stdout does in a shell."""

  def isatty(self):
    return True


class Pipe:
  """A stream with no isatty at all (a minimal file-like object): not a terminal."""

  def __init__(self):
    self.text = io.StringIO()

  def write(self, s):
    return self.text.write(s)

  def flush(self):
    pass

  def getvalue(self):
    return self.text.getvalue()


def report(stream, epochs=2):
  """Two epochs in 'bar' mode, the bar updated as fit() does; returns the bars' active flags."""
  active = []
  with Reporter(out_dir=None, mode="bar", epochs=epochs, stream=stream) as rep:
    for epoch in range(1, epochs + 1):
      with rep.epoch_bar(epoch, num_batches=4, batch_size=8) as bar:
        active.append(bar.active)
        for i in range(4):
          bar.update(loss=1.0 / (i + 1))
      rep.end_epoch(
        dict(
          epoch=epoch,
          lr=0.1,
          train_loss=0.5,
          train_acc=0.8,
          test_loss=0.6,
          test_acc=0.75,
          running_loss=11.0,
          seconds=1.25,
        ),
        line=f"summary of epoch {epoch}",
      )
  return active


@pytest.mark.parametrize("stream", [io.StringIO(), Pipe()], ids=["StringIO", "no-isatty"])
def test_bar_mode_off_a_terminal_prints_the_lines_alone(stream):
  active = report(stream)
  # Exactly the summary lines: no carriage-return frames, no bar description.
  assert stream.getvalue() == "summary of epoch 1\nsummary of epoch 2\n"
  # The loop fetches a loss for the bar only when it is drawn.
  assert active == [False, False]


def test_bar_mode_on_a_terminal_draws_the_bar():
  stream = Terminal()
  active = report(stream)
  text = stream.getvalue()
  assert active == [True, True]
  assert "\r" in text and "epoch 1/2" in text and "img/s" in text  # tqdm's frames
  # Each summary line is printed once, after its epoch's bar.
  assert text.count("summary of epoch 1\n") == 1 and text.count("summary of epoch 2\n") == 1
  assert text.index("epoch 2/2") > text.index("summary of epoch 1\n")


def test_is_terminal():
  from jaxtrain.reporting.console import is_terminal

  assert is_terminal(Terminal())
  assert not is_terminal(io.StringIO())
  assert not is_terminal(Pipe())
  with open(os.devnull, "w") as closed:
    pass
  with pytest.raises(ValueError):  # what a closed file's isatty() does
    closed.isatty()
  assert not is_terminal(closed)


def test_a_notebook_gets_the_widget_bar(monkeypatch):
  # In Jupyter, sys.stdout is not a terminal, but tqdm.auto's bar is then tqdm.notebook's
  # widget, which writes no frames into the stream: the bar stays. (tqdm.auto is patched
  # as it is in a notebook; the widget itself needs ipywidgets, so none is drawn here.)
  import tqdm.auto
  import tqdm.notebook

  from jaxtrain.reporting.console import draws_in_place

  assert not draws_in_place(io.StringIO())  # here, tqdm.auto draws text
  monkeypatch.setattr(tqdm.auto, "tqdm", type("tqdm", (tqdm.notebook.tqdm,), {}))
  assert draws_in_place(io.StringIO())
  assert draws_in_place(Terminal())
