"""jaxtrain.pipeline: the dataset on the device or prefetched from the host, the same training
either way, and a loop that never waits on the device within an epoch."""

from __future__ import annotations

import dataclasses
import threading

import jax
import numpy as np
import pytest

from jaxtrain import loop, parallel, pipeline, reporting
from jaxtrain.data import load_dataset


@pytest.fixture(scope="module")
def digits():
  return load_dataset("digits")


def _fit(digits, **changes):
  config = dataclasses.replace(loop.Config(model="mlp", epochs=2, progress="quiet"), **changes)
  return loop.fit(config, log=lambda line: None, data=digits)


def _params(state):
  return jax.tree.map(np.asarray, jax.tree.leaves(state.params))


def test_host_and_device_placement_train_the_same(digits):
  # The same batches in the same order, gathered on the device from the uint8 split or
  # on the host and prefetched: the same programs' arithmetic, bit for bit.
  on_device, results_d = _fit(digits, data_placement="device")
  on_host, results_h = _fit(digits, data_placement="host")
  for a, b in zip(_params(on_device), _params(on_host)):
    np.testing.assert_array_equal(a, b)
  assert [dataclasses.replace(r, seconds=0) for r in results_d] == [
    dataclasses.replace(r, seconds=0) for r in results_h
  ]


def test_auto_placement_follows_free_device_memory(digits, monkeypatch):
  mesh = parallel.data_mesh()
  need = sum(a.nbytes for s in (digits.train, digits.test) for a in (s.images, s.labels))
  assert pipeline.choose_placement("auto", digits, mesh, scan_epoch=False) == "device"  # CPU
  monkeypatch.setattr(parallel, "device_memory_free", lambda mesh: 2 * need)
  assert pipeline.choose_placement("auto", digits, mesh, scan_epoch=True) == "device"
  monkeypatch.setattr(parallel, "device_memory_free", lambda mesh: 2 * need - 1)
  assert pipeline.choose_placement("auto", digits, mesh, scan_epoch=False) == "host"
  with pytest.raises(ValueError, match=r"scan_epoch gathers its batches .* more than half"):
    pipeline.choose_placement("auto", digits, mesh, scan_epoch=True)


def test_bad_placements_are_errors_naming_the_option(digits):
  mesh = parallel.data_mesh()
  with pytest.raises(ValueError, match="data_placement='host' cannot run with scan_epoch"):
    pipeline.choose_placement("host", digits, mesh, scan_epoch=True)
  with pytest.raises(ValueError, match="data_placement='gpu' is not valid; expected one of auto"):
    pipeline.choose_placement("gpu", digits, mesh, scan_epoch=False)


@pytest.mark.parametrize("placement", ["device", "host"])
def test_the_loop_reads_no_device_value_per_step(digits, placement, monkeypatch):
  # An implicit device-to-host read (float(x), np.asarray(x)) anywhere in the run is an
  # error under the transfer guard; the explicit ones (jax.device_get) are counted:
  # a fixed number per epoch (the learning rate, the epoch's summed metrics, the test
  # metrics), none per step (22 steps an epoch).
  reads = []
  device_get = jax.device_get

  def counted(x):
    reads.append(1)
    return device_get(x)

  monkeypatch.setattr(jax, "device_get", counted)
  with jax.transfer_guard_device_to_host("disallow"):
    _, results = _fit(digits, data_placement=placement)
  assert len(results) == 2
  assert len(reads) <= 3 * len(results), len(reads)


class _Pending:
  """A loss whose copy to the host has not arrived."""

  def copy_to_host_async(self):
    pass

  def is_ready(self):
    return False


def test_the_progress_bar_never_waits_for_a_loss(monkeypatch):
  monkeypatch.setattr(jax, "device_get", lambda x: pytest.fail("read a loss not yet on the host"))
  losses = pipeline._AsyncLosses()
  assert [losses.track(i, _Pending()) for i in range(25)] == [None] * 25


# One epoch's results, as the loop reports them.
EPOCH_1 = dict(
  epoch=1,
  lr=0.1,
  train_loss=1.0,
  train_acc=0.5,
  test_loss=1.0,
  test_acc=0.5,
  running_loss=22.0,
  seconds=1.0,
)


def test_curves_are_drawn_off_the_loop(tmp_path, monkeypatch):
  # end_epoch returns while the figure is still being drawn; close() waits for it.
  release, drawing = threading.Event(), threading.Event()
  draw = reporting.plot_curves

  def slow_plot(*args, **kwargs):
    drawing.set()
    assert release.wait(30)
    draw(*args, **kwargs)

  monkeypatch.setattr(reporting, "plot_curves", slow_plot)
  rep = reporting.Reporter(out_dir=tmp_path, mode="quiet", epochs=1)
  rep.end_epoch(EPOCH_1)
  assert drawing.wait(30) and not (tmp_path / "curves.png").exists()
  assert (tmp_path / "metrics.jsonl").exists()  # the cheap outputs are written at once
  release.set()
  rep.close()
  assert (tmp_path / "curves.png").stat().st_size > 0


def test_a_failed_drawing_is_reported_at_close(tmp_path, monkeypatch):
  def broken(*args, **kwargs):
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(reporting, "plot_curves", broken)
  rep = reporting.Reporter(out_dir=tmp_path, mode="quiet", epochs=1)
  rep.end_epoch(EPOCH_1)
  with pytest.raises(OSError, match="No space left"):
    rep.close()
