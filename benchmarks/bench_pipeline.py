"""The input pipeline end to end: a CIFAR-10-shaped synthetic run, its epoch time and its memory.

    python benchmarks/bench_pipeline.py                 # print the table
    python benchmarks/bench_pipeline.py --write         # and record it in RESULTS.md
    python benchmarks/bench_pipeline.py --before /path/to/an/older/checkout --write

``loop.fit`` trains the notes' CNN (SGD with momentum, batch 64) for ``--epochs``
epochs on ``synthetic(50000, 10000, (32, 32, 3))`` (CIFAR-10's sizes) with a run
folder (checkpoints, metrics, curves), per step and with ``--scan-epoch``, each
in a fresh process. Reported per row: the last epoch's wall time (the first
includes compilation) and images/s; the bytes of the dataset's arrays on the host
(``nbytes`` of both splits); the process's resident memory after the dataset is
loaded and its peak over the run (``ru_maxrss``). ``--label`` names the rows, and
``PYTHONPATH`` may point at another checkout of jaxtrain: the script uses only
``loop.Config``, ``loop.fit`` and ``data.synthetic``, so the same command measures
an older version for a before/after comparison.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results import load_average, machine, publish, start_load  # noqa: E402

_TAG = "BENCH_PIPELINE_RESULT "
MODES = {"per-step": [], "scan-epoch": ["scan_epoch"]}


def _rss_mib() -> float:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(mode: str, epochs: int, num_train: int, num_test: int) -> dict:
  import jaxtrain
  from jaxtrain import data, loop

  t0 = time.perf_counter()
  ds = data.synthetic(num_train, num_test, (32, 32, 3), 10, seed=0)
  load_s = time.perf_counter() - t0
  nbytes = sum(a.nbytes for s in (ds.train, ds.test) for a in (s.images, s.labels))
  out = dict(
    mode=mode,
    source=os.path.dirname(os.path.dirname(jaxtrain.__file__)),
    data_mib=nbytes / 2**20,
    image_dtype=str(ds.train.images.dtype),
    rss_after_data_mib=_rss_mib(),
    load_s=load_s,
  )
  with tempfile.TemporaryDirectory() as out_dir:
    config = loop.Config(
      model="cnn",
      dataset="synthetic",
      epochs=epochs,
      progress="quiet",
      out_dir=out_dir,
      **{flag: True for flag in MODES[mode]},
    )
    t0 = time.perf_counter()
    _, results = loop.fit(config, log=lambda line: None, data=ds)
    out["fit_s"] = time.perf_counter() - t0
  out["epoch_s"] = [r.seconds for r in results]
  out["images_per_epoch"] = (num_train // 64) * 64
  out["test_acc"] = results[-1].test_acc
  out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
  return out


def run_child(mode: str, args, source: str | None = None) -> dict:
  cmd = [
    sys.executable,
    os.path.abspath(__file__),
    "--child",
    mode,
    "--epochs",
    str(args.epochs),
    "--num-train",
    str(args.num_train),
    "--num-test",
    str(args.num_test),
  ]
  env = dict(os.environ)
  if source:
    env["PYTHONPATH"] = os.path.abspath(source)
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
  for line in reversed(proc.stdout.splitlines()):
    if line.startswith(_TAG):
      return json.loads(line[len(_TAG) :])
  err = [line for line in proc.stderr.splitlines() if line.strip()]
  return dict(mode=mode, error=f"exit status {proc.returncode}: {err[-1] if err else ''}")


def _version(source: str | None) -> str:
  """``source``'s git commit (this checkout's when ``None``), as the rows' label."""
  where = source or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  rev = (
    subprocess.run(
      ["git", "-C", where, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    or "?"
  )
  dirty = subprocess.run(
    ["git", "-C", where, "status", "--porcelain", "--", "jaxtrain"], capture_output=True, text=True
  ).stdout.strip()
  return f"{'before' if source else 'this checkout'} ({rev}{' + changes' if dirty else ''})"


def _row(label: str, r: dict) -> str:
  if "error" in r:
    return f"| {label} | {r['mode']} | failed: {r['error']} | | | | | |"
  last = r["epoch_s"][-1]
  return (
    f"| {label} | {r['mode']} | {last:.2f} | {r['images_per_epoch'] / last:.0f} | "
    f"{r['data_mib']:.0f} ({r['image_dtype']}) | {r['rss_after_data_mib']:.0f} | "
    f"{r['peak_rss_mib']:.0f} | {r['test_acc']:.4f} |"
  )


def markdown(rows: list[tuple[str, dict]], args, command: str, load: tuple[str, str]) -> str:
  return (
    "\n".join(
      [
        f"## Input pipeline: CIFAR-10-shaped synthetic run ({datetime.date.today().isoformat()})",
        "",
        f"{machine()} Command: `{command}`. Load average (1 min) at the start / end: "
        f"{load[0]} / {load[1]}. `loop.fit` of the notes' CNN (SGD, momentum 0.9, batch 64) on "
        f"`synthetic({args.num_train}, {args.num_test}, (32, 32, 3))` with a run folder "
        "(asynchronous checkpoints, metrics, curves), each mode in a fresh process. Epoch time: "
        f"the last of {args.epochs} epochs (the first compiles), evaluation and reporting "
        "included. Data: the `nbytes` of both splits' arrays on the host. RSS after data: the "
        "process's resident memory once the dataset is built; peak: `ru_maxrss` over the run.",
        "",
        "| version | mode | epoch (s) | images/s | data on the host (MiB) | RSS after data (MiB) "
        "| peak RSS (MiB) | test acc |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        *[_row(label, r) for label, r in rows],
      ]
    )
    + "\n"
  )


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--epochs", type=int, default=2)
  parser.add_argument("--num-train", type=int, default=50000)
  parser.add_argument("--num-test", type=int, default=10000)
  parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
  parser.add_argument(
    "--before",
    metavar="DIR",
    default=None,
    help="another checkout of jaxtrain to measure first, for a before/after table",
  )
  parser.add_argument("--timeout", type=float, default=1800)
  parser.add_argument("--write", action="store_true", help="record the table in RESULTS.md")
  parser.add_argument("--child", choices=list(MODES), help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.epochs < 2:
    parser.error("--epochs must be at least 2 (the first epoch includes compilation)")
  if args.child:
    print(
      _TAG + json.dumps(child(args.child, args.epochs, args.num_train, args.num_test)), flush=True
    )
    return 0
  load = start_load()
  rows = []
  for source in ([args.before] if args.before else []) + [None]:
    label = _version(source)
    for mode in args.modes:
      r = run_child(mode, args, source)
      rows.append((label, r))
      print(label, json.dumps(r), flush=True)
  command = "python benchmarks/bench_pipeline.py" + (" --write" if args.write else "")
  if args.before:
    command += f" --before {args.before}"
  if (args.epochs, args.num_train, args.num_test) != (2, 50000, 10000):
    command += f" --epochs {args.epochs} --num-train {args.num_train} --num-test {args.num_test}"
  section = markdown(rows, args, command, (load, load_average()))
  publish(section, "## Input pipeline", args.write)
  return 0


if __name__ == "__main__":
  sys.exit(main())
