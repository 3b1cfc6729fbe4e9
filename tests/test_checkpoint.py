"""Checkpoints: bit-identical round trips, keep-last-k, resumed training, the evaluate CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

import jaxtrain.losses as L
from jaxtrain import evaluate, loop, models, optim
from jaxtrain.checkpoint import Checkpointer, read_meta
from jaxtrain.train_step import create_train_state, make_train_step

OPTIMIZERS = {
  "sgd_momentum": lambda: optim.sgd(0.05, momentum=0.9),
  "adam_step_lr": lambda: optim.adam(optim.step_lr(1e-3, 5, 0.1, steps_per_epoch=3)),
}


def _batches(n, seed=0):
  rng = np.random.default_rng(seed)
  return [
    (rng.uniform(size=(8, 8, 8, 1)).astype(np.float32), rng.integers(0, 10, 8).astype(np.int32))
    for _ in range(n)
  ]


def _setup(name):
  model = models.CNN(in_channels=1, image_size=8, rngs=nnx.Rngs(0))
  optimizer = OPTIMIZERS[name]()
  step = make_train_step(model, L.cross_entropy, optimizer)
  return model, optimizer, step


def _train(step, state, batches):
  for batch in batches:
    state, _ = step(state, batch)
  return state


def _host(state):
  """A host copy: the train step donates its input state."""
  return jax.tree.map(np.asarray, state)


def _assert_identical(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert np.asarray(x).dtype == np.asarray(y).dtype
    assert np.array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_round_trip_is_bit_identical(tmp_path, name):
  model, optimizer, step = _setup(name)
  state = _train(step, create_train_state(model, optimizer), _batches(4))
  meta = {
    "config": {"lr": 0.05, "betas": [0.9, 0.999]},
    "epoch": 1,
    "seed": 0,
    "metrics": {"test_acc": 0.5},
  }
  with Checkpointer(tmp_path / "run") as ckpt:
    ckpt.save(1, state, meta)
    # `like` may be a fresh state of the same structure; its values do not matter.
    restored, restored_meta = ckpt.restore(create_train_state(model, optimizer))
  assert type(restored) is type(state)
  assert isinstance(restored.params, nnx.State)
  _assert_identical(restored, state)
  assert restored_meta == meta
  assert read_meta(tmp_path / "run") == meta
  assert int(restored.step) == 4


def test_asynchronous_save_keeps_the_state_of_the_save_while_training_goes_on(tmp_path):
  # The next steps donate (delete) the saved state's buffers while orbax may still be
  # writing: the checkpoint must hold the state as it was at save time, bit for bit.
  model, optimizer, step = _setup("adam_step_lr")
  state = _train(step, create_train_state(model, optimizer), _batches(2))
  expected = _host(state)
  with Checkpointer(tmp_path / "run", asynchronous=True) as ckpt:
    ckpt.save(1, state, {"epoch": 1})
    state = _train(step, state, _batches(3, seed=1))  # donates the saved buffers
    ckpt.save(2, state, {"epoch": 2})
    ckpt.wait()
    assert ckpt.all_epochs() == [1, 2]
    restored, meta = ckpt.restore(create_train_state(model, optimizer), epoch=1)
  _assert_identical(restored, expected)
  assert meta == {"epoch": 1}


def test_save_is_atomic_and_leaves_no_temporary_directory(tmp_path):
  model, optimizer, _ = _setup("sgd_momentum")
  ckpt = Checkpointer(tmp_path, keep=2)
  ckpt.save(1, create_train_state(model, optimizer), {"epoch": 1})
  # Saved: a committed step directory, no temporary one left behind.
  assert sorted(os.listdir(tmp_path)) == ["1"]
  assert "commit_success.txt" in os.listdir(tmp_path / "1")
  ckpt.close()
  # A crash mid-save leaves only a temporary directory: it is not a checkpoint,
  # and the next writer cleans it up. (orbax removes it in a background thread
  # started with the manager and waits for that thread before its first save, so
  # the listing is checked after a save: right after construction it may still be
  # there, which made this test fail about 1 run in 6.)
  (tmp_path / "2.orbax-checkpoint-tmp-123").mkdir()
  ckpt = Checkpointer(tmp_path, keep=2)
  assert ckpt.all_epochs() == [1]
  ckpt.save(3, create_train_state(model, optimizer), {"epoch": 3})
  assert sorted(os.listdir(tmp_path)) == ["1", "3"]
  assert ckpt.all_epochs() == [1, 3]
  ckpt.close()


def test_keeps_the_last_k_epochs(tmp_path):
  model, optimizer, step = _setup("sgd_momentum")
  state = create_train_state(model, optimizer)
  ckpt = Checkpointer(tmp_path, keep=2)
  assert ckpt.latest_epoch() is None and ckpt.all_epochs() == []
  saved = {}
  for epoch, batch in enumerate(_batches(4), start=1):
    state = _train(step, state, [batch])
    ckpt.save(epoch, state, {"epoch": epoch})
    saved[epoch] = _host(state)
  assert ckpt.all_epochs() == [3, 4]
  assert ckpt.latest_epoch() == 4
  older, meta = ckpt.restore(create_train_state(model, optimizer), epoch=3)
  _assert_identical(older, saved[3])
  assert meta == {"epoch": 3}
  with pytest.raises(FileNotFoundError, match="epoch 1 .*saved epochs: 3, 4"):
    ckpt.restore(create_train_state(model, optimizer), epoch=1)
  with pytest.raises(ValueError, match="epoch 4 is already saved"):
    ckpt.save(4, state, {})
  ckpt.close()
  # A new Checkpointer on the same directory sees the same epochs.
  with Checkpointer(tmp_path, keep=2) as again:
    assert again.all_epochs() == [3, 4]
  assert read_meta(tmp_path, epoch=3) == {"epoch": 3}
  with pytest.raises(ValueError):
    Checkpointer(tmp_path, keep=0)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_resumed_training_equals_uninterrupted(tmp_path, name):
  model, optimizer, step = _setup(name)
  first, rest = _batches(3, seed=1), _batches(4, seed=2)
  state = _train(step, create_train_state(model, optimizer), first)
  with Checkpointer(tmp_path) as ckpt:
    ckpt.save(1, state, {})
    # `like` is a state whose buffers the donating step has consumed: only its
    # structure, shapes and dtypes are read.
    like = create_train_state(model, optimizer)
    _train(step, like, first[:1])
    resumed, _ = ckpt.restore(like)
  uninterrupted = _host(_train(step, state, rest))
  resumed = _host(_train(step, resumed, rest))
  _assert_identical(resumed, uninterrupted)


def test_missing_checkpoint_names_the_directory(tmp_path):
  model, optimizer, _ = _setup("sgd_momentum")
  empty = tmp_path / "empty"
  with Checkpointer(empty) as ckpt:
    with pytest.raises(FileNotFoundError, match=f"no checkpoint in {empty}"):
      ckpt.restore(create_train_state(model, optimizer))
  with pytest.raises(FileNotFoundError, match=str(empty)):
    read_meta(empty)
  with pytest.raises(FileNotFoundError, match="nowhere"):
    read_meta(tmp_path / "nowhere")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
  """A 1-epoch MLP run on digits, checkpointed as the training CLI would."""
  config = loop.Config(model="mlp", epochs=1)
  state, results = loop.fit(config, log=lambda s: None)
  directory = tmp_path_factory.mktemp("digits_run")
  with Checkpointer(directory) as ckpt:
    ckpt.save(1, state, {"config": dataclasses.asdict(config), "epoch": 1})
  return directory, results


def test_evaluate_reproduces_the_runs_test_accuracy(digits_run, capsys):
  directory, results = digits_run
  assert evaluate.main(["--checkpoint", str(directory)]) == 0
  out = capsys.readouterr().out.strip()
  assert out.startswith(f"checkpoint {directory} epoch 1: test loss ")
  assert f"test loss {results[-1].test_loss:.4f}," in out
  assert f"test acc {results[-1].test_acc:.4f} (" in out
  assert out.endswith(" examples)") and len(out.splitlines()) == 1


@pytest.mark.parametrize(
  "args",
  [
    ["--checkpoint", "{tmp}/nowhere"],
    ["--checkpoint", "{tmp}"],
    ["--checkpoint", "{run}", "--epoch", "7"],
  ],
)
def test_evaluate_bad_input_exits_2_with_one_line(tmp_path, digits_run, capsys, args):
  args = [a.format(tmp=tmp_path, run=digits_run[0]) for a in args]
  assert evaluate.main(args) == 2
  captured = capsys.readouterr()
  assert captured.out == ""
  lines = captured.err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("python -m jaxtrain.evaluate: error: ")
  assert "Traceback" not in captured.err


def test_evaluate_cli_stderr_is_one_line(digits_run):
  # A real process: orbax's absl warnings would reach stderr here, unlike under pytest.
  proc = subprocess.run(
    [sys.executable, "-m", "jaxtrain.evaluate", "--checkpoint", str(digits_run[0]), "--epoch", "9"],
    capture_output=True,
    text=True,
    timeout=60,
  )
  assert proc.returncode == 2 and proc.stdout == ""
  assert proc.stderr == (
    f"python -m jaxtrain.evaluate: error: no checkpoint for epoch 9 in "
    f"{digits_run[0]}; saved epochs: 1\n"
  )


def test_evaluate_help_shows_defaults(capsys):
  with pytest.raises(SystemExit) as e:
    evaluate.main(["--help"])
  assert e.value.code == 0
  out = capsys.readouterr().out
  for option in ("--checkpoint", "--epoch", "--data-dir"):
    assert option in out
  assert "(default: None)" in out


def test_saved_config_restores_tuples_and_drops_what_does_not_apply():
  config = loop.Config(
    optimizer="adam", schedule="multistep", milestones=(3, 6), betas=(0.8, 0.9)
  ).resolved()
  saved = json.loads(json.dumps(config.to_dict()))  # as a run's config.json holds it
  saved["removed_field"] = 1  # a key an older jaxtrain wrote
  saved["momentum"] = 0.9  # older versions saved every option, whatever the optimizer
  assert loop.Config.from_mapping(saved, source="config.json", saved=True) == config


def test_asynchronous_saves_never_list_the_folder_while_one_is_being_written(tmp_path):
  # orbax deletes the checkpoints beyond `keep` from its background thread as it commits a
  # save; listing the folder meanwhile (orbax's reload) raced with that deletion
  # ("No such file or directory: .../checkpoints/16"). Every listing waits for the save
  # in flight first.
  model, optimizer, step = _setup("sgd_momentum")
  state = create_train_state(model, optimizer)
  with Checkpointer(tmp_path / "run", keep=1, asynchronous=True) as ckpt:
    listings = []
    reload = ckpt._manager.reload

    def spied_reload():
      listings.append(ckpt._pending)
      return reload()

    ckpt._manager.reload = spied_reload
    for epoch in range(1, 6):
      state = _train(step, state, _batches(1, seed=epoch))
      ckpt.save(epoch, state, {"epoch": epoch})
    assert ckpt.all_epochs() == [5]
  assert listings and all(pending is None for pending in listings), listings
