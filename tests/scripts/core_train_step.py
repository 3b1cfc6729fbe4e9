"""What a researcher does with the core install: a loss, an optimizer, a model, a train step.

Run through ``without_app_packages.py``; prints ``core OK`` and the modules it imported.
"""

from __future__ import annotations

import sys

import jax.numpy as jnp
import numpy as np
from flax import nnx

import jaxtrain.losses as L
from jaxtrain import models, optim
from jaxtrain.train_step import create_train_state, make_train_step

model = models.CNN(in_channels=3, image_size=8, rngs=nnx.Rngs(0))
opt = optim.adam(optim.step_lr(1e-3, step_size=1, steps_per_epoch=2))
step = make_train_step(model, L.cross_entropy, opt)
state = create_train_state(model, opt)
rng = np.random.default_rng(0)
x, y = rng.random((4, 8, 8, 3), np.float32), rng.integers(0, 10, 4).astype(np.int32)
state, metrics = step(state, (x, y))
assert np.isfinite(float(metrics["loss"])) and int(state.step) == 1
assert float(L.mse_loss(jnp.ones(3), jnp.zeros(3))) == 1.0
print("core OK", sorted({m.split(".")[0] for m in sys.modules if m.startswith("jaxtrain")}))
