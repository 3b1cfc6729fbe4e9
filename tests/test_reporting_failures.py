"""A failed write (full disk, a file where a folder should be) ends in one OutputError.

The error is one line naming the file and the OS error; the file keeps its last
good content (no half-written PNG, no partial JSON line); the other outputs
still get the epoch. The disk is full either by a simulated ENOSPC or, where
this process may mount one (root), on a real tiny tmpfs.
"""

from __future__ import annotations

import builtins
import errno
import json
import os

import pytest

from jaxtrain import reporting
from jaxtrain.reporting import Reporter, read_scalars

ENOSPC = f"[Errno 28] {os.strerror(errno.ENOSPC)}"  # "No space left on device" on Linux


def result(epoch):
  return dict(
    epoch=epoch,
    lr=0.1,
    train_loss=1.0 / epoch,
    train_acc=0.5,
    test_loss=1.0,
    test_acc=0.5,
    running_loss=22.0,
    seconds=1.0,
  )


def jsonl_epochs(path):
  return [json.loads(line)["epoch"] for line in path.read_text().splitlines()]


def tensorboard_steps(out):
  # A Reporter made within the same second as the one before writes an event file of the
  # same name (tensorboardX names it by the second), so only the newest epoch is asserted.
  return [s for s, _ in read_scalars(out / "tensorboard")["lr"]]


def first_run(out):
  """Epoch 1, finished and closed: every output holds it (curves.png included)."""
  with Reporter(out_dir=out, mode="quiet", epochs=2) as rep:
    rep.end_epoch(result(1))


def assert_curves_failed_and_the_rest_kept(out, good_png):
  """Kept: the last good figure, whole; the other outputs hold epoch 2; no temporary file."""
  assert (out / "curves.png").read_bytes() == good_png
  assert jsonl_epochs(out / "metrics.jsonl") == [1, 2]
  assert tensorboard_steps(out)[-1] == 2
  assert sorted(os.listdir(out)) == [
    "config.json",
    "curves.png",
    "metrics.csv",
    "metrics.jsonl",
    "tensorboard",
  ]


def test_full_disk_while_replacing_the_curves(tmp_path, monkeypatch):
  out = tmp_path / "run"
  first_run(out)
  good_png = (out / "curves.png").read_bytes()
  # The resumed run's epoch 2: the disk fills as the new PNG replaces the old one.
  replace = os.replace

  def full_disk(src, dst, *args, **kwargs):
    if os.fspath(dst).endswith("curves.png"):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return replace(src, dst, *args, **kwargs)

  monkeypatch.setattr(os, "replace", full_disk)
  rep = Reporter(out_dir=out, mode="quiet", epochs=2, history=[result(1)])
  rep.end_epoch(result(2))  # the curves are drawn in the background: close reports them
  with pytest.raises(reporting.OutputError) as error:
    rep.close()
  assert isinstance(error.value, OSError) and error.value.errno == errno.ENOSPC
  assert str(error.value) == f"could not write {out / 'curves.png'}: {ENOSPC}"
  assert_curves_failed_and_the_rest_kept(out, good_png)
  rep.close()  # reported once: a second close is quiet


