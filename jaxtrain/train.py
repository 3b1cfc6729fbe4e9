"""``python -m jaxtrain.train``: the notes' training recipe, from the command line.

With no flags it runs the recipe of 000_dc5555055295abc4.txt (the CNN, cross
entropy, SGD lr 0.01, StepLR(5, 0.1) per epoch, batch 64, 20 epochs) on
scikit-learn's handwritten digits, which work offline, and prints one line per
epoch. Every flag's default is shown by ``--help``. Bad input ends with a one-line
message and exit status 2, not a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

from jaxtrain import loop


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
  return p


def config_from_args(argv=None) -> loop.Config:
  args = vars(parser().parse_args(argv))
  args["betas"] = tuple(args["betas"])
  args["milestones"] = tuple(args["milestones"])
  names = {f.name for f in dataclasses.fields(loop.Config)}
  return loop.Config(**{k: v for k, v in args.items() if k in names})


def main(argv=None) -> int:
  config = config_from_args(argv)
  # tfds logs a warning through absl for every dataset folder it inspects; the
  # outcome (data found, or DatasetNotFoundError) is what the user needs to see.
  logging.getLogger("absl").setLevel(logging.ERROR)
  try:
    from jaxtrain.data import DatasetNotFoundError

    print(f"jaxtrain: {config.model} on {config.dataset}, {config.loss}, {config.optimizer} "
          f"lr {config.lr}, schedule {config.schedule} per {config.schedule_per}, "
          f"batch {config.batch_size}, {config.epochs} epochs", flush=True)
    _, results = loop.fit(config, log=lambda line: print(line, flush=True))
  except (ValueError, TypeError, DatasetNotFoundError) as e:
    message = " ".join(str(e).split())  # one line, whatever the exception's text
    print(f"python -m jaxtrain.train: error: {message}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print("python -m jaxtrain.train: interrupted", file=sys.stderr)
    return 130
  best = max(results, key=lambda r: r.test_acc)
  last = results[-1]
  print(f"final: test acc {last.test_acc:.4f} (best {best.test_acc:.4f} at epoch {best.epoch}), "
        f"train loss {last.train_loss:.4f}, {sum(r.seconds for r in results):.1f}s in all")
  return 0


if __name__ == "__main__":
  sys.exit(main())
