"""``python -m jaxtrain.train`` (or ``jaxtrain-train``): the notes' recipe, from the command line.

With no flags it runs the recipe of 000_dc5555055295abc4.txt (the CNN, cross
entropy, SGD with momentum, StepLR(5, 0.1) per epoch, batch 64, 20 epochs) on
scikit-learn's handwritten digits, which work offline, shows a progress bar and
one line per epoch, and writes the run to ``runs/<model>-<dataset>-<time>``.
Settings come from the defaults, then a TOML file (``--config``), then flags;
every flag is a field of ``jaxtrain.config.Config``, and ``--help`` shows each
one's default. Exit status: 2 for bad input (one line, no traceback), 3 when a
NaN or infinite loss or gradient stops the run (``--nan-policy stop``), 4 when
an output cannot be written (disk full, read-only), 130 on Ctrl-C.

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
import typing

from jaxtrain import choices, loop, parallel
from jaxtrain import config as config_lib
from jaxtrain.config import Config
from jaxtrain.reporting import OutputError

PROG = "python -m jaxtrain.train"


class _Parser(argparse.ArgumentParser):
  def error(self, message):  # one line, not usage + message
    self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _default_text(field: dataclasses.Field) -> str:
  """What --help says a field defaults to (per optimizer or schedule where it belongs to one)."""
  for registry, what in ((choices.OPTIMIZERS, "optimizer"), (choices.SCHEDULES, "schedule")):
    owners = {
      name: c.defaults()[field.name] for name, c in registry.items() if field.name in c.options
    }
    if owners:
      shown = ", ".join(
        f"{name} {' '.join(map(str, v)) if isinstance(v, tuple) else v}"
        for name, v in owners.items()
      )
      others = "" if len(owners) == len(registry) else "; not taken by the others"
      return f"per {what}: {shown}{others}"
  if field.default is None or field.default is False:
    return ""
  return str(field.default)


def _add_option(group, field: dataclasses.Field) -> None:
  """``field``'s flag, derived from its declaration in ``Config``."""
  meta = field.metadata
  kind = config_lib.base_type(field)
  default = _default_text(field)
  help_text = meta["help"] + (f" (default: {default})" if default else "")
  kw: dict = dict(dest=field.name, help=help_text)
  if kind is bool:
    kw.update(action="store_true")
  elif typing.get_origin(kind) is tuple:
    args = typing.get_args(kind)
    kw.update(
      type=args[0], nargs="+" if Ellipsis in args else len(args), metavar=field.name.upper()
    )
  else:
    kw.update(type=kind)
    if meta["choices"] is not None:
      kw.update(choices=tuple(meta["choices"]))
  group.add_argument("--" + config_lib.flag_name(field), **kw)


def parser() -> argparse.ArgumentParser:
  """The command line: ``Config``'s fields as flags, then the run's and the hosts' flags.

  Flags that are not given are absent from the parsed namespace (``SUPPRESS``):
  the defaults come from ``Config``, so a flag given can be told from a default.
  """
  p = _Parser(
    prog=PROG,
    argument_default=argparse.SUPPRESS,
    description="Train a model of the notes with torch's semantics, compiled by XLA.",
  )
  groups = {name: p.add_argument_group(name) for name in config_lib.GROUPS}
  for field in dataclasses.fields(Config):
    _add_option(groups[field.metadata["group"]], field)
  out = groups[config_lib.GROUPS[-1]]
  out.add_argument(
    "--config",
    metavar="FILE",
    help="a TOML file of settings (keys: the flags' names, e.g. lr = 0.1, "
    "batch-size = 32); flags win",
  )
  out.add_argument(
    "--resume",
    metavar="DIR",
    help="continue the run in DIR from its last checkpoint, with its saved "
    "settings; only --epochs (to extend it) and the flags that change "
    "nothing trained ("
    + ", ".join(
      "--" + config_lib.flag_name(f)
      for f in dataclasses.fields(Config)
      if f.metadata["on_resume"] and f.name != "epochs"
    )
    + ") may be given",
  )
  g = p.add_argument_group(
    "several processes (hosts)",
    "Every device of every process trains; --batch-size is the global batch and must divide "
    "by the device count. Run the same command on each host with these.",
  )
  g.add_argument(
    "--coordinator-address",
    metavar="HOST:PORT",
    help=f"process 0's address and a free port; else ${parallel.ENV_COORDINATOR}",
  )
  g.add_argument(
    "--num-processes",
    type=int,
    metavar="N",
    help=f"how many processes; else ${parallel.ENV_NUM_PROCESSES}",
  )
  g.add_argument(
    "--process-id",
    type=int,
    metavar="I",
    help=f"this process, 0 to N-1 (0 prints and writes the run); else ${parallel.ENV_PROCESS_ID}",
  )
  g.add_argument(
    "--distributed",
    action="store_true",
    help="join a multi-process run even with none of the three set: JAX detects "
    "the cluster (Cloud TPU, SLURM, Open MPI)",
  )
  return p


