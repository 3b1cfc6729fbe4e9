"""``python -m jaxtrain.train`` and ``loop.fit``: the main job, its flags and its errors."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxtrain import loop, train
from jaxtrain.data import load_dataset

EPOCH_LINE = "epoch 1/1  lr 5.00e-02  loss "


def test_main_job_one_epoch(capsys):
  # The README's main job with --epochs 1: the default recipe on the offline digits.
  assert train.main(["--epochs", "1"]) == 0
  out = capsys.readouterr().out
  assert "jaxtrain: cnn on digits, cross_entropy, sgd lr 0.05" in out
  assert EPOCH_LINE in out and "train acc" in out and "test acc" in out
  assert "final: test acc" in out


def test_default_recipe_learns_digits():
  # Three epochs of the default recipe already beat chance (10%) by far; the full
  # 20 epochs reach 95.8% (README, measured).
  _, results = loop.fit(dataclasses.replace(loop.Config(), epochs=3), log=lambda line: None)
  assert results[-1].test_acc > 0.5
  assert results[-1].train_loss < results[0].train_loss


def test_scan_epoch_equals_per_step_loop():
  config = dataclasses.replace(loop.Config(), epochs=2, model="mlp")
  _, per_step = loop.fit(config, log=lambda line: None)
  _, scanned = loop.fit(dataclasses.replace(config, scan_epoch=True), log=lambda line: None)
  for a, b in zip(per_step, scanned):
    np.testing.assert_allclose(
        [a.train_loss, a.running_loss, a.test_loss], [b.train_loss, b.running_loss, b.test_loss],
        rtol=1e-5)
    assert (a.train_acc, a.test_acc, a.lr) == (b.train_acc, b.test_acc, b.lr)


def test_running_loss_is_the_sum_of_batch_means():
  # 000_dc5555055295abc4.txt prints running_loss = sum of the batch losses; with
  # equal batches (drop_last) that is train_loss x number of batches.
  _, (r,) = loop.fit(dataclasses.replace(loop.Config(), epochs=1, model="mlp"),
                     log=lambda line: None)
  np.testing.assert_allclose(r.running_loss, r.train_loss * (1437 // 64), rtol=1e-5)


def test_schedule_per_batch_reproduces_the_notes_collapse():
  # 000_dc5555055295abc4.txt steps StepLR(5, 0.1) per batch: after 22 batches the
  # rate has been cut 4 times (floor(22 / 5)).
  config = dataclasses.replace(loop.Config(), epochs=2, model="mlp", schedule_per="batch")
  _, results = loop.fit(config, log=lambda line: None)
  np.testing.assert_allclose([r.lr for r in results], [0.05, 0.05 * 0.1**4], rtol=1e-6)


@pytest.mark.parametrize("name,shape", [("mnist", (28, 28, 1)), ("fashion_mnist", (28, 28, 1)),
                                        ("cifar10", (32, 32, 3))])
def test_tfds_datasets_through_the_cli(name, shape, capsys):
  # Offline: tfds.testing.mock_data stands in for the prepared dataset; the rest is
  # the code path users run (load_dataset -> fit -> report).
  with tfds.testing.mock_data(num_examples=8):
    assert load_dataset(name).image_shape == shape
    code = train.main(["--dataset", name, "--model", "mlp", "--epochs", "1", "--batch-size", "4"])
  assert code == 0
  assert f"mlp on {name}" in capsys.readouterr().out


BAD_FLAGS = [
    (["--lr", "abc"], "argument --lr: invalid float value: 'abc'"),
    (["--model", "resnet"], "argument --model: invalid choice: 'resnet'"),
    (["--epochs", "0"], "epochs must be a positive integer, got 0"),
    (["--batch-size", "5000"], "batch_size=5000 is larger than the 1437 training examples"),
    (["--dataset", "imagenet"], "imagenet"),
    (["--lr", "-0.1"], "lr must be non-negative, got -0.1"),
    (["--model", "cnn", "--dataset", "synthetic"], "model='cnn' needs square images"),
]


@pytest.mark.parametrize("argv,fragment", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flags_exit_2_with_one_line(argv, fragment, capsys):
  try:
    code = train.main(argv)
  except SystemExit as e:  # argparse's own errors
    code = e.code
  err = capsys.readouterr().err
  assert code == 2
  assert fragment in err
  assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_dataset_is_one_line_without_traceback(tmp_path):
  # A real process: nothing but one line on stderr, exit status 2, at once.
  proc = subprocess.run(
      [sys.executable, "-m", "jaxtrain.train", "--dataset", "mnist", "--data-dir", str(tmp_path)],
      capture_output=True, text=True, timeout=120,
  )
  assert proc.returncode == 2
  assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
  assert "mnist" in proc.stderr and "not prepared" in proc.stderr.lower()


def test_help_lists_every_option_with_its_default():
  text = train.parser().format_help()
  for field in dataclasses.fields(loop.Config):
    if field.name == "eval_batch_size":
      continue
    assert "--" + field.name.replace("_", "-") in text
  assert "(default: 0.05)" in text and "(default: cnn)" in text
