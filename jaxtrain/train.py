"""``python -m jaxtrain.train`` (or ``jaxtrain-train``): the notes' recipe, from the command line.

With no flags it runs the recipe of 000_dc5555055295abc4.txt (the CNN, cross
entropy, SGD with momentum, StepLR(5, 0.1) per epoch, batch 64, 20 epochs) on
scikit-learn's handwritten digits, which work offline, shows a progress bar and
one line per epoch, and writes the run to ``runs/<model>-<dataset>-<time>``.
Settings come from the defaults, then a TOML file (``--config``), then flags.
Every flag's default is shown by ``--help``. Bad input ends with a one-line message
and exit status 2, not a traceback; a NaN or infinite loss or gradient under
``--nan-policy stop`` ends with a one-line message and exit status 3.

It trains data-parallel on every device (``jaxtrain.parallel``). On several hosts,
the same command runs on each with ``--coordinator-address``, ``--num-processes``
and ``--process-id`` (or the environment variables ``JAX_COORDINATOR_ADDRESS``,
``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``); process 0 prints and writes the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import os
import sys
import tomllib

from jaxtrain import amp, loop, parallel, pipeline


class _Parser(argparse.ArgumentParser):
  def error(self, message):  # one line, not usage + message
    self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parser() -> argparse.ArgumentParser:
  d = loop.Config()
  p = _Parser(
      prog="python -m jaxtrain.train",
      description="Train a model of the notes with torch's semantics, compiled by XLA.",
      formatter_class=argparse.ArgumentDefaultsHelpFormatter,
  )
  g = p.add_argument_group("model and data")
  g.add_argument("--model", choices=loop.MODELS, default=d.model, help="the network")
  g.add_argument("--dataset", default=d.dataset,
                 help="digits (offline, scikit-learn), mnist, fashion_mnist, cifar10 "
                      "(tensorflow-datasets, prepared in --data-dir), synthetic")
  g.add_argument("--data-dir", default=d.data_dir, help="where tfds datasets are prepared")
  g.add_argument("--download", action="store_true",
                 help="download and prepare a missing tfds dataset in --data-dir first "
                      "(needs pip install 'jaxtrain[prepare]')")
  g = p.add_argument_group("loss")
  g.add_argument("--loss", choices=tuple(loop.LOSSES), default=d.loss,
                 help="a jaxtrain.losses function of (logits, class indices)")
  g.add_argument("--reduction", choices=("mean", "sum"), default=d.reduction,
                 help="'sum' scales the gradient by the batch size")
  g = p.add_argument_group("optimizer (torch.optim's arguments)")
  g.add_argument("--optimizer", choices=loop.OPTIMIZERS, default=d.optimizer,
                 help="a jaxtrain.optim optimizer")
  g.add_argument("--lr", type=float, default=d.lr,
                 help="learning rate (the notes' recipe uses 0.01 with --momentum 0)")
  g.add_argument("--momentum", type=float, default=d.momentum, help="sgd, rmsprop")
  g.add_argument("--weight-decay", type=float, default=d.weight_decay,
                 help="L2 penalty (decoupled for adamw)")
  g.add_argument("--nesterov", action="store_true", help="sgd")
  g.add_argument("--betas", type=float, nargs=2, default=d.betas, metavar=("B1", "B2"),
                 help="adam, adamw")
  g = p.add_argument_group("learning-rate schedule (torch.optim.lr_scheduler)")
  g.add_argument("--schedule", choices=loop.SCHEDULES, default=d.schedule,
                 help="StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, or none")
  g.add_argument("--step-size", type=int, default=d.step_size, help="step")
  g.add_argument("--gamma", type=float, default=d.gamma, help="step, multistep, exponential")
  g.add_argument("--milestones", type=int, nargs="+", default=d.milestones, help="multistep")
  g.add_argument("--t-max", type=int, default=d.t_max, help="cosine")
  g.add_argument("--schedule-per", choices=("epoch", "batch"), default=d.schedule_per,
                 help="when scheduler.step() runs; 'batch' reproduces the notes' mistake")
  g = p.add_argument_group("loop")
  g.add_argument("--epochs", type=int, default=d.epochs, help="passes over the training set")
  g.add_argument("--batch-size", type=int, default=d.batch_size,
                 help="examples per update; the last partial batch is dropped")
  g.add_argument("--seed", type=int, default=d.seed,
                 help="initialisation and data order (a function of seed and epoch)")
  g.add_argument("--scan-epoch", action="store_true",
                 help="run each epoch as one compiled program (data on the device)")
  g.add_argument("--data-placement", choices=pipeline.PLACEMENTS, default=d.data_placement,
                 help="where the dataset lives while training: device (put there once, split "
                      "over the devices), host (batches prefetched), auto (the device if it "
                      "fits in half its free memory)")
  g.add_argument("--precision", choices=tuple(amp.PRECISIONS), default=d.precision,
                 help="torch.autocast mixed precision: convolutions and matmuls in bf16 or fp16 "
                      "(fp16 with torch's GradScaler), parameters and losses in float32")
  g.add_argument("--nan-policy", choices=("stop", "skip"), default=d.nan_policy,
                 help="on a NaN/inf loss or gradient: stop (exit 3, the last good epoch stays "
                      "checkpointed) or skip the update and count it")
  g = p.add_argument_group("output")
  g.add_argument("--out", dest="out_dir", default=None,
                 help="the run's folder (default: runs/<model>-<dataset>-<date-time>)")
  g.add_argument("--keep", type=int, default=d.keep, help="checkpoints kept, the last ones")
  g.add_argument("--progress", choices=loop.MODES, default=d.progress,
                 help="bar: progress bar and a line per epoch; lines; quiet; json: a JSON "
                      "object per epoch")
  g.add_argument("--config", metavar="FILE", default=None,
                 help="a TOML file of settings (keys as the flags, e.g. lr = 0.1); flags win")
  g.add_argument("--resume", metavar="DIR", default=None,
                 help="continue the run in DIR from its last checkpoint, with its saved settings")
  g = p.add_argument_group(
      "several processes (hosts)",
      "Every device of every process trains; --batch-size is the global batch and must divide "
      "by the device count. Run the same command on each host with these.")
  g.add_argument("--coordinator-address", metavar="HOST:PORT", default=None,
                 help=f"process 0's address and a free port; else ${parallel.ENV_COORDINATOR}")
  g.add_argument("--num-processes", type=int, default=None, metavar="N",
                 help=f"how many processes; else ${parallel.ENV_NUM_PROCESSES}")
  g.add_argument("--process-id", type=int, default=None, metavar="I",
                 help="this process, 0 to N-1 (0 prints and writes the run); else "
                      f"${parallel.ENV_PROCESS_ID}")
  g.add_argument("--distributed", action="store_true",
                 help="join a multi-process run even with none of the three set: JAX detects "
                      "the cluster (Cloud TPU, SLURM, Open MPI)")
  return p


def read_config_file(path: str) -> dict:
  """The settings of a TOML file, checked: unknown keys and wrong types raise ValueError."""
  try:
    with open(path, "rb") as f:
      raw = tomllib.load(f)
  except FileNotFoundError:
    raise ValueError(f"config file {path!r} does not exist") from None
  except tomllib.TOMLDecodeError as e:
    raise ValueError(f"config file {path!r} is not valid TOML: {e}") from None
  return loop.config_values(raw, source=f"config file {path!r}", allow_unknown=False)


def config_from_args(argv=None) -> tuple[loop.Config, bool]:
  """The run's Config from flags (and ``--config``), and whether to resume it."""
  p = parser()
  args = p.parse_args(argv)
  if args.resume:
    path = os.path.join(args.resume, "config.json")
    if not os.path.exists(path):
      raise ValueError(f"--resume {args.resume!r}: no run there (no config.json)")
    with open(path) as f:
      saved = json.load(f)
    values = loop.config_values(saved, source=path, allow_unknown=True)
    values.update(out_dir=args.resume, progress=args.progress)
    return loop.Config(**values), True
  if args.config:
    p.set_defaults(**read_config_file(args.config))
    args = p.parse_args(argv)
  fields = {f.name for f in dataclasses.fields(loop.Config)}
  values = {k: v for k, v in vars(args).items() if k in fields}  # not the per-process flags
  values["betas"], values["milestones"] = tuple(values["betas"]), tuple(values["milestones"])
  if values["out_dir"] is None:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    values["out_dir"] = os.path.join("runs", f"{values['model']}-{values['dataset']}-{stamp}")
  return loop.Config(**values), False