def read_config_file(path: str) -> Config:
  """The settings of a TOML file over the defaults, checked: unknown keys and wrong types raise."""
  try:
    with open(path, "rb") as f:
      raw = tomllib.load(f)
  except FileNotFoundError:
    raise ValueError(f"config file {path!r} does not exist") from None
  except tomllib.TOMLDecodeError as e:
    raise ValueError(f"config file {path!r} is not valid TOML: {e}") from None
  return Config.from_mapping(raw, source=f"config file {path!r}")


def _given(args: argparse.Namespace) -> dict:
  """The ``Config`` options given as flags (tuples for the list-valued ones)."""
  fields = {f.name for f in dataclasses.fields(Config)}
  return {k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items() if k in fields}


def config_from_args(argv=None) -> tuple[Config, bool]:
  """The run's ``Config`` from flags (and ``--config``, or the run ``--resume`` names), and
  whether to resume it."""
  args = parser().parse_args(argv)
  given = _given(args)
  if getattr(args, "resume", None):
    if not os.path.exists(os.path.join(args.resume, "config.json")):
      raise ValueError(f"--resume {args.resume!r}: no run there (no config.json)")
    for flag, name in (("--config", "config"), ("--out", "out_dir")):
      if getattr(args, name, None) is not None and (name != "out_dir" or given.get(name)):
        raise ValueError(
          f"--resume {args.resume!r} continues the run there with its saved "
          f"settings: leave out {flag}"
        )
    return _resumed_config(args.resume, given), True
  base = read_config_file(args.config) if getattr(args, "config", None) else Config()
  config = dataclasses.replace(base, **given)
  if config.out_dir is None:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    config.out_dir = os.path.join("runs", f"{config.model}-{config.dataset}-{stamp}")
  return config, False


def _resumed_config(directory: str, given: dict) -> Config:
  """The saved config of the run in ``directory``, with the flags ``--resume`` allows."""
  path = os.path.join(directory, "config.json")
  if not os.path.exists(path):
    raise ValueError(f"--resume {directory!r}: no run there (no config.json)")
  with open(path) as f:
    saved = Config.from_mapping(json.load(f), source=path, saved=True)
  fields = {f.name: f for f in dataclasses.fields(Config)}
  refused = [
    name
    for name, value in given.items()
    if not fields[name].metadata["on_resume"] and value != getattr(saved, name)
  ]
  if refused:
    flags = ", ".join(
      f"--{config_lib.flag_name(fields[n])} (the run's: {getattr(saved, n)!r})" for n in refused
    )
    raise ValueError(
      f"--resume {directory!r} continues the run with its own settings; "
      f"{flags} cannot change now (start a new run to change "
      f"{'them' if len(refused) > 1 else 'it'})"
    )
  return dataclasses.replace(saved, out_dir=directory, **given)


def initialize_from_args(argv=None) -> bool:
  """Joins the multi-process run the flags (or environment) describe (``parallel.initialize``)."""
  args = parser().parse_args(argv)
  return parallel.initialize(
    getattr(args, "coordinator_address", None),
    getattr(args, "num_processes", None),
    getattr(args, "process_id", None),
    auto=getattr(args, "distributed", False),
  )


