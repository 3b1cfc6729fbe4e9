"""``python -m jaxtrain.train`` and ``loop.fit``: the main job, its flags and its errors."""

import dataclasses
import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds
from command_line import one_line_error, run_cli

from jaxtrain import loop, train
from jaxtrain.data import load_dataset

EPOCH_LINE = "epoch 1/1  lr 5.00e-02  loss "


def test_main_job_one_epoch(capsys, tmp_path):
  # The README's main job with --epochs 1: the default recipe on the offline digits.
  assert train.main(["--epochs", "1", "--out", str(tmp_path / "run")]) == 0
  out = capsys.readouterr().out
  assert "jaxtrain: cnn on digits, cross_entropy, sgd lr 0.05" in out
  assert EPOCH_LINE in out and "train acc" in out and "test acc" in out
  assert "final: test acc" in out


def test_default_recipe_learns_digits():
  # Three epochs of the default recipe already beat chance (10%) by far; the full
  # 20 epochs reach 95.8% (the README's run).
  _, results = loop.fit(dataclasses.replace(loop.Config(), epochs=3), log=lambda line: None)
  assert results[-1].test_acc > 0.5
  assert results[-1].train_loss < results[0].train_loss


def test_scan_epoch_equals_per_step_loop():
  config = dataclasses.replace(loop.Config(), epochs=2, model="mlp")
  _, per_step = loop.fit(config, log=lambda line: None)
  _, scanned = loop.fit(dataclasses.replace(config, scan_epoch=True), log=lambda line: None)
  for a, b in zip(per_step, scanned):
    np.testing.assert_allclose(
      [a.train_loss, a.running_loss, a.test_loss],
      [b.train_loss, b.running_loss, b.test_loss],
      rtol=1e-5,
    )
    assert (a.train_acc, a.test_acc, a.lr) == (b.train_acc, b.test_acc, b.lr)


