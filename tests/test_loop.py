"""Reliability: SIGKILL at chosen points then ``--resume``, the NaN policies, determinism.

The reference for every resumed run is the run that was never interrupted (same
flags, same seed, CPU): its ``params.npz`` must come back bit for bit ("the resumed
run ends with the parameters of the uninterrupted run").
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from command_line import one_line_error, run_cli

from jaxtrain import loop, parallel, train
from jaxtrain.checkpoint import Checkpointer
from jaxtrain.data import epoch_permutation, load_dataset, to_float
from jaxtrain.data.dataset import Dataset, Split
from jaxtrain.run import build_run

# The repository root, for the subprocesses' imports: from this file, not the
# working directory, which the tests must not depend on.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# softmax regression on the digits: 3 epochs of 22 SGD-with-momentum updates each
# take well under a second, so a process's cost is its start (about 5 s).
COMMON = ["--model", "softmax_regression", "--epochs", "3", "--progress", "quiet"]

# Runs jaxtrain.train's main in a process that stops, at the point JAXTRAIN_KILL_HOOK
# names, to write the marker file and sleep: the test then SIGKILLs it there. The
# hooks patch the functions the run calls (test-only: nothing in jaxtrain reads
# these variables). Hook points:
#   step:K      after dispatching the K-th train step (1-based; the step may be running)
#   create:E    orbax has just created the temporary directory of epoch E's checkpoint
#   item:E      epoch E's 'meta' item is final, its 'state' item written, not yet renamed
#   commit:E    everything of epoch E is written, the final rename is next
#   report:E    epoch E's checkpoint is committed, its metrics not yet reported
#   params      the last checkpoint is committed, params.npz not yet written

# (hook, what the killed run's checkpoints may hold: the latest committed epoch).
# Checkpoints are written asynchronously: a save returns once the state is on the
# host and orbax writes it while the next epoch trains, so a kill soon after an
# epoch's end may find that epoch's checkpoint committed or not yet; either way
# the resumed run must end bit for bit as the uninterrupted one.
KILL_POINTS = [
  ("step:5", {None}),  # during epoch 1, before any checkpoint: resume starts afresh
  ("step:30", {None, 1}),  # during a step of epoch 2, epoch 1's write maybe in flight
  ("create:2", {1}),  # checkpoint write of epoch 2, just begun
  ("item:2", {1}),  # checkpoint write of epoch 2, in the middle
  ("commit:2", {1}),  # checkpoint write of epoch 2, all written, not yet renamed
  ("report:2", {1, 2}),  # epoch 2's write started, the epoch not yet in metrics.jsonl
  ("params", {3}),  # every epoch committed (the run waits for its writes first)
]


def _params(path):
  with np.load(path) as f:
    return {k: f[k] for k in f.files}


def test_sigkill_anywhere_then_resume_equals_the_uninterrupted_run(tmp_path):
  # The killed processes start together (their time is mostly the start), each
  # waits at its hook, and is SIGKILLed there.
  env = {**os.environ, "PYTHONPATH": REPO}
  procs = {}
  for hook, _ in KILL_POINTS:
    out = tmp_path / hook.replace(":", "_")
    marker = tmp_path / (out.name + ".marker")
    procs[hook] = (
      out,
      marker,
      subprocess.Popen(
        [
          sys.executable,
          os.path.join(REPO, "tests", "scripts", "killed_main.py"),
          *COMMON,
          "--out",
          str(out),
        ],
        env={**env, "JAXTRAIN_KILL_HOOK": hook, "JAXTRAIN_KILL_MARKER": str(marker)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
      ),
    )
  # Meanwhile, the reference: the same flags, never interrupted.
  assert train.main(COMMON + ["--out", str(tmp_path / "whole")]) == 0
  whole = _params(tmp_path / "whole" / "params.npz")

  deadline = time.monotonic() + 240
  for hook, (_, marker, proc) in procs.items():
    while not marker.exists():
      assert proc.poll() is None, f"{hook}: the run ended before its hook: {proc.stderr.read()}"
      assert time.monotonic() < deadline, f"{hook}: the hook was never reached"
      time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    proc.stderr.close()

  for hook, latest in KILL_POINTS:
    out = procs[hook][0]
    ckpt_dir = out / "checkpoints"
    leftovers = [p.name for p in ckpt_dir.iterdir() if "orbax-checkpoint-tmp" in p.name]
    if hook.split(":")[0] in ("create", "item", "commit"):
      assert leftovers == ["2.orbax-checkpoint-tmp"], (hook, leftovers)  # killed mid-write
    assert not (out / "params.npz").exists()
    # The last committed checkpoint is intact and listed; the half-written one is not.
    with Checkpointer(ckpt_dir, read_only=True) as ckpt:
      committed = ckpt.latest_epoch()
      assert committed in latest, (hook, committed)
      if committed is not None:
        assert ckpt.read_meta()["epoch"] == committed

    assert train.main(["--resume", str(out), "--progress", "quiet"]) == 0, hook
    resumed = _params(out / "params.npz")
    assert sorted(resumed) == sorted(whole) and whole
    for key in whole:
      np.testing.assert_array_equal(resumed[key], whole[key], err_msg=f"{hook}: {key}")
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3], hook
    # The temporary directory of the interrupted write was cleaned on resume.
    assert not [p for p in ckpt_dir.iterdir() if "orbax-checkpoint-tmp" in p.name], hook


def test_resume_without_a_run_folder_is_one_clear_error(tmp_path, capsys):
  # Killed before the run wrote anything (config.json is its first file): there
  # is no run to resume, and the CLI says so in one line, exit status 2.
  (tmp_path / "empty").mkdir()
  assert train.main(["--resume", str(tmp_path / "empty")]) == 2
  err = capsys.readouterr().err
  assert "no run there (no config.json)" in err and err.count("\n") == 1


# --- NaN policies ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
  return load_dataset("digits")


def _as_float(data: Dataset, train_images=None) -> Dataset:
  """``data`` with float32 images (pixels scaled), or ``train_images`` for training."""
  test = Split(to_float(data.test.images, data.max_value), data.test.labels)
  if train_images is None:
    train_images = to_float(data.train.images, data.max_value)
  return dataclasses.replace(data, train=Split(train_images, data.train.labels), test=test)


def _with_nan_image(data: Dataset, index: int) -> Dataset:
  images = to_float(data.train.images, data.max_value)
  images[index] = np.nan
  return _as_float(data, images)


def _nan_in_epoch_2(data: Dataset, seed: int, batch_size: int) -> tuple[int, int]:
  """An example dropped from epoch 1 (drop_last) but used in epoch 2, and its batch there.

  The data order is ``epoch_permutation(n, seed, epoch)``, so where the example falls
  is known in advance: the NaN appears exactly at that step, after a good epoch 1.
  """
  n = len(data.train)
  used = (n // batch_size) * batch_size
  first, second = epoch_permutation(n, seed, 0), epoch_permutation(n, seed, 1)
  for index in first[used:]:
    position = int(np.flatnonzero(second == index)[0])
    if position < used:
      return int(index), position // batch_size
  raise AssertionError("no such example")


@pytest.mark.parametrize("scan_epoch", [False, True], ids=["per_step", "scan"])
def test_nan_policy_stop_names_the_step_and_keeps_the_last_good_checkpoint(
  digits, tmp_path, scan_epoch
):
  config = loop.Config(
    model="softmax_regression",
    epochs=3,
    progress="quiet",
    out_dir=str(tmp_path / "run"),
    scan_epoch=scan_epoch,
  )
  index, batch = _nan_in_epoch_2(digits, config.seed, config.batch_size)
  steps = len(digits.train) // config.batch_size
  with pytest.raises(loop.NonFiniteError) as info:
    loop.fit(config, log=lambda line: None, data=_with_nan_image(digits, index))
  e = info.value
  assert (e.epoch, e.batch, e.step, e.last_checkpoint) == (2, batch + 1, steps + batch + 1, 1)
  assert f"epoch 2, step {steps + batch + 1} (batch {batch + 1} of {steps}" in str(e)
  assert "the last good checkpoint is epoch 1" in str(e)
  # Epoch 2 was not checkpointed, nor reported; epoch 1's checkpoint is intact.
  with Checkpointer(tmp_path / "run" / "checkpoints", read_only=True) as ckpt:
    assert ckpt.all_epochs() == [1]
    state, _ = ckpt.restore(build_run(config, digits).initial_state(parallel.data_mesh()))
  assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(state.params))
  lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
  assert [json.loads(line)["epoch"] for line in lines] == [1]
  assert not (tmp_path / "run" / "params.npz").exists()


def test_nan_policy_skip_drops_exactly_the_bad_updates(digits):
  config = loop.Config(model="softmax_regression", epochs=2, nan_policy="skip")
  index, _ = _nan_in_epoch_2(digits, config.seed, config.batch_size)
  state, results = loop.fit(config, log=lambda line: None, data=_with_nan_image(digits, index))
  assert [r.skipped for r in results] == [0, 1]
  assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(state.params))
  assert all(np.isfinite([r.train_loss, r.test_loss, r.running_loss]).all() for r in results)
  # 44 batches, one skipped: the step counter and the schedule count applied updates.
  assert int(state.step) == 43
  assert "skipped 1" in loop.format_epoch(results[1], 2)
  # The same skip, in the whole-epoch program.
  state2, results2 = loop.fit(
    dataclasses.replace(config, scan_epoch=True),
    log=lambda line: None,
    data=_with_nan_image(digits, index),
  )
  assert [r.skipped for r in results2] == [0, 1] and int(state2.step) == 43


def test_nan_policy_skip_stops_when_every_update_is_skipped(digits):
  # Every image NaN: nothing can be learnt, so skipping forever would hide it.
  data = _as_float(digits, np.full(digits.train.images.shape, np.nan, np.float32))
  config = loop.Config(model="softmax_regression", epochs=2, nan_policy="skip")
  with pytest.raises(
    loop.NonFiniteError, match="every one of the 22 updates of epoch 1 was skipped"
  ):
    loop.fit(config, log=lambda line: None, data=data)


def test_cli_huge_lr_exits_3_with_one_line(tmp_path):
  # lr 1e38 overflows the logits of softmax regression to inf in the first updates.
  proc = run_cli(*COMMON, "--lr", "1e38", "--out", str(tmp_path / "run"), timeout=180)
  err = one_line_error(proc, 3)
  assert "non-finite loss or gradient at epoch 1, step " in err
  assert "Lower the learning rate (lr=1e+38)" in err


# --- determinism ----------------------------------------------------------------------------


@pytest.mark.parametrize("scan_epoch", [False, True], ids=["per_step", "scan"])
def test_same_seed_gives_bit_identical_params_and_metrics(digits, scan_epoch):
  config = loop.Config(model="mlp", epochs=2, scan_epoch=scan_epoch, seed=3)
  runs = [
    loop.fit(c, log=lambda line: None, data=digits)
    for c in (config, config, dataclasses.replace(config, seed=4))
  ]
  (a, ra), (b, rb), (c, _) = runs
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    assert np.array_equal(x, y)
  fields = lambda r: [v for k, v in dataclasses.asdict(r).items() if k != "seconds"]  # noqa: E731
  assert [fields(r) for r in ra] == [fields(r) for r in rb]
  # A different seed: a different initialisation and data order.
  assert not np.array_equal(jax.tree.leaves(a.params)[0], jax.tree.leaves(c.params)[0])


def test_data_order_is_a_function_of_seed_and_epoch():
  np.testing.assert_array_equal(epoch_permutation(100, 0, 1), epoch_permutation(100, 0, 1))
  assert not np.array_equal(epoch_permutation(100, 0, 1), epoch_permutation(100, 0, 2))
  assert not np.array_equal(epoch_permutation(100, 0, 1), epoch_permutation(100, 1, 1))


def test_a_failure_while_closing_the_outputs_does_not_hide_the_error(digits, tmp_path, monkeypatch):
  # Epoch 1's curves cannot be drawn (a full disk) and epoch 2 meets a NaN: the run's
  # error is the NaN, which the closing of the outputs must not replace.
  from jaxtrain import reporting

  def full(*args, **kwargs):
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(reporting, "plot_curves", full)
  config = loop.Config(
    model="softmax_regression", epochs=3, progress="quiet", out_dir=str(tmp_path / "run")
  )
  index, _ = _nan_in_epoch_2(digits, config.seed, config.batch_size)
  with pytest.raises(loop.NonFiniteError, match="epoch 2"):
    loop.fit(config, log=lambda line: None, data=_with_nan_image(digits, index))
