"""The benchmark scripts' bookkeeping: timing windows, rounds and ratios.

The figures themselves are not tested (they belong to benchmarks/RESULTS.md); these
tests check that the scripts compute what their tables say they do, on fake
contenders whose times and results are known.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

sys.path.insert(
  0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
)

import bench_losses  # noqa: E402
import bench_train  # noqa: E402
import results  # noqa: E402

BENCHMARKS = os.path.dirname(bench_losses.__file__)


class _Counter:
  """A call that sleeps ``seconds`` and counts itself, and a wait that counts itself."""

  def __init__(self, seconds: float):
    self.seconds, self.calls, self.waits = seconds, 0, 0

  def call(self):
    self.calls += 1
    time.sleep(self.seconds)
    return self.calls

  def wait(self, result):
    self.waits += 1
    return result


def test_time_calls_waits_once_per_window_and_reports_seconds_per_call():
  fast, slow = _Counter(0.0005), _Counter(0.002)
  repeats = 3
  times = bench_losses.time_calls(
    {"fast": (fast.call, fast.wait), "slow": (slow.call, slow.wait)}, min_time=0.06, repeats=repeats
  )
  # time.sleep never returns early; 10x covers a busy machine.
  assert 0.0005 <= times["fast"] < 0.005
  assert 0.002 <= times["slow"] < 0.02
  for c in (fast, slow):
    # A warm-up call and k calibration calls, each waited for; then `repeats` timed
    # windows of max(1, 2k) calls each, waited for once at the end of each window.
    k = c.waits - 1 - repeats
    assert k >= 1
    assert c.calls == 1 + k + repeats * max(1, 2 * k)


def test_loss_markdown_reports_back_to_back_and_waited_ratios():
  rows = [
    dict(
      size="notes",
      loss="mse_loss",
      torch_us=20.0,
      jax_us=10.0,
      jax_waited_us=40.0,
      ratio=2.0,
      waited_ratio=0.5,
      compile_ms=50.0,
    ),
    dict(
      size="large",
      loss="l1_loss",
      torch_us=30.0,
      jax_us=60.0,
      jax_waited_us=20.0,
      ratio=0.5,
      waited_ratio=1.5,
      compile_ms=60.0,
    ),
  ]
  text = bench_losses.markdown(rows, ("0.10", "0.20"))
  assert "| notes | mse_loss | 20.0 | 10.0 | 2.00 | 40.0 | 0.50 | 50 |" in text
  assert "jaxtrain faster in 1 of 2 rows." in text
  assert "Slower than torch: l1_loss (large, 0.50x)." in text
  assert "Waited for each call, jaxtrain faster in 1 of 2 rows." in text
  assert "Waited, slower than torch: mse_loss (notes, 0.50x)." in text
  assert "0.10 / 0.20" in text


def test_pinned_loss_table_has_its_own_section_after_the_default_one(tmp_path):
  rows = [
    dict(
      size="notes",
      loss="mse_loss",
      torch_us=20.0,
      jax_us=10.0,
      jax_waited_us=40.0,
      ratio=2.0,
      waited_ratio=0.5,
      compile_ms=50.0,
    )
  ]
  path = tmp_path / "RESULTS.md"
  path.write_text(
    "# Benchmark results\n\n" + bench_losses.HEADER + " (old)\n\nold table\n\n"
    "## Training throughput\n\ntraining table\n"
  )
  pinned = bench_losses.markdown(rows, ("0.1", "0.2"), cpus=1, pinned="Pinned to CPU 0 of 2.")
  assert pinned.startswith(bench_losses.header(1) + " (")
  assert "Pinned to CPU 0 of 2." in pinned
  for _ in range(2):  # written twice: the second run replaces the first
    results.write_results(
      pinned, header=bench_losses.header(1), path=str(path), after=bench_losses.HEADER
    )
  text = path.read_text()
  assert text.count(bench_losses.header(1)) == 1
  assert (
    text.index(bench_losses.HEADER)
    < text.index(bench_losses.header(1))
    < text.index("## Training throughput")
  )
  assert "old table" in text and "training table" in text
  assert "\n\n" + bench_losses.header(1) in text and "\n\n## Training throughput" in text


def test_cpus_pins_xla_and_torch_to_one_thread():
  # A fresh process (XLA sizes its thread pool when its backend starts). With one CPU
  # XLA gives no kernel a partition of the work (`outer_dimension_partitions`), which it
  # does for an exp over 1024 x 100 when it has a thread pool of 2 or more.
  script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts", "pinned_cpus.py")
  out = subprocess.run(
    [sys.executable, script, BENCHMARKS], capture_output=True, text=True, timeout=120, check=True
  ).stdout.split(maxsplit=3)
  assert out[:3] == ["1", "1", "False"]
  assert "XLA's thread pool has 1 thread, torch 1." in out[3]


def test_cpus_out_of_range_is_a_clear_error():
  allowed = len(os.sched_getaffinity(0))
  for bad in (0, allowed + 1):
    with pytest.raises(ValueError, match=f"--cpus must be between 1 and {allowed}"):
      bench_losses.pin_cpus(bad)


def _fake_child(results):
  """A ``run_child`` replacement returning ``results[(contender, call number)]``."""
  calls = {}

  def run_child(name, key, steps, repeat, timeout, precision="float32"):
    assert precision == "float32"
    calls[key] = calls.get(key, 0) + 1
    return dict(results[(key, calls[key])])

  return run_child


def _result(sps, peak=400.0, base=300.0):
  return dict(
    sps=sps,
    first=0.5,
    device="cpu",
    peak_rss_mib=peak,
    baseline_rss_mib=base,
    baseline_maxrss_mib=base,
  )


def test_rounds_take_the_median_of_per_round_ratios(monkeypatch, capsys):
  # torch eager slows down in round 2; the per-round ratios are 2, 2 and 1.5.
  results = {
    ("torch", 1): _result([100.0, 100.0, 100.0]),
    ("torch", 2): _result([50.0, 40.0, 60.0]),
    ("torch", 3): _result([100.0]),
    ("jax-step", 1): _result([200.0, 190.0, 210.0], peak=500.0),
    ("jax-step", 2): _result([100.0], peak=650.0, base=320.0),
    ("jax-step", 3): _result([150.0], peak=450.0),
  }
  monkeypatch.setattr(bench_train, "run_child", _fake_child(results))
  rows = bench_train.run(["mlp"], ["torch", "jax-step"], steps=8, repeat=3, timeout=10, rounds=3)
  torch_row, jax_row = rows
  assert torch_row["round_medians"] == [100.0, 50.0, 100.0]
  assert torch_row["median"] == 100.0 and torch_row["ratio"] == 1.0
  assert jax_row["round_medians"] == [200.0, 100.0, 150.0]
  assert jax_row["median"] == 150.0
  assert jax_row["ratio"] == pytest.approx(2.0, rel=0, abs=1e-12)
  assert min(jax_row["sps"]) == 100.0 and max(jax_row["sps"]) == 210.0
  # Memory: the run with the highest peak, with its own baseline.
  assert (jax_row["peak_rss_mib"], jax_row["baseline_rss_mib"]) == (650.0, 320.0)
  text = bench_train.markdown(rows, 8, 3, "cmd", rounds=3)
  assert "3 times: the contenders of a model took turns" in text
  assert (
    "| mlp (256) | jaxtrain per-step | cpu | 150.0 (100.0-210.0) | 38400 | 0.50 | 650 | 330 |"
    " 2.00x |" in text
  )
  assert "round 2/3 mlp torch: 50.0 steps/s" in capsys.readouterr().out


def test_a_failed_round_fails_the_row(monkeypatch):
  results = {
    ("torch", 1): _result([100.0]),
    ("torch", 2): _result([100.0]),
    ("jax-scan", 1): _result([200.0]),
    ("jax-scan", 2): dict(error="timed out after 10 s"),
  }
  monkeypatch.setattr(bench_train, "run_child", _fake_child(results))
  rows = bench_train.run(["cnn"], ["torch", "jax-scan"], steps=8, repeat=1, timeout=10, rounds=2)
  assert rows[1]["error"] == "timed out after 10 s"
  assert "failed: timed out after 10 s" in bench_train.markdown(rows, 8, 1, "cmd", rounds=2)


def test_without_torch_eager_there_is_no_ratio(monkeypatch):
  results = {("jax-step", 1): _result([200.0])}
  monkeypatch.setattr(bench_train, "run_child", _fake_child(results))
  (row,) = bench_train.run(["rnn"], ["jax-step"], steps=8, repeat=1, timeout=10)
  assert row["ratio"] is None and row["median"] == 200.0


def test_gpu_check_tiny_mode_runs_every_part_and_records_its_section(tmp_path):
  # The GPU check's CPU mode, as CI runs it: every part at toy sizes, then --record
  # puts the saved section into a RESULTS.md (a copy here) after the training table.
  saved, copy = tmp_path / "gpu_check.md", tmp_path / "RESULTS.md"
  copy.write_text("# Benchmark results\n\n## Training throughput: x\n\ntable\n\n## Later\n")
  env = {**os.environ, "PYTHONPATH": os.path.dirname(BENCHMARKS)}
  script = os.path.join(BENCHMARKS, "gpu_check.py")
  run = subprocess.run(
    [sys.executable, script, "--tiny", "--save", str(saved)],
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert run.returncode == 0, run.stderr[-2000:]
  section = saved.read_text()
  assert section.startswith("## GPU check (tiny CPU mode)")
  rel = float(
    section.split("largest difference relative to each gradient's scale ")[1].split(";")[0]
  )
  assert rel < 1e-5  # the CPU forms against the plain lax program, float32
  rows = [line for line in section.splitlines() if line.startswith(("| float32 |", "| bf16 |"))]
  assert len(rows) == 2 * 1 * 3 and not [r for r in rows if "failed" in r], rows  # MLP alone
  assert "| per-step | 2 |" in section and "| scan-epoch | 2 |" in section
  assert "goal 3x" in section and "not measured (2 epochs only)" in section
  record = subprocess.run(
    [sys.executable, script, "--record", str(saved), "--results", str(copy)],
    env=env,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert record.returncode == 0, record.stderr
  text = copy.read_text()
  assert text.index("## Training throughput") < text.index("## GPU check") < text.index("## Later")
