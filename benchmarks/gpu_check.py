"""The GPU check: jaxtrain on one accelerator in one call, recorded in RESULTS.md.

    PYTHONPATH=. python benchmarks/gpu_check.py --write --save $OUT/gpu_check.md
    python benchmarks/gpu_check.py --tiny            # the CPU mode CI runs (seconds)
    python benchmarks/gpu_check.py --record FILE     # put a saved section into RESULTS.md

Meant for one H100/H200 with a stock image's jax (CUDA), torch (CUDA), flax, optax
and orbax, run from the checkout with ``PYTHONPATH=.`` (no install, no network):
it imports nothing else (no tensorflow-datasets, tensorboardX or scikit-learn). It
measures and records, in about 5 minutes on such a GPU:

1. **Devices**: jax's and torch's, with versions.
2. **Gradients**: the CIFAR-10 CNN's loss gradient as jaxtrain computes it (on a
   GPU: the plain ``lax`` program, chosen when the step is lowered) against a
   hand-written ``lax.conv_general_dilated`` + ``lax.reduce_window`` program, both
   at ``jax.default_matmul_precision('highest')``: the largest difference relative
   to the gradient's scale.
3. **Training throughput** (``bench_train``'s measurements, in this one process,
   GPU memory preallocation off so that both frameworks fit): the notes' CNN
   (batch 64), MLP (256) and RNN (64); torch eager, torch.compile, jaxtrain
   per-step and scan-epoch; float32 and bf16 (``torch.autocast`` /
   ``precision='bf16'``); steps/s and the ratio to torch eager.
4. **The notes' recipe**: ``loop.fit`` of the default 20-epoch recipe on
   CIFAR-10-shaped synthetic data (50,000 training images an epoch), per-step and
   scan-epoch: wall time (compilation included) and images/s.

Goals (printed as met or missed): at least 3x torch eager for the CNN and MLP,
20 epochs in under 10 s. ``--tiny`` runs every part at toy sizes on whatever
device there is (the CPU in CI), the throughput part for the MLP alone and without
torch.compile, so the script is known to work before a GPU is at hand.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time

# This script is an entry point: it configures its own process. Both frameworks
# share the GPU, so jax allocates on demand instead of taking 75 % of it up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_train  # noqa: E402
from results import RESULTS, load_average, start_load, write_results  # noqa: E402

HEADER = "## GPU check"
GOAL_RATIO = 3.0  # jaxtrain vs torch eager, CNN and MLP
GOAL_RECIPE_S = 10.0  # the notes' 20 epochs on CIFAR-10-sized data


def devices() -> list[str]:
  import jax
  import torch

  lines = [
    f"jax {jax.__version__}: "
    + ", ".join(f"{d.platform}:{d.id} ({d.device_kind})" for d in jax.devices())
  ]
  if torch.cuda.is_available():
    lines.append(
      f"torch {torch.__version__}: cuda ({torch.cuda.get_device_name()}, "
      f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB), "
      f"CUDA {torch.version.cuda}"
    )
  else:
    lines.append(f"torch {torch.__version__}: cpu only")
  return lines


def gradient_check(batch: int, side: int = 32) -> dict:
  """jaxtrain's CNN gradient against a hand-written plain lax program, highest precision."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  from flax import nnx
  from jax import lax

  import jaxtrain.losses as L
  from jaxtrain import models

  model = models.CNN(in_channels=3, image_size=side, rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model, nnx.Param)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.random((batch, side, side, 3), np.float32))
  y = jnp.asarray(rng.integers(0, 10, batch), jnp.int32)

  def ours(params):
    return L.cross_entropy(nnx.merge(graphdef, params)(x), y)

  def plain(params):
    h = x
    for name in ("conv1", "conv2", "conv3"):
      conv = params[name]
      h = (
        lax.conv_general_dilated(
          h,
          conv["kernel"][...],
          (1, 1),
          ((2, 2), (2, 2)),
          dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        + conv["bias"][...]
      )
      h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    h = h.reshape(batch, -1)
    for name in ("fc1", "fc2"):
      h = h @ params[name]["kernel"][...] + params[name]["bias"][...]
    logits = h
    return jnp.mean(jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, y[:, None], 1)[:, 0])

  with jax.default_matmul_precision("highest"):
    (l_ours, g_ours), (l_plain, g_plain) = (
      jax.jit(jax.value_and_grad(f))(params) for f in (ours, plain)
    )
  worst = 0.0
  for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_plain)):
    a, b = np.asarray(a), np.asarray(b)
    worst = max(worst, float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30)))
  return dict(
    loss_diff=abs(float(l_ours) - float(l_plain)),
    grad_rel=worst,
    platform=jax.devices()[0].platform,
  )


