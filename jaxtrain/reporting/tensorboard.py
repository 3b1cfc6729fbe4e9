"""TensorBoard scalars of each epoch, flushed to disk at the end of the epoch."""

from __future__ import annotations

import dataclasses
import os
import time

from jaxtrain.reporting.files import writing
from jaxtrain.reporting.record import EpochResult
from jaxtrain.reporting.writer import Writer

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


class TensorBoardWriter(Writer):
  """Writes each epoch's ``TAGS`` at step ``epoch`` into an event file in ``logdir``.

  The event file (``events.out.tfevents.<time>.<host>``) is made at the first
  epoch; event files are never deleted, so a rerun or a resumed run adds a new
  one next to the old ones (the epochs of a resumed run's history are in the
  old ones already). A write that fails part-way leaves a partial last record,
  which TensorBoard and ``read_scalars`` skip.
  """

  def __init__(self, logdir: str):
    self.logdir = logdir
    self._events = None

  def write_epoch(self, result: EpochResult, line: str) -> None:
    # tensorboardX's synchronous EventsWriter, not its SummaryWriter: the
    # SummaryWriter hands events to a background thread through a queue and its
    # flush() does not wait for that queue (measured: after add_scalar x7 and
    # flush(), the file held only its header). Writing directly makes "flushed at
    # the end of every epoch" true, and uses no thread. Same file format and
    # name; TensorBoard reads it.
    from tensorboardX.event_file_writer import EventsWriter  # noqa: PLC0415
    from tensorboardX.proto import event_pb2, summary_pb2  # noqa: PLC0415

    values = dataclasses.asdict(result)
    # The folder names the output: EventsWriter does not say which file it made.
    with writing(self.logdir):
      if self._events is None:
        os.makedirs(self.logdir, exist_ok=True)
        self._events = EventsWriter(os.path.join(self.logdir, "events"))
      self._events.write_event(
        event_pb2.Event(
          wall_time=time.time(),
          step=result.epoch,
          summary=summary_pb2.Summary(
            value=[
              summary_pb2.Summary.Value(tag=tag, simple_value=values[field])
              for tag, field in TAGS.items()
            ]
          ),
        )
      )
      self._events.flush()

  def close(self) -> None:
    if self._events is not None:
      events, self._events = self._events, None
      with writing(self.logdir):
        events.close()
