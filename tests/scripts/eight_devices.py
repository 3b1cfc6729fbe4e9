"""Run with XLA_FLAGS=--xla_force_host_platform_device_count=8 (tests/test_parallel.py):
8-device measurements, printed as one line 'RESULT {json}'; argv[1]: a temporary folder."""

import contextlib
import io
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import jaxtrain.losses as L
from jaxtrain import evaluate, loop, models, optim, parallel, train
from jaxtrain.train_step import create_train_state, make_epoch, make_eval_step, make_train_step

out = {"device_count": jax.device_count()}
tmp = sys.argv[1]
eight, one = parallel.data_mesh(), parallel.data_mesh(jax.devices()[:1])


def maxdiff(a, b):
  a, b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(a) == len(b) and a
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(a, b))


def close(a, b):
  return all(
    np.allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
  )


rng = np.random.default_rng(0)
x = rng.uniform(size=(80, 8, 8, 1)).astype(np.float32)
y = rng.integers(0, 10, 80).astype(np.int32)
order = rng.permutation(80).astype(np.int32).reshape(5, 16)  # 5 steps of batch 16
MODELS = {
  "mlp": lambda: models.MLP(in_features=64, hidden=32, num_classes=10, rngs=nnx.Rngs(0)),
  "cnn": lambda: models.CNN(in_channels=1, image_size=8, num_classes=10, rngs=nnx.Rngs(0)),
}
for name, make in MODELS.items():
  model, opt = make(), optim.sgd(0.1, momentum=0.9)
  params, losses = {}, {}
  for mesh_name, mesh in (("eight", eight), ("one", one)):
    step = make_train_step(model, L.cross_entropy, opt, mesh=mesh)
    state = create_train_state(model, opt, mesh=mesh)
    losses[mesh_name] = []
    for idx in order:
      state, m = step(state, (x[idx], y[idx]))
      losses[mesh_name].append(float(m["loss"]))
    params[mesh_name] = jax.tree.map(np.asarray, state.params)
    leaf = jax.tree.leaves(state.params)[0]
    out[f"{name}_{mesh_name}_param_devices"] = len(leaf.sharding.device_set)
    out[f"{name}_{mesh_name}_replicated"] = bool(leaf.is_fully_replicated)
    out[f"{name}_{mesh_name}_count"] = int(m["count"])
  out[f"{name}_step_maxdiff"] = maxdiff(params["eight"], params["one"])
  out[f"{name}_step_close"] = close(params["eight"], params["one"])
  out[f"{name}_loss_maxdiff"] = float(np.max(np.abs(np.subtract(losses["eight"], losses["one"]))))
  if name == "mlp":  # (the CNN's scan: through the CLI below would cost another fit; skipped)
    # The whole epoch as one scan, sharded over the 8 devices, from the same state.
    epoch = make_epoch(model, L.cross_entropy, opt, mesh=eight)
    state, totals = epoch(
      create_train_state(model, opt, mesh=eight), jnp.asarray(x), jnp.asarray(y), order
    )
    out["scan_maxdiff"] = maxdiff(state.params, params["one"])
    out["scan_close"] = close(state.params, params["one"])
    out["scan_loss_maxdiff"] = float(np.max(np.abs(totals["batch_loss"] - np.array(losses["one"]))))

# The batch really is split: 2 rows per device, and the compiled step all-reduces.
model, opt = MODELS["mlp"](), optim.sgd(0.1)
step = make_train_step(model, L.cross_entropy, opt, mesh=eight)
batch = parallel.put_batch((x[:16], y[:16]), eight)
out["batch_shard_rows"] = sorted({s.data.shape[0] for s in batch[0].addressable_shards})
out["batch_devices"] = len(batch[0].sharding.device_set)
hlo = step.lower(create_train_state(model, opt, mesh=eight), batch).compile().as_text()
out["step_all_reduce"] = "all-reduce" in hlo

# A dataset on the devices (pipeline's 'device' placement): as stored, uint8, split
# along its examples (83 padded to 88: 11 rows per device), never replicated; the
# scanned epoch gathers each batch without assembling the whole split anywhere.
pixels = rng.integers(0, 256, (83, 8, 8, 1)).astype(np.uint8)
split_x, split_y = parallel.put_split(pixels, np.arange(83, dtype=np.int32) % 10, eight)
out["split_dtype"] = str(split_x.dtype)
out["split_shape"] = list(split_x.shape)
out["split_shard_rows"] = sorted({s.data.shape[0] for s in split_x.addressable_shards})
out["split_devices"] = len(split_x.sharding.device_set)
epoch = make_epoch(model, L.cross_entropy, opt, mesh=eight, image_max=255)
hlo = (
  epoch.lower(create_train_state(model, opt, mesh=eight), split_x, split_y, order)
  .compile()
  .as_text()
)
out["split_all_gathered"] = [
  line.strip()[:120] for line in hlo.splitlines() if "all-gather" in line and "[88," in line
]

# Evaluation with a batch size that does not divide by 8: padded to 32, mask 0.
state = create_train_state(model, opt, mesh=eight)
ev8 = make_eval_step(model, L.cross_entropy, mesh=eight)
ev1 = make_eval_step(model, L.cross_entropy, mesh=one)
xe, ye = x[:75], y[:75]
out["eval_eight"] = loop.evaluate(ev8, state, xe, ye, 30, mesh=eight)
out["eval_one"] = loop.evaluate(
  ev1, jax.device_put(state, parallel.replicated(one)), xe, ye, 30, mesh=one
)

# The CLI path on 8 devices, per step and scan-epoch, against loop.fit on one device.
common = ["--model", "mlp", "--epochs", "2", "--progress", "quiet"]
for mode, extra in (("step", []), ("scan", ["--scan-epoch"])):
  out[f"cli_{mode}_code"] = train.main(common + extra + ["--out", os.path.join(tmp, mode)])
config, _ = train.config_from_args(common + ["--out", os.path.join(tmp, "one")])
loop.fit(config, mesh=one)
with contextlib.redirect_stdout(io.StringIO()) as text:
  out["evaluate_code"] = evaluate.main(["--checkpoint", os.path.join(tmp, "step")])
out["evaluate_line"] = text.getvalue()

# A global batch that does not divide by the 8 devices: one line, exit 2.
with contextlib.redirect_stderr(io.StringIO()) as err:
  out["bad_batch_code"] = train.main(
    common + ["--batch-size", "60", "--out", os.path.join(tmp, "bad")]
  )
out["bad_batch_err"] = err.getvalue()
print("RESULT " + json.dumps(out))