def throughput(models, contenders, precisions, steps: int, repeat: int) -> list[dict]:
  """bench_train's measurements in this process, every (precision, model, contender)."""
  rows = []
  for precision in precisions:
    for name in models:
      batch = bench_train.CASES[name][0]
      measured = {}
      for key in contenders:
        t0 = time.perf_counter()
        r = bench_train.child(name, key, steps, repeat, precision)
        r.update(
          model=name, key=key, batch=batch, precision=precision, wall=time.perf_counter() - t0
        )
        if "error" not in r:
          r["median"] = statistics.median(r["sps"])
        measured[key] = r
      eager = measured.get("torch")
      for r in measured.values():
        if "median" in r and eager is not None and "median" in eager:
          r["ratio"] = r["median"] / eager["median"]
        rows.append(r)
        print(_throughput_row(r), flush=True)
  return rows


def recipe(num_train: int, num_test: int, epochs: int, side: int = 32) -> list[dict]:
  """The notes' recipe (the default Config) on CIFAR-10-shaped synthetic data."""
  from jaxtrain import data, loop

  ds = data.synthetic(num_train, num_test, (side, side, 3), 10, seed=0)
  rows = []
  for mode, scan in (("per-step", False), ("scan-epoch", True)):
    config = loop.Config(
      model="cnn", dataset="synthetic", epochs=epochs, progress="quiet", scan_epoch=scan
    )
    t0 = time.perf_counter()
    _, results = loop.fit(config, log=lambda line: None, data=ds)
    wall = time.perf_counter() - t0
    images = epochs * (num_train // config.batch_size) * config.batch_size
    rows.append(
      dict(
        mode=mode,
        wall=wall,
        images=images,
        epochs=epochs,
        first=results[0].seconds,
        last=results[-1].seconds,
        test_acc=results[-1].test_acc,
      )
    )
    print(f"recipe {mode}: {wall:.1f} s for {epochs} epochs, {images / wall:.0f} img/s", flush=True)
  return rows


def _throughput_row(r: dict) -> str:
  head = f"| {r['precision']} | {r['model']} ({r['batch']}) | {bench_train.CONTENDERS[r['key']]} |"
  if "error" in r:
    return f"{head} failed: {r['error'].replace('|', '/')} | - | - | - |"
  ratio = f"{r['ratio']:.2f}x" if r.get("ratio") else "-"
  return f"{head} {r['median']:.1f} | {r['median'] * r['batch']:.0f} | {r['first']:.2f} | {ratio} |"


def _goals(rows: list[dict], recipes: list[dict]) -> list[str]:
  lines = []
  for name in ("cnn", "mlp"):
    best = max(
      (r for r in rows if r["model"] == name and r["key"].startswith("jax") and r.get("ratio")),
      key=lambda r: r["ratio"],
      default=None,
    )
    if best is None:
      lines.append(f"- {name}: no ratio measured")
      continue
    verdict = "met" if best["ratio"] >= GOAL_RATIO else "missed"
    lines.append(
      f"- {name}: best jaxtrain {best['ratio']:.2f}x torch eager "
      f"({bench_train.CONTENDERS[best['key']]}, {best['precision']}): goal "
      f"{GOAL_RATIO:.0f}x {verdict}"
    )
  if recipes:
    fastest = min(recipes, key=lambda r: r["wall"])
    if fastest["epochs"] < 20:
      verdict = f"not measured ({fastest['epochs']} epochs only)"
    else:
      verdict = "met" if fastest["wall"] < GOAL_RECIPE_S else "missed"
    lines.append(
      f"- the notes' recipe, {fastest['epochs']} epochs: {fastest['wall']:.1f} s "
      f"({fastest['mode']}): goal under {GOAL_RECIPE_S:.0f} s for 20 epochs {verdict}"
    )
  return lines


def markdown(args, devs, grads, rows, recipes, load, seconds: float) -> str:
  command = "PYTHONPATH=. python benchmarks/gpu_check.py" + (" --tiny" if args.tiny else "")
  lines = [
    f"{HEADER}{' (tiny CPU mode)' if args.tiny else ''} ({datetime.date.today().isoformat()})",
    "",
    f"Command: `{command}`; the whole check took {seconds:.0f} s. Load average (1 min) at "
    f"the start / end: {load[0]} / {load[1]}.",
    "",
    "Devices:",
    *[f"- {d}" for d in devs],
    "",
    f"Gradients ({grads['platform']}, highest matmul precision): the notes' CNN's loss "
    f"on {args.side}x{args.side}x3 images: the "
    "gradient as jaxtrain computes it against a hand-written `lax.conv_general_dilated` + "
    "`lax.reduce_window` program: largest difference relative to each gradient's scale "
    f"{grads['grad_rel']:.1e}; loss difference {grads['loss_diff']:.1e}.",
    "",
    f"Training throughput ({args.steps} SGD steps per window, median of {args.repeat} "
    "windows after the first step; every contender in this one process, jax's GPU "
    "preallocation off; bf16: torch's forward and loss under `torch.autocast`, jaxtrain's "
    "`precision='bf16'`):",
    "",
    "| precision | model (batch) | contender | steps/s | images/s | first step (s) | "
    "vs torch eager |",
    "|---|---|---|---:|---:|---:|---:|",
    *[_throughput_row(r) for r in rows],
    "",
    "The notes' recipe (`loop.fit` of the default config: CNN, SGD momentum 0.9, StepLR, "
    f"batch 64) on synthetic {args.side}x{args.side}x3 images ({args.recipe_train} training, "
    f"{args.recipe_test} test images), compilation included:",
    "",
    "| mode | epochs | wall (s) | images/s | first epoch (s) | last epoch (s) | test acc |",
    "|---|---:|---:|---:|---:|---:|---:|",
    *[
      f"| {r['mode']} | {r['epochs']} | {r['wall']:.1f} | {r['images'] / r['wall']:.0f} | "
      f"{r['first']:.2f} | {r['last']:.2f} | {r['test_acc']:.4f} |"
      for r in recipes
    ],
    "",
    "Goals:",
    *_goals(rows, recipes),
  ]
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--tiny",
    action="store_true",
    help="toy sizes on any device, no torch.compile (CI's check of the script)",
  )
  parser.add_argument("--write", action="store_true", help="record the section in RESULTS.md")
  parser.add_argument("--save", metavar="FILE", help="also write the section to FILE")
  parser.add_argument(
    "--record",
    metavar="FILE",
    help="only put a section saved with --save into RESULTS.md, and exit",
  )
  parser.add_argument("--results", metavar="FILE", default=RESULTS, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.record:
    with open(args.record) as f:
      section = f.read()
    if not section.startswith(HEADER):
      parser.error(
        f"{args.record} does not hold a GPU check section (it starts with {section[:40]!r})"
      )
    write_results(section, HEADER, path=args.results, after="## Training throughput")
    return 0
  args.steps, args.repeat = (3, 1) if args.tiny else (100, 5)
  args.recipe_train, args.recipe_test, args.recipe_epochs = (
    (256, 64, 2) if args.tiny else (50000, 10000, 20)
  )
  contenders = ["torch", "jax-step", "jax-scan"] if args.tiny else list(bench_train.CONTENDERS)
  # Tiny: the throughput part on the MLP alone (the CNN's programs are compiled by the
  # gradient check and the recipe already; each compilation is most of a tiny run).
  throughput_models = ["mlp"] if args.tiny else list(bench_train.CASES)
  load = start_load()
  t0 = time.perf_counter()
  devs = devices()
  print("\n".join(devs), flush=True)
  # Tiny: 8x8 RGB images (the CNN's smallest), so that its compilations are quick.
  side = args.side = 8 if args.tiny else 32
  grads = gradient_check(8 if args.tiny else 64, side)
  print(f"gradients: {grads}", flush=True)
  rows = throughput(throughput_models, contenders, ("float32", "bf16"), args.steps, args.repeat)
  recipes = recipe(args.recipe_train, args.recipe_test, args.recipe_epochs, side)
  section = markdown(
    args, devs, grads, rows, recipes, (load, load_average()), time.perf_counter() - t0
  )
  if args.save:
    with open(args.save, "w") as f:
      f.write(section)
  print()
  print(section)
  if args.write:
    write_results(section, HEADER, path=args.results, after="## Training throughput")
  return 0


if __name__ == "__main__":
  sys.exit(main())