def test_running_loss_is_the_sum_of_batch_means():
  # 000_dc5555055295abc4.txt prints running_loss = sum of the batch losses; with
  # equal batches (drop_last) that is train_loss x number of batches.
  _, (r,) = loop.fit(
    dataclasses.replace(loop.Config(), epochs=1, model="mlp"), log=lambda line: None
  )
  np.testing.assert_allclose(r.running_loss, r.train_loss * (1437 // 64), rtol=1e-5)


def test_schedule_per_batch_reproduces_the_notes_collapse():
  # 000_dc5555055295abc4.txt steps StepLR(5, 0.1) per batch: after 22 batches the
  # rate has been cut 4 times (floor(22 / 5)).
  config = dataclasses.replace(loop.Config(), epochs=2, model="mlp", schedule_per="batch")
  _, results = loop.fit(config, log=lambda line: None)
  np.testing.assert_allclose([r.lr for r in results], [0.05, 0.05 * 0.1**4], rtol=1e-6)


@pytest.mark.parametrize(
  "name,shape", [("mnist", (28, 28, 1)), ("fashion_mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))]
)
def test_tfds_datasets_through_the_cli(name, shape, capsys, tmp_path):
  # Offline: tfds.testing.mock_data stands in for the prepared dataset; the rest is
  # the code path users run (load_dataset -> fit -> report).
  with tfds.testing.mock_data(num_examples=8):
    assert load_dataset(name).image_shape == shape
    code = train.main(
      [
        "--dataset",
        name,
        "--model",
        "mlp",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--out",
        str(tmp_path / name),
      ]
    )
  assert code == 0
  assert f"mlp on {name}" in capsys.readouterr().out


BAD_FLAGS = [
  (["--lr", "abc"], "argument --lr: invalid float value: 'abc'"),
  (["--model", "resnet"], "argument --model: invalid choice: 'resnet'"),
  (["--epochs", "0"], "epochs must be a positive integer, got 0"),
  (["--batch-size", "5000"], "batch_size=5000 is larger than the 1437 training examples"),
  (["--dataset", "imagenet"], "imagenet"),
  (["--lr", "-0.1"], "lr must be non-negative, got -0.1"),
  (["--progress", "loud"], "argument --progress: invalid choice: 'loud'"),
]


@pytest.mark.parametrize("argv,fragment", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flags_exit_2_with_one_line(argv, fragment, capsys, tmp_path):
  try:
    code = train.main(argv + ["--out", str(tmp_path / "run")])
  except SystemExit as e:  # argparse's own errors
    code = e.code
  err = capsys.readouterr().err
  assert code == 2
  assert fragment in err
  assert err.count("\n") == 1 and "Traceback" not in err


def test_cnn_on_28x28_mnist(capsys, tmp_path):
  # The CNN takes any square input the torch model would (MNIST's 28x28x1: its
  # first Linear has 64 * 3 * 3 = 576 inputs).
  with tfds.testing.mock_data(num_examples=8):
    code = train.main(
      [
        "--dataset",
        "mnist",
        "--model",
        "cnn",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--out",
        str(tmp_path / "run"),
      ]
    )
  assert code == 0
  assert "cnn on mnist" in capsys.readouterr().out


def test_missing_dataset_is_one_line_without_traceback(tmp_path):
  # A real process: nothing but one line on stderr, exit status 2, at once.
  proc = run_cli(
    "--dataset", "mnist", "--data-dir", str(tmp_path), "--out", str(tmp_path / "run"), timeout=120
  )
  err = one_line_error(proc, 2)
  assert "mnist" in err and "not prepared" in err.lower()


def test_help_lists_every_option_with_its_default():
  # Every Config field is a flag (derived from its declaration), with its default.
  text = " ".join(train.parser().format_help().split())
  for field in dataclasses.fields(loop.Config):
    flag = "--out" if field.name == "out_dir" else "--" + field.name.replace("_", "-")
    assert flag in text
  assert "(default: cnn)" in text and "(default: 500)" in text  # --eval-batch-size too
  # An optimizer's options show each optimizer's default: torch's, sgd's the recipe's.
  assert (
    "(default: per optimizer: sgd 0.05, adam 0.001, adamw 0.001, rmsprop 0.01, adagrad 0.01)"
  ) in text
  assert "adamw 0.01" in text  # --weight-decay: torch's AdamW default


BAD_CONFIG_FILES = [
  ('lr = "fast"\n', "lr must be a float, got 'fast'"),
  ("learning_rate = 0.1\n", "unknown key 'learning_rate'"),
  ("epochs = 2.5\n", "epochs must be a int, got 2.5"),
  ("lr = \n", "is not valid TOML"),
  ('model = "resnet"\n', "model='resnet' is not valid"),
]


@pytest.mark.parametrize("text,fragment", BAD_CONFIG_FILES, ids=[f for _, f in BAD_CONFIG_FILES])
def test_bad_config_file_exits_2_with_one_line(text, fragment, capsys, tmp_path):
  path = tmp_path / "run.toml"
  path.write_text(text)
  code = train.main(["--config", str(path), "--out", str(tmp_path / "run")])
  err = capsys.readouterr().err
  assert code == 2 and fragment in err
  assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_config_file(capsys, tmp_path):
  assert train.main(["--config", str(tmp_path / "nope.toml")]) == 2
  assert "does not exist" in capsys.readouterr().err


def test_config_file_then_flags(tmp_path):
  path = tmp_path / "run.toml"
  path.write_text('model = "mlp"\nlr = 0.2\nbetas = [0.8, 0.9]\nepochs = 7\n')
  config, resume = train.config_from_args(["--config", str(path), "--epochs", "3"])
  assert (config.model, config.lr, config.betas, config.epochs) == ("mlp", 0.2, (0.8, 0.9), 3)
  assert not resume


def test_resume_equals_the_uninterrupted_run(tmp_path, capsys):
  # A run stopped after epoch 2 and resumed from its epoch-2
  # checkpoint ends with the parameters of the run that was never stopped (CPU,
  # same seed): bit for bit.
  common = ["--model", "mlp", "--epochs", "4", "--progress", "quiet"]
  assert train.main(common + ["--out", str(tmp_path / "whole")]) == 0

  config, _ = train.config_from_args(common + ["--out", str(tmp_path / "cut")])

  def stop_after_epoch_2(line):
    if line.startswith("epoch 2/"):
      raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    loop.fit(config, log=stop_after_epoch_2)
  assert not (tmp_path / "cut" / "params.npz").exists()
  assert train.main(["--resume", str(tmp_path / "cut"), "--progress", "quiet"]) == 0

  whole, cut = np.load(tmp_path / "whole" / "params.npz"), np.load(tmp_path / "cut" / "params.npz")
  assert sorted(whole.files) == sorted(cut.files) and whole.files
  for key in whole.files:
    np.testing.assert_array_equal(whole[key], cut[key])
  history = [
    json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
  ]
  assert [h["epoch"] for h in history] == [1, 2, 3, 4]


def test_run_folder_and_tensorboard(tmp_path, capsys):
  # The TensorBoard event files are read back and hold the scalars.
  from jaxtrain.reporting import read_scalars

  out = tmp_path / "run"
  assert (
    train.main(["--model", "mlp", "--epochs", "2", "--progress", "quiet", "--out", str(out)]) == 0
  )
  names = {p.name for p in out.iterdir()}
  assert {
    "config.json",
    "metrics.jsonl",
    "metrics.csv",
    "curves.png",
    "tensorboard",
    "checkpoints",
    "params.npz",
  } <= names
  scalars = read_scalars(out / "tensorboard")
  assert [step for step, _ in scalars["accuracy/test"]] == [1, 2]
  rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
  np.testing.assert_allclose(
    [v for _, v in scalars["accuracy/test"]], [r["test_acc"] for r in rows], rtol=1e-6
  )
  assert json.loads((out / "config.json").read_text())["model"] == "mlp"
  # python -m jaxtrain.evaluate on the run's folder: the last epoch's test accuracy.
  from jaxtrain import evaluate

  assert evaluate.main(["--checkpoint", str(out)]) == 0
  assert f"test acc {rows[-1]['test_acc']:.4f}" in capsys.readouterr().out


# ---------------------------------------------------------- the run folder, as a user meets it

QUICK = ["--model", "softmax_regression", "--epochs", "2", "--progress", "lines"]


def _snapshot(folder):
  """Every file under ``folder``: its bytes and its modification time."""
  return {
    str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
    for p in sorted(folder.rglob("*"))
    if p.is_file()
  }


# StepLR(step_size=1, gamma=0.5) per epoch: every epoch has its own learning rate.
SCHEDULE = ["--step-size", "1", "--gamma", "0.5"]


@pytest.fixture(scope="module")
def two_epoch_run(tmp_path_factory):
  """A finished 2-epoch run of the CLI, trained once; each test takes a copy."""
  out = tmp_path_factory.mktemp("runs") / "run"
  proc = run_cli(*QUICK, *SCHEDULE, "--out", str(out))
  assert proc.returncode == 0, proc.stderr
  return out


def _copy(run, tmp_path):
  import shutil

  return pathlib.Path(shutil.copytree(run, tmp_path / "run"))


def test_a_run_folder_is_never_touched_by_a_new_run(two_epoch_run, tmp_path):
  out = _copy(two_epoch_run, tmp_path)
  before = _snapshot(out)
  again = run_cli(*QUICK, *SCHEDULE, "--out", str(out))
  err = one_line_error(again, 2)
  assert "already holds a run" in err and f"--resume {out}" in err and "--overwrite" in err
  assert "epoch 1/" not in again.stdout  # refused at once, nothing trained
  assert _snapshot(out) == before  # not a byte, not a timestamp
  # A folder of other files is not a run folder either.
  (tmp_path / "mine").mkdir()
  (tmp_path / "mine" / "notes.txt").write_text("keep me")
  err = one_line_error(run_cli(*QUICK, "--out", str(tmp_path / "mine")), 2)
  assert "is not empty and holds no run" in err
  assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
  # --overwrite replaces the run, as asked.
  replaced = run_cli(*QUICK, "--out", str(out), "--overwrite", "--seed", "1")
  assert replaced.returncode == 0, replaced.stderr
  assert json.loads((out / "config.json").read_text())["seed"] == 1
  assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_resume_with_more_epochs_extends_the_run_as_one_longer_run(two_epoch_run, tmp_path):
  # The resumed third epoch continues the schedule (torch: StepLR(1, 0.5)'s
  # get_last_lr() [0.05, 0.025, 0.0125]) and the parameters equal a 3-epoch run's bit
  # for bit.
  short, whole = _copy(two_epoch_run, tmp_path), tmp_path / "whole"
  assert run_cli(*QUICK, *SCHEDULE, "--out", str(whole), "--epochs", "3").returncode == 0
  extended = run_cli("--resume", str(short), "--epochs", "3", "--progress", "lines")
  assert extended.returncode == 0, extended.stderr
  assert "epoch 3/3" in extended.stdout and "epoch 1/" not in extended.stdout
  rows = [json.loads(line) for line in (short / "metrics.jsonl").read_text().splitlines()]
  np.testing.assert_allclose([r["lr"] for r in rows], [0.05, 0.025, 0.0125], rtol=1e-6)
  with np.load(short / "params.npz") as a, np.load(whole / "params.npz") as b:
    assert sorted(a.files) == sorted(b.files) == ["linear/bias", "linear/kernel"]
    for key in a.files:
      np.testing.assert_array_equal(a[key], b[key])
  assert json.loads((short / "config.json").read_text())["epochs"] == 3


def test_resume_refuses_flags_that_would_change_what_was_trained(two_epoch_run, tmp_path):
  out = _copy(two_epoch_run, tmp_path)
  before = _snapshot(out)
  err = one_line_error(run_cli("--resume", str(out), "--lr", "0.1", "--batch-size", "32"), 2)
  assert "--lr (the run's: 0.05), --batch-size (the run's: 64) cannot change now" in err
  err = one_line_error(run_cli("--resume", str(out), "--epochs", "1"), 2)
  assert "epochs=1: the run in" in err and "has trained 2 epochs already" in err
  err = one_line_error(run_cli("--resume", str(out), "--config", str(tmp_path / "x.toml")), 2)
  assert "leave out --config" in err
  assert _snapshot(out) == before
  # The run's own values, and the flags that change nothing trained, are accepted.
  same = run_cli("--resume", str(out), "--lr", "0.05", "--progress", "quiet", "--keep", "5")
  assert same.returncode == 0, same.stderr


def test_a_full_disk_during_a_checkpoint_is_one_line(tmp_path, capsys, monkeypatch):
  # orbax's asynchronous write fails as tensorstore reports a full disk; the error comes
  # out of the next save (or the end of the run) as one line naming the epoch's folder,
  # exit 4, and nothing of orbax's own logging.
  import orbax.checkpoint as ocp

  save, writing = ocp.CheckpointManager.save, []

  def saved(self, *args, **kwargs):  # the write starts in the background ...
    writing.append(True)
    return save(self, *args, **kwargs)

  wait = ocp.CheckpointManager.wait_until_finished

  def full(self):  # ... and fails as tensorstore reports a full disk
    wait(self)
    if writing:
      writing.clear()
      raise ValueError(
        'RESOURCE_EXHAUSTED: Failed writing: "d/0a1b": No space left on device '
        "[os_error_code='28']"
      )

  monkeypatch.setattr(ocp.CheckpointManager, "save", saved)
  monkeypatch.setattr(ocp.CheckpointManager, "wait_until_finished", full)
  out = tmp_path / "run"
  assert train.main(QUICK + ["--out", str(out)]) == 4
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "Traceback" not in err, err
  assert f"could not write {out / 'checkpoints' / '1'}: RESOURCE_EXHAUSTED" in err, err
  assert "No space left on device" in err and "no checkpoint was committed" in err, err


def test_a_really_full_disk_is_one_line(tmpfs):
  # A real 48 KB filesystem (where this machine allows mounting one): the first
  # checkpoint does not fit, and which write meets the full disk first (the checkpoint
  # in orbax's thread, or a metrics file) is a race. Either way: one line, exit 4.
  mount_point = tmpfs("size=48k")
  if mount_point is None:
    pytest.skip("mounting a tmpfs is not allowed here; the simulated test above runs")
  proc = run_cli(*QUICK, "--out", str(mount_point / "run"))
  assert proc.returncode == 4, proc.stderr
  assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
  assert f"could not write {mount_point / 'run'}" in proc.stderr
  assert "No space left on device" in proc.stderr


def test_an_unwritable_out_folder_is_one_line(tmpfs, tmp_path, capsys, monkeypatch):
  mount_point = tmpfs("size=1m,ro")
  if mount_point is not None:
    proc = run_cli(*QUICK, "--out", str(mount_point / "run"))
    code, err = proc.returncode, proc.stderr
  else:  # no mount here: the error the kernel gives, where the run folder is made
    mount_point = tmp_path / "fs"

    def read_only(path, *args, **kwargs):
      raise OSError(30, "Read-only file system", path)

    monkeypatch.setattr(os, "makedirs", read_only)
    code = train.main(QUICK + ["--out", str(mount_point / "run")])
    err = capsys.readouterr().err
  assert code == 4, err
  assert err.count("\n") == 1 and "Traceback" not in err, err
  assert f"could not write {mount_point / 'run'}: [Errno 30] Read-only file system" in err


# (id, argv or TOML text, message fragment): every one exits 2 with one line.
BAD_ARGS = [
  (
    "unknown nan policy",
    ["--nan-policy", "ignore"],
    "argument --nan-policy: invalid choice: 'ignore'",
  ),
  ("momentum not a number", ["--momentum", "fast"], "argument --momentum: invalid float value"),
  ("batch size 0", ["--batch-size", "0"], "batch_size must be a positive integer, got 0"),
  ("keep 0", ["--keep", "0"], "keep must be a positive integer, got 0"),
  ("zero epochs", ["--epochs", "0"], "epochs must be a positive integer, got 0"),
  ("unknown flag", ["--learning-rate", "0.1"], "unrecognized arguments: --learning-rate 0.1"),
  (
    "resume a folder that is not a run",
    ["--resume", "{tmp}/nowhere"],
    "--resume '{tmp}/nowhere': no run there (no config.json)",
  ),
  ("missing tfds dataset", ["--dataset", "mnist", "--data-dir", "{tmp}/data"], "mnist"),
  (
    "config: unknown key",
    "learning_rate = 0.1\n",
    "unknown key 'learning_rate'; known keys: batch-size",
  ),
  ("config: wrong type", 'epochs = "ten"\n', "epochs must be a int, got 'ten'"),
  (
    "config: bad nan_policy",
    'nan_policy = "ignore"\n',
    "nan_policy='ignore' is not valid; expected one of stop, skip",
  ),
  (
    "config: list of strings",
    'betas = ["a", "b"]\n',
    "betas must be a list of floats, got ['a', 'b']",
  ),
  ("config: bool for a float", "lr = true\n", "lr must be a float, got True"),
]


@pytest.mark.parametrize("args,fragment", [c[1:] for c in BAD_ARGS], ids=[c[0] for c in BAD_ARGS])
def test_bad_arguments_exit_2_with_one_line(args, fragment, tmp_path, capsys):
  tmp = str(tmp_path)
  if isinstance(args, str):  # a config file
    (tmp_path / "run.toml").write_text(args)
    args = ["--config", str(tmp_path / "run.toml")]
  argv = [a.format(tmp=tmp) for a in args] + ["--out", str(tmp_path / "run")]
  try:
    code = train.main(argv)
  except SystemExit as e:  # argparse's own errors
    code = e.code
  err = capsys.readouterr().err
  assert code == 2
  assert fragment.format(tmp=tmp) in err
  assert err.count("\n") == 1 and "Traceback" not in err
