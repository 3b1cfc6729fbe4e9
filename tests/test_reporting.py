"""Tests of jaxtrain.reporting: printed output per mode, run files, TensorBoard, curves, fan-out.

Failures of the outputs (a full disk) are tested in test_reporting_failures.py;
the progress bar on terminals and pipes in test_reporting_console.py.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest

from jaxtrain import loop, reporting
from jaxtrain.reporting import COLUMNS, TAGS, EpochResult, Reporter, plot_curves, read_scalars
from jaxtrain.reporting.files import OutputError
from jaxtrain.reporting.record import as_result
from jaxtrain.reporting.writer import MultiWriter, Writer

CONFIG = {
  "model": "cnn",
  "dataset": "digits",
  "loss": "cross_entropy",
  "optimizer": "sgd",
  "lr": 0.05,
  "betas": (0.9, 0.999),
  "data_dir": None,
}


def fake_results(n=3):
  """n epochs of plausible results; values with many digits test float32 round trips."""
  return [
    SimpleNamespace(
      epoch=e,
      lr=0.05 * 0.1 ** (e // 2),
      train_loss=2.3 / e + 0.0123456789,
      train_acc=0.1 + 0.3 * e,
      test_loss=2.4 / e,
      test_acc=0.09 + 0.29 * e,
      running_loss=50.0 / e,
      seconds=1.5 + e,
      skipped=e - 1,
    )
    for e in range(1, n + 1)
  ]


class Terminal(io.StringIO):
  """A stream that says it is a terminal, as sys.stdout does in a shell."""

  def isatty(self):
    return True


def run(mode, out_dir=None, results=None, bar=True, stream=None):
  """Runs a Reporter over the fake epochs; returns (reporter, printed text)."""
  stream = io.StringIO() if stream is None else stream
  results = fake_results() if results is None else results
  with Reporter(
    out_dir=out_dir, mode=mode, epochs=len(results), config=CONFIG, stream=stream
  ) as rep:
    for r in results:
      if bar:
        with rep.epoch_bar(r.epoch, num_batches=4, batch_size=8) as b:
          for i in range(4):
            b.update(loss=2.0 / (i + 1) if i % 2 == 0 else None)
      rep.end_epoch(r, line=f"summary of epoch {r.epoch}")
  return rep, stream.getvalue()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("run")
  rep, _ = run("quiet", out_dir=out)
  return out, rep


def test_config_json(run_dir):
  out, _ = run_dir
  text = (out / "config.json").read_text()
  assert json.loads(text) == {**CONFIG, "betas": [0.9, 0.999]}
  assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_metrics_jsonl(run_dir):
  out, _ = run_dir
  lines = (out / "metrics.jsonl").read_text().splitlines()
  assert len(lines) == 3
  for line, r in zip(lines, fake_results()):
    assert json.loads(line) == {f: getattr(r, f) for f in COLUMNS}


def test_metrics_csv(run_dir):
  out, _ = run_dir
  with open(out / "metrics.csv", newline="") as f:
    rows = list(csv.reader(f))
  assert rows[0] == list(COLUMNS)
  assert len(rows) == 4
  for row, r in zip(rows[1:], fake_results()):
    assert [float(v) for v in row] == [float(getattr(r, f)) for f in COLUMNS]


def test_curves_png(run_dir):
  import matplotlib.image

  out, _ = run_dir
  path = out / "curves.png"
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  image = matplotlib.image.imread(path)
  assert image.shape == (630, 960, 4)  # 6.4 x 4.2 in at 150 dpi, RGBA
  assert image[..., :3].std() > 0.05  # something is drawn
  # Atomic writes leave no temporary files behind.
  assert sorted(p.name for p in out.iterdir()) == [
    "config.json",
    "curves.png",
    "metrics.csv",
    "metrics.jsonl",
    "tensorboard",
  ]


def test_tensorboard_scalars(run_dir):
  out, _ = run_dir
  scalars = read_scalars(out / "tensorboard")
  assert set(scalars) == set(TAGS)
  for tag, field in TAGS.items():
    expected = [(r.epoch, float(np.float32(getattr(r, field)))) for r in fake_results()]
    assert scalars[tag] == expected, tag


def test_tensorboard_flushed_each_epoch(tmp_path):
  # Read back while the Reporter is still open: every finished epoch is on disk.
  rep = Reporter(out_dir=tmp_path, mode="quiet", epochs=3)
  for r in fake_results(2):
    rep.end_epoch(r)
    assert [s for s, _ in read_scalars(tmp_path / "tensorboard")["loss/train"]] == list(
      range(1, r.epoch + 1)
    )
  rep.close()
  rep.close()  # idempotent
  with pytest.raises(RuntimeError):
    rep.end_epoch(fake_results(1)[0])


def test_read_scalars_reads_summary_writer_files(tmp_path):
  # Files of tensorboardX's own SummaryWriter (one event per scalar, threaded writer).
  from tensorboardX import SummaryWriter

  with SummaryWriter(str(tmp_path)) as w:
    for step in range(3):
      w.add_scalar("a/b", step * 0.5, step)
  assert read_scalars(tmp_path) == {"a/b": [(0, 0.0), (1, 0.5), (2, 1.0)]}


def test_read_scalars_truncated_and_corrupt(run_dir, tmp_path):
  out, _ = run_dir
  (source,) = (out / "tensorboard").iterdir()
  data = source.read_bytes()
  # A crash mid-write leaves a partial last record: it is skipped.
  (tmp_path / "events.out.tfevents.1").write_bytes(data[:-5])
  assert [s for s, _ in read_scalars(tmp_path)["lr"]] == [1, 2]
  # A flipped byte fails the checksum.
  bad = bytearray(data)
  bad[-10] ^= 0xFF
  (tmp_path / "events.out.tfevents.1").write_bytes(bytes(bad))
  with pytest.raises(ValueError, match="CRC"):
    read_scalars(tmp_path)
  # Without the checksums, the damaged event fails to parse, still as a ValueError.
  with pytest.raises(ValueError, match="corrupt event"):
    read_scalars(tmp_path, check_crc=False)


def test_mode_json():
  _, text = run("json")
  lines = text.splitlines()
  assert len(lines) == 3
  assert [json.loads(line) for line in lines] == [
    {f: getattr(r, f) for f in COLUMNS} for r in fake_results()
  ]


def test_mode_quiet():
  _, text = run("quiet")
  assert text == ""


def test_mode_lines():
  _, text = run("lines")
  assert text.splitlines() == [f"summary of epoch {e}" for e in (1, 2, 3)]


def test_mode_lines_default_format():
  stream = io.StringIO()
  with Reporter(out_dir=None, mode="lines", epochs=20, stream=stream) as rep:
    rep.end_epoch(
      dataclasses.asdict(
        EpochResult(
          epoch=3,
          lr=0.05,
          train_loss=0.5,
          train_acc=0.8,
          test_loss=0.6,
          test_acc=0.75,
          running_loss=11.0,
          seconds=1.25,
        )
      )
    )
  assert stream.getvalue() == (
    "epoch  3/20  lr 5.00e-02  loss 0.5000  train acc 0.8000  "
    "test acc 0.7500  running_loss 11.0000  (1.2s)\n"
  )


def test_mode_bar():
  _, text = run("bar", stream=Terminal())  # off a terminal: test_reporting_console.py
  for e in (1, 2, 3):
    assert f"summary of epoch {e}\n" in text
  assert "epoch 1/3" in text  # the bar's description
  assert "0/32 [" in text and "img/s" in text  # tqdm counts images: 4 batches of 8
  # The bar is removed (leave=False) before each summary line.
  assert text.index("epoch 2/3") > text.index("summary of epoch 1\n")


def test_bar_postfix_shows_the_loss():
  rep = Reporter(out_dir=None, mode="bar", epochs=1, stream=Terminal())
  with rep.epoch_bar(1, num_batches=3, batch_size=2) as bar:
    assert bar.active
    bar.update(loss=1.23456)
    bar.update(2)  # no loss: the last one stays
    assert bar._bar.postfix == "loss=1.2346"
    assert bar._bar.n == 6


def test_bar_is_a_noop_outside_bar_mode():
  for mode in ("lines", "quiet", "json"):
    rep = Reporter(out_dir=None, mode=mode, epochs=1, stream=io.StringIO())
    with rep.epoch_bar(1, num_batches=3, batch_size=2) as bar:
      bar.update(loss=1.0)
    assert rep.stream.getvalue() == ""


def test_bad_mode():
  with pytest.raises(ValueError, match="mode"):
    Reporter(out_dir=None, mode="verbose", epochs=3)


def test_result_missing_field():
  rep = Reporter(out_dir=None, mode="quiet", epochs=1)
  with pytest.raises(TypeError, match="test_acc"):
    rep.end_epoch({"epoch": 1})


def test_out_dir_none_writes_nothing(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  rep, _ = run("lines", out_dir=None)
  assert os.listdir(tmp_path) == []
  assert len(rep.history) == 3


def test_rerun_replaces_metrics(tmp_path):
  run("quiet", out_dir=tmp_path, bar=False)
  run("quiet", out_dir=tmp_path, results=fake_results(2), bar=False)
  assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
  assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 3


def test_plot_curves_edge_cases(tmp_path):
  import matplotlib.image

  # One epoch, numpy scalars, a NaN loss (a diverged run): all draw.
  one = [EpochResult(1, 0.1, np.float32(2.3), 0.1, float("nan"), np.float64(0.1), 50.0, 1.0)]
  plot_curves(one, tmp_path / "one.png", title="t")
  assert matplotlib.image.imread(tmp_path / "one.png").shape == (630, 960, 4)
  plot_curves([], tmp_path / "empty.png")
  assert (tmp_path / "empty.png").exists()


# The epoch record, declared once.


def test_the_record_is_declared_once():
  # The loop's names are the reporting package's objects, not copies that can drift.
  assert loop.EpochResult is EpochResult
  assert loop.format_epoch is reporting.format_epoch
  assert COLUMNS == tuple(f.name for f in dataclasses.fields(EpochResult))
  assert set(TAGS.values()) == set(COLUMNS) - {"epoch"}


def test_default_line_names_skipped_updates():
  # The default line is format_epoch's, which ends in "skipped N" when updates were skipped.
  stream = io.StringIO()
  with Reporter(out_dir=None, mode="lines", epochs=5, stream=stream) as rep:
    rep.end_epoch(
      dict(
        epoch=2,
        lr=0.1,
        train_loss=0.5,
        train_acc=0.8,
        test_loss=0.6,
        test_acc=0.75,
        running_loss=11.0,
        seconds=1.25,
        skipped=3,
      )
    )
  assert stream.getvalue() == (
    "epoch 2/5  lr 1.00e-01  loss 0.5000  train acc 0.8000  "
    "test acc 0.7500  running_loss 11.0000  (1.2s)  skipped 3\n"
  )


def test_as_result_converts_to_python_numbers():
  r = as_result(
    dict(
      epoch=np.int64(2),
      lr=np.float32(0.5),
      train_loss=1,
      train_acc=0.5,
      test_loss=1.0,
      test_acc=0.5,
      running_loss=3.0,
      seconds=1.0,
    )
  )
  assert r == EpochResult(2, 0.5, 1.0, 0.5, 1.0, 0.5, 3.0, 1.0, skipped=0)
  assert [type(getattr(r, f)) for f in COLUMNS] == [int] + [float] * 7 + [int]


# The fan-out.


class Recording(Writer):
  """A writer that records its calls; ``fail`` makes write_epoch raise that error."""

  def __init__(self, name, calls, fail=None):
    self.name, self.calls, self.fail = name, calls, fail

  def start(self, history):
    self.calls.append((self.name, "start", len(history)))

  def write_epoch(self, result, line):
    self.calls.append((self.name, "write", result.epoch))
    if self.fail is not None:
      raise self.fail

  def close(self):
    self.calls.append((self.name, "close"))


def test_multi_writer_keeps_writing_past_a_failed_writer():
  calls = []
  full = OutputError("run/metrics.jsonl", OSError(28, "No space left on device"))
  writers = MultiWriter(
    [Recording("a", calls), Recording("b", calls, fail=full), Recording("c", calls)]
  )
  writers.start([])
  r1, r2 = (EpochResult(e, 0.1, 1.0, 0.5, 1.0, 0.5, 2.0, 1.0) for e in (1, 2))
  with pytest.raises(OutputError) as error:
    writers.write_epoch(r1, "line")
  assert error.value is full
  # Every writer got epoch 1; the failed one was closed at once and is left out afterwards,
  # so the failure is reported once.
  assert calls == [
    ("a", "start", 0),
    ("b", "start", 0),
    ("c", "start", 0),
    ("a", "write", 1),
    ("b", "write", 1),
    ("b", "close"),
    ("c", "write", 1),
  ]
  calls.clear()
  writers.write_epoch(r2, "line")
  writers.close()
  assert calls == [("a", "write", 2), ("c", "write", 2), ("a", "close"), ("c", "close")]


def test_multi_writer_raises_the_first_of_several_failures():
  calls = []
  first, second = OSError(28, "first"), ValueError("second")
  writers = MultiWriter([Recording("a", calls, fail=first), Recording("b", calls, fail=second)])
  with pytest.raises(OSError) as error:
    writers.write_epoch(EpochResult(1, 0.1, 1.0, 0.5, 1.0, 0.5, 2.0, 1.0), "line")
  assert error.value is first
  assert error.value.__notes__ == ["also: ValueError: second"]
  writers.close()
  assert ("a", "close") in calls and ("b", "close") in calls
