"""Data parallelism: 8 fake CPU devices equal one device; two processes agree.

The device count of a process is fixed when jax starts, so the 8-device checks run
in one subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``
(tests/scripts/eight_devices.py prints its measurements as JSON; the tests assert on them),
and the multi-process checks run two ``python -m jaxtrain.train`` processes joined
by a loopback coordinator (JAX's gloo collectives on CPU).

Tolerance: data-parallel steps sum the per-device gradients in another order than
one device sums the whole batch, so parameters agree to float32 rounding, not bit
for bit: ``rtol=1e-5, atol=1e-6`` (measured: at most 1.5e-8 after the 5 steps
below, 6e-8 after 2 epochs of 22 steps through the CLI, 9e-8 for two processes).
"""

import json
import os
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxtrain import parallel, train
from jaxtrain.data import batches, load_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(REPO, "tests", "scripts")
RTOL, ATOL = 1e-5, 1e-6
DEVICES = 8

# Runs in a process with 8 CPU devices; prints one line 'RESULT {json}'.


def _result(stdout: str) -> dict:
  lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
  assert lines, f"no RESULT line in:\n{stdout}"
  return json.loads(lines[-1][len("RESULT ") :])


@pytest.fixture(scope="module")
def eight(tmp_path_factory):
  """The measurements of the 8-device driver, and its folder of runs."""
  tmp = tmp_path_factory.mktemp("eight")
  env = {
    **os.environ,
    "PYTHONPATH": REPO,
    "XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES}",
  }
  proc = subprocess.run(
    [sys.executable, os.path.join(SCRIPTS, "eight_devices.py"), str(tmp)],
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  return _result(proc.stdout), tmp


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_eight_devices_equal_one_device(eight, name):
  # 5 SGD-with-momentum steps, 8-way data-parallel vs one device,
  # from the same initial state and batches.
  out, _ = eight
  assert out["device_count"] == DEVICES
  assert out[f"{name}_eight_param_devices"] == DEVICES and out[f"{name}_eight_replicated"]
  assert out[f"{name}_one_param_devices"] == 1
  assert out[f"{name}_eight_count"] == out[f"{name}_one_count"] == 16  # the global batch
  assert out[f"{name}_step_close"], out[f"{name}_step_maxdiff"]
  assert out[f"{name}_step_maxdiff"] < 1e-5
  assert out[f"{name}_loss_maxdiff"] < 1e-5


def test_batch_is_split_over_the_devices(eight):
  out, _ = eight
  assert out["batch_devices"] == DEVICES and out["batch_shard_rows"] == [16 // DEVICES]
  assert out["step_all_reduce"]  # the gradients are summed across devices by XLA


def test_scan_epoch_sharded_equals_per_step_on_one_device(eight):
  # The MLP's 5 steps as one lax.scan over 8 devices: the per-step parameters of
  # one device (the CLI's --scan-epoch on 8 devices is checked below too).
  out, _ = eight
  assert out["scan_close"], out["scan_maxdiff"]
  assert out["scan_loss_maxdiff"] < 1e-5


def test_eval_pads_to_a_multiple_of_the_devices(eight):
  # 75 examples in batches of 30 -> 32 (a multiple of 8): 32, 32, 11 + 21 padding.
  out, _ = eight
  np.testing.assert_allclose(out["eval_eight"], out["eval_one"], rtol=1e-6)


def test_dataset_on_the_devices_is_split_not_replicated(eight):
  out, _ = eight
  assert out["split_dtype"] == "uint8" and out["split_shape"] == [88, 8, 8, 1]
  assert out["split_devices"] == DEVICES and out["split_shard_rows"] == [11]
  assert out["split_all_gathered"] == []


def _params(path):
  with np.load(path) as f:
    return {k: f[k] for k in f.files}


@pytest.mark.parametrize("mode", ["step", "scan"])
def test_cli_on_eight_devices_equals_fit_on_one(eight, mode):
  out, tmp = eight
  assert out[f"cli_{mode}_code"] == 0
  got, want = _params(tmp / mode / "params.npz"), _params(tmp / "one" / "params.npz")
  assert sorted(got) == sorted(want) and want
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=RTOL, atol=ATOL, err_msg=key)
  # The run's checkpoint, evaluated (python -m jaxtrain.evaluate) on 8 devices.
  if mode == "step":
    last = json.loads((tmp / "step" / "metrics.jsonl").read_text().splitlines()[-1])
    assert out["evaluate_code"] == 0
    assert f"test acc {last['test_acc']:.4f}" in out["evaluate_line"]


def test_indivisible_batch_size_is_one_line_exit_2(eight):
  out, _ = eight
  assert out["bad_batch_code"] == 2
  err = out["bad_batch_err"]
  assert err.count("\n") == 1 and "Traceback" not in err
  assert "batch_size=60 does not divide by the 8 devices" in err
  assert "e.g. 56 or 64" in err


# --- Two processes -------------------------------------------------------------

# Runs jaxtrain.train's main; writes the final parameters this process holds to
# $JAXTRAIN_TEST_PARAMS and prints 'RESULT {json}' (process and device counts).
# With $JAXTRAIN_TEST_STOP=E it is interrupted (KeyboardInterrupt, as Ctrl-C)
# once epoch E is checkpointed and reported: a cluster job cut short.


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start(folder, args, *, stop=0):
  """Starts the driver as processes 0 and 1, each in its own folder (folder/p0, p1).

  The two folders stand for two hosts' disks: a relative --out lands in each.
  """
  port = _free_port()
  env = {**os.environ, "PYTHONPATH": REPO, "JAXTRAIN_TEST_STOP": str(stop)}
  env.pop("XLA_FLAGS", None)  # one CPU device per process
  procs = []
  for pid in (0, 1):
    cwd = folder / f"p{pid}"
    cwd.mkdir(parents=True, exist_ok=True)
    procs.append(
      subprocess.Popen(
        [
          sys.executable,
          os.path.join(SCRIPTS, "process_main.py"),
          *args,
          "--coordinator-address",
          f"127.0.0.1:{port}",
          "--num-processes",
          "2",
          "--process-id",
          str(pid),
        ],
        cwd=cwd,
        env={**env, "JAXTRAIN_TEST_PARAMS": str(folder / f"params{pid}.npz")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
      )
    )
  return procs


def _finish(procs, timeout=120):
  """``[(exit status, RESULT dict, stdout, stderr)]`` of both; both killed after ``timeout`` s."""
  outputs = []
  try:
    for proc in procs:
      outputs.append(proc.communicate(timeout=timeout))
  except subprocess.TimeoutExpired:
    for proc in procs:
      proc.kill()
      proc.communicate()
    pytest.fail(f"the two processes did not finish in {timeout} s")
  return [(proc.returncode, _result(out), out, err) for proc, (out, err) in zip(procs, outputs)]


def _files(folder):
  return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def _agree(folder, reference):
  """Both processes hold the same parameters, those of ``reference`` to float32 rounding."""
  p0, p1 = _params(folder / "params0.npz"), _params(folder / "params1.npz")
  assert sorted(p0) == sorted(p1) == sorted(reference) and p0
  for key in p0:
    np.testing.assert_array_equal(p0[key], p1[key], err_msg=key)  # one replicated result
    np.testing.assert_allclose(p0[key], reference[key], rtol=RTOL, atol=ATOL, err_msg=key)
  return p0


def test_two_processes_train_resume_and_agree(tmp_path, eight):
  # Two processes on this machine (loopback coordinator, one CPU
  # device each, 2 devices in all) train the MLP on the digits; only process 0
  # writes the run folder; the run, cut after epoch 1 and resumed by both
  # processes, ends with the same parameters on both, equal to one device's
  # (the same flags, run by the 8-device driver on a 1-device mesh, never
  # interrupted). Epoch 1 runs per step, epoch 2 as one scan (see below).
  single = _params(eight[1] / "one" / "params.npz")
  args = ["--model", "mlp", "--epochs", "2", "--progress", "quiet"]
  first = _finish(_start(tmp_path, args + ["--progress", "lines", "--out", "run"], stop=1))
  for pid, (code, info, _, err) in enumerate(first):
    assert code == 130, err[-2000:]  # interrupted after epoch 1, as asked
    assert (info["process_index"], info["process_count"]) == (pid, 2)
    assert (info["device_count"], info["local_device_count"]) == (2, 1)
  run0, run1 = tmp_path / "p0" / "run", tmp_path / "p1" / "run"
  assert not run1.exists()  # process 1 wrote nothing
  assert (run0 / "checkpoints" / "1").is_dir() and (run0 / "config.json").exists()
  assert len((run0 / "metrics.jsonl").read_text().splitlines()) == 1
  # Process 0 printed the epoch line; process 1 printed nothing of the run.
  assert "epoch 1/2" in first[0][2] and "jaxtrain: mlp on digits" in first[0][2]
  assert "epoch" not in first[1][2] and "jaxtrain:" not in first[1][2]

  # The resumed run takes its settings from config.json: switched to
  # --scan-epoch there, its epoch 2 runs as one lax.scan over the 2 processes
  # (how an epoch runs, not what it computes), so both modes run multi-process.
  config = json.loads((run0 / "config.json").read_text())
  assert config["scan_epoch"] is False
  (run0 / "config.json").write_text(json.dumps({**config, "scan_epoch": True}))
  # Resume: every process reads the checkpoint, so both must see the run folder
  # (a shared filesystem); here process 1 gets a copy. It must stay untouched.
  shutil.copytree(run0, run1)
  before = _files(run1)
  for code, _, _, err in _finish(_start(tmp_path, ["--resume", "run", "--progress", "quiet"])):
    assert code == 0, err[-2000:]
  assert _files(run1) == before  # process 1 read, wrote nothing
  assert (run0 / "checkpoints" / "2").is_dir()
  assert len((run0 / "metrics.jsonl").read_text().splitlines()) == 2
  p0 = _agree(tmp_path, single)
  written = _params(run0 / "params.npz")  # process 0's params.npz: what it held
  for key in p0:
    np.testing.assert_array_equal(p0[key], written[key], err_msg=key)


# --- In-process checks (one device) ----------------------------------------------


def test_batches_rows_select_a_share_of_each_batch():
  split = load_dataset("digits").train
  whole = list(batches(split, batch_size=64, seed=3, epoch=1))
  for rows in (slice(32, 64), np.array([1, 5, 9])):
    part = list(batches(split, batch_size=64, seed=3, epoch=1, rows=rows))
    assert len(part) == len(whole)
    for (x, y), (xp, yp) in zip(whole, part):
      np.testing.assert_array_equal(x[rows], xp)
      np.testing.assert_array_equal(y[rows], yp)


def test_one_device_mesh_and_rows():
  mesh = parallel.data_mesh()
  assert mesh.axis_names == ("data",) and mesh.size == len(jax.devices())
  assert parallel.process_rows(64, mesh) == slice(0, 64)
  assert parallel.padded_size(30, parallel.data_mesh(jax.devices()[:1])) == 30
  with pytest.raises(ValueError, match="devices must hold at least one device"):
    parallel.data_mesh([])


BAD_INITIALIZE = [
  (
    dict(coordinator_address="localhost", num_processes=2, process_id=0),
    "coordinator_address='localhost' is not valid; expected 'host:port'",
  ),
  (
    dict(coordinator_address="127.0.0.1:1234", num_processes=0, process_id=0),
    "num_processes must be a positive integer, got 0",
  ),
  (
    dict(coordinator_address="127.0.0.1:1234", num_processes=2, process_id=2),
    "process_id=2 is not below num_processes=2",
  ),
]


@pytest.mark.parametrize("kwargs,message", BAD_INITIALIZE, ids=[m for _, m in BAD_INITIALIZE])
def test_initialize_checks_its_arguments(kwargs, message):
  # Rejected before jax.distributed.initialize is called (this process stays single).
  with pytest.raises(ValueError, match=message.replace("(", r"\(")):
    parallel.initialize(**kwargs)


def test_initialize_reads_the_environment(monkeypatch):
  for name in (parallel.ENV_COORDINATOR, parallel.ENV_NUM_PROCESSES, parallel.ENV_PROCESS_ID):
    monkeypatch.delenv(name, raising=False)
  assert parallel.initialize() is False  # nothing asked: single process, nothing done
  monkeypatch.setenv(parallel.ENV_NUM_PROCESSES, "two")
  with pytest.raises(ValueError, match="environment variable JAX_NUM_PROCESSES='two' is not"):
    parallel.initialize()
  monkeypatch.setenv(parallel.ENV_NUM_PROCESSES, "2")
  monkeypatch.setenv(parallel.ENV_PROCESS_ID, "5")
  with pytest.raises(ValueError, match="process_id=5 is not below num_processes=2"):
    parallel.initialize("127.0.0.1:1234")


def test_cli_bad_distributed_flags_exit_2(capsys, tmp_path):
  code = train.main(
    [
      "--coordinator-address",
      "nohost",
      "--num-processes",
      "2",
      "--process-id",
      "0",
      "--out",
      str(tmp_path / "run"),
    ]
  )
  err = capsys.readouterr().err
  assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
  assert "coordinator_address='nohost' is not valid" in err