def initialize_from_args(argv=None) -> bool:
  """Joins the multi-process run the flags (or environment) describe (``parallel.initialize``)."""
  args = parser().parse_args(argv)
  return parallel.initialize(args.coordinator_address, args.num_processes, args.process_id,
                             auto=args.distributed)


def main(argv=None) -> int:
  # tfds logs a warning through absl for every dataset folder it inspects; the
  # outcome (data found, or DatasetNotFoundError) is what the user needs to see.
  logging.getLogger("absl").setLevel(logging.ERROR)
  from jaxtrain.data import DatasetNotFoundError

  try:
    config, resume = config_from_args(argv)
    try:  # first: before anything touches JAX's devices
      initialize_from_args(argv)
    except RuntimeError as e:  # JAX's: e.g. no coordinator answered in time
      raise ValueError(f"could not join the multi-process run: {e}") from e
    talk = config.progress in ("bar", "lines") and parallel.is_main_process()
    if talk:
      print(f"jaxtrain: {config.model} on {config.dataset}, {config.loss}, {config.optimizer} "
            f"lr {config.lr}, schedule {config.schedule} per {config.schedule_per}, "
            f"batch {config.batch_size}, {config.epochs} epochs"
            + (f", resuming {config.out_dir}" if resume else ""), flush=True)
    _, results = loop.fit(config, resume=resume)
  except (ValueError, TypeError, FileNotFoundError, DatasetNotFoundError) as e:
    message = " ".join(str(e).split())  # one line, whatever the exception's text
    print(f"python -m jaxtrain.train: error: {message}", file=sys.stderr)
    return 2
  except loop.NonFiniteError as e:
    # Exit 3, not 2: the input was valid, the training diverged.
    print(f"python -m jaxtrain.train: error: {' '.join(str(e).split())}", file=sys.stderr)
    return 3
  except KeyboardInterrupt:
    print("python -m jaxtrain.train: interrupted; the last finished epoch is checkpointed "
          "(continue with --resume)", file=sys.stderr)
    return 130
  if talk and results:
    best = max(results, key=lambda r: r.test_acc)
    last = results[-1]
    print(f"final: test acc {last.test_acc:.4f} (best {best.test_acc:.4f} at epoch {best.epoch}), "
          f"train loss {last.train_loss:.4f}; run saved in {config.out_dir}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