def _one_line(error: BaseException) -> str:
  return " ".join(str(error).split())


def _quiet_orbax_failures() -> None:
  """Keeps a failed asynchronous checkpoint write to the one line ``main`` prints.

  tfds logs a warning through absl for every dataset folder it inspects, and orbax
  logs a failed write through absl, leaves the failed write's other tasks to
  asyncio's "Task exception was never retrieved", and its callbacks may meet a closed
  event loop ("Event loop is closed", an unraisable exception): all of them about
  the error that ``Checkpointer`` raises and ``main`` reports. This is the command
  line's process; the library configures nothing.
  """
  logging.getLogger("absl").setLevel(logging.CRITICAL)
  logging.getLogger("asyncio").setLevel(logging.CRITICAL)
  default = sys.unraisablehook

  def hook(unraisable):
    value = unraisable.exc_value
    if not (isinstance(value, RuntimeError) and str(value) == "Event loop is closed"):
      default(unraisable)

  sys.unraisablehook = hook


def main(argv=None) -> int:
  _quiet_orbax_failures()
  from jaxtrain.data import DatasetError

  config, resume = None, False
  try:
    config, resume = config_from_args(argv)
    try:  # first: before anything touches JAX's devices
      initialize_from_args(argv)
    except RuntimeError as e:  # JAX's: e.g. no coordinator answered in time
      raise ValueError(f"could not join the multi-process run: {e}") from e
    shown = config.resolved()
    talk = shown.progress in ("bar", "lines") and parallel.is_main_process()
    if talk:
      print(
        f"jaxtrain: {shown.model} on {shown.dataset}, {shown.loss}, {shown.optimizer} "
        f"lr {shown.lr}, schedule {shown.schedule} per {shown.schedule_per}, "
        f"batch {shown.batch_size}, {shown.epochs} epochs"
        + (f", resuming {shown.out_dir}" if resume else ""),
        flush=True,
      )
    _, results = loop.fit(config, resume=resume)
  except OutputError as e:
    print(f"{PROG}: error: {_one_line(e)}; {_kept(config)}", file=sys.stderr)
    return 4
  except ModuleNotFoundError as e:
    print(f"{PROG}: error: {missing_application(e)}", file=sys.stderr)
    return 2
  except (ValueError, TypeError, FileNotFoundError, DatasetError) as e:
    print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
    return 2
  except loop.NonFiniteError as e:
    # Exit 3, not 2: the input was valid, the training diverged.
    print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
    return 3
  except KeyboardInterrupt:
    print(
      f"{PROG}: interrupted; the last finished epoch is checkpointed (continue with --resume)",
      file=sys.stderr,
    )
    return 130
  if talk and results:
    best = max(results, key=lambda r: r.test_acc)
    last = results[-1]
    print(
      f"final: test acc {last.test_acc:.4f} (best {best.test_acc:.4f} at epoch {best.epoch}), "
      f"train loss {last.train_loss:.4f}; run saved in {config.out_dir}"
    )
  return 0


def missing_application(error: ModuleNotFoundError) -> str:
  """One line for a package of the training application that this install lacks."""
  return (
    f"the training application needs packages this install lacks ({error}): "
    "pip install 'jaxtrain[train]'"
  )


def _kept(config: Config | None) -> str:
  """What a run that could not write an output still has on disk."""
  from jaxtrain.checkpoint import Checkpointer  # noqa: PLC0415

  directory = os.path.join(config.out_dir, "checkpoints") if config and config.out_dir else None
  if directory is None or not os.path.isdir(directory):
    return "no checkpoint was written"
  try:
    with Checkpointer(directory, read_only=True) as ckpt:
      latest = ckpt.latest_epoch()
  except (OSError, ValueError):
    latest = None
  if latest is None:
    return "no checkpoint was committed"
  return (
    f"kept: the checkpoint of epoch {latest} in {directory} (continue with "
    f"--resume {config.out_dir} once there is space)"
  )


if __name__ == "__main__":
  sys.exit(main())
