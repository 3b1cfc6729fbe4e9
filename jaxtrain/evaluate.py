"""Evaluates a saved checkpoint on its run's test split.

  python -m jaxtrain.evaluate --checkpoint runs/cnn [--epoch 7] [--data-dir D]

The checkpoint's meta holds the run's config (``meta["config"]``: the fields of
``jaxtrain.config.Config``); the run is rebuilt from it by ``run.build_run``, as
``loop.fit`` builds it, the state is restored and the test split evaluated by the
run's own pipeline (the same batches, so the same numbers ``fit`` reported).
Prints one line::

  checkpoint DIR epoch N: test loss X.XXXX, test acc 0.XXXX (M examples)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence

from jaxtrain import parallel
from jaxtrain.checkpoint import Checkpointer
from jaxtrain.config import Config
from jaxtrain.data import DatasetError, load_dataset
from jaxtrain.run import build_run
from jaxtrain.train import missing_application

_PROG = "python -m jaxtrain.evaluate"


class _UsageError(Exception):
  """Bad input: reported as one line on stderr, exit status 2."""


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
    prog=_PROG,
    description="Evaluate a jaxtrain checkpoint on its run's test split.",
    formatter_class=argparse.ArgumentDefaultsHelpFormatter,
  )
  # Required: no default to show (SUPPRESS keeps '(default: None)' out of --help).
  p.add_argument(
    "--checkpoint",
    required=True,
    metavar="DIR",
    default=argparse.SUPPRESS,
    help="a run's folder (--out of jaxtrain.train) or its checkpoints folder; required",
  )
  p.add_argument(
    "--epoch",
    type=int,
    default=None,
    metavar="N",
    help="the saved epoch to evaluate; None means the latest",
  )
  p.add_argument(
    "--data-dir",
    default=None,
    metavar="D",
    help="where the dataset lives; None means the run's config.data_dir",
  )
  return p


def evaluate_checkpoint(
  directory: str, epoch: int | None = None, data_dir: str | None = None
) -> tuple[int, float, float, int]:
  """``(epoch, test_loss, test_acc, num_examples)`` of a checkpoint.

  Raises:
    FileNotFoundError: no such directory, no checkpoint in it, or no such epoch.
    _UsageError: the checkpoint's meta has no usable config, or its dataset is not found.
  """
  # A run's folder (python -m jaxtrain.train --out DIR) keeps them in DIR/checkpoints.
  if os.path.isdir(os.path.join(directory, "checkpoints")):
    directory = os.path.join(directory, "checkpoints")
  mesh = parallel.data_mesh()
  ckpt = Checkpointer(directory, read_only=True)
  try:
    epochs = ckpt.all_epochs()
    epoch = epochs[-1] if (epoch is None and epochs) else epoch
    meta = ckpt.read_meta(epoch)  # FileNotFoundError for a missing epoch/checkpoint
    if not isinstance(meta.get("config"), dict):
      raise _UsageError(
        f"the checkpoint of epoch {epoch} in {ckpt.directory} has no config "
        "in its meta (meta['config'])"
      )
    try:
      config = Config.from_mapping(meta["config"], source="the checkpoint's config", saved=True)
      if data_dir is not None:
        config = dataclasses.replace(config, data_dir=data_dir)
      config.resolved().validate()
    except (TypeError, ValueError) as e:
      raise _UsageError(f"bad config in the checkpoint's meta: {e}") from e
    try:
      data = load_dataset(config.dataset, data_dir=config.data_dir)
    except (DatasetError, ValueError) as e:  # e.g. a --data-dir without the data
      raise _UsageError(str(e).splitlines()[0]) from e
    # The run rebuilt as loop.fit builds it: the restore needs the saved structure.
    try:
      run = build_run(config, data)
    except ValueError as e:
      raise _UsageError(f"bad config in the checkpoint's meta: {e}") from e
    state, _ = ckpt.restore(run.initial_state(mesh), epoch)
  finally:
    ckpt.close()
  loss, acc = run.pipeline(mesh).evaluate(state)  # fit's own evaluation
  return epoch, loss, acc, len(data.test)


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command line; returns the exit status (0, or 2 for bad input)."""
  args = _parser().parse_args(argv)
  try:
    epoch, loss, acc, n = evaluate_checkpoint(args.checkpoint, args.epoch, args.data_dir)
  except ModuleNotFoundError as e:
    print(f"{_PROG}: error: {missing_application(e)}", file=sys.stderr)
    return 2
  except (FileNotFoundError, _UsageError) as e:
    # One line, no traceback: the message names the directory or the epoch.
    print(f"{_PROG}: error: {e}", file=sys.stderr)
    return 2
  print(
    f"checkpoint {args.checkpoint} epoch {epoch}: test loss {loss:.4f}, "
    f"test acc {acc:.4f} ({n} examples)"
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