class _DiskFillsMidWrite:
  """A file whose first write stores half the data, then fails as a full disk does."""

  def __init__(self, file):
    self._file = file

  def write(self, data):
    self._file.write(data[: len(data) // 2])
    self._file.flush()
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  def __getattr__(self, name):
    return getattr(self._file, name)

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    self._file.close()


def test_full_disk_while_appending_the_metrics(tmp_path, monkeypatch):
  rep = Reporter(out_dir=tmp_path, mode="quiet", epochs=3)
  rep.end_epoch(result(1))
  before = (tmp_path / "metrics.jsonl").read_bytes()
  real_open = builtins.open

  def open_(file, mode="r", *args, **kwargs):
    f = real_open(file, mode, *args, **kwargs)
    if os.fspath(file).endswith("metrics.jsonl") and "a" in mode:
      return _DiskFillsMidWrite(f)
    return f

  monkeypatch.setattr(builtins, "open", open_)
  with pytest.raises(reporting.OutputError) as error:
    rep.end_epoch(result(2))
  monkeypatch.undo()
  assert str(error.value) == f"could not write {tmp_path / 'metrics.jsonl'}: {ENOSPC}"
  # No partial line: the file is as it was after epoch 1.
  assert (tmp_path / "metrics.jsonl").read_bytes() == before
  # The other outputs got epoch 2 all the same.
  assert (tmp_path / "metrics.csv").read_text().splitlines()[2].startswith("2,")
  assert tensorboard_steps(tmp_path) == [1, 2]
  rep.close()  # the failed writer was reported once; the others close cleanly
  assert (tmp_path / "curves.png").exists()


def test_unwritable_console_stream(tmp_path):
  class FullLog:
    name = "run.log"  # as a file object opened on run.log names itself

    def write(self, text):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self):
      pass

  rep = Reporter(out_dir=tmp_path, mode="lines", epochs=1, stream=FullLog())
  with pytest.raises(reporting.OutputError) as error:
    rep.end_epoch(result(1))
  assert str(error.value) == f"could not write run.log: {ENOSPC}"
  assert jsonl_epochs(tmp_path / "metrics.jsonl") == [1]  # the files still have the epoch
  rep.close()


def test_out_dir_is_a_file(tmp_path):
  (tmp_path / "run").write_text("not a folder")
  with pytest.raises(reporting.OutputError) as error:
    Reporter(out_dir=tmp_path / "run", mode="quiet", epochs=1)
  assert str(error.value) == (
    f"could not write {tmp_path / 'run'}: [Errno {errno.EEXIST}] {os.strerror(errno.EEXIST)}"
  )
  assert (tmp_path / "run").read_text() == "not a folder"


def test_output_error_is_one_line():
  error = reporting.OutputError("runs/x/curves.png", OSError(errno.EROFS, os.strerror(errno.EROFS)))
  assert str(error) == f"could not write runs/x/curves.png: [Errno 30] {os.strerror(errno.EROFS)}"
  assert (error.errno, error.filename) == (errno.EROFS, "runs/x/curves.png")
  # An OSError without an errno keeps its message.
  assert str(reporting.OutputError("a", OSError("disk gone"))) == "could not write a: disk gone"


@pytest.fixture
def tiny_disk(tmpfs):
  """A 1 MiB tmpfs; skipped where mounting is not permitted (not root, not Linux)."""
  disk = tmpfs("size=1m")
  if disk is None:
    pytest.skip("cannot mount a tmpfs here")
  return disk


def fill(disk, leave):
  """Fills ``disk`` but ``leave`` bytes, with one file."""
  fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
  try:
    chunk = b"\0" * 65536
    while True:
      try:
        os.write(fd, chunk)
      except OSError as e:
        assert e.errno == errno.ENOSPC
        break
    os.ftruncate(fd, os.fstat(fd).st_size - leave)
  finally:
    os.close(fd)


def test_full_tmpfs_while_drawing_the_curves(tiny_disk):
  out = tiny_disk / "run"
  first_run(out)
  good_png = (out / "curves.png").read_bytes()
  assert len(good_png) > 16384  # so that the next one cannot fit in what is left
  fill(tiny_disk, leave=16384)
  # A resumed run: config.json, the metric files and a new event file fit; the PNG does not.
  rep = Reporter(out_dir=out, mode="quiet", epochs=2, history=[result(1)])
  rep.end_epoch(result(2))
  with pytest.raises(reporting.OutputError) as error:
    rep.close()
  assert str(error.value) == f"could not write {out / 'curves.png'}: {ENOSPC}"
  assert_curves_failed_and_the_rest_kept(out, good_png)
