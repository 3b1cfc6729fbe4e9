"""The compiled training step: loss, gradient, optimizer update and metrics in one XLA program.

The model (a Flax NNX module) is split once into a static graph definition and
pytrees of state; the step is a pure function of a :class:`TrainState` and a batch,
jit-compiled with the old state donated, so each update reuses its buffers::

  state = create_train_state(model, optimizer)
  train_step = make_train_step(model, cross_entropy, optimizer)
  state, metrics = train_step(state, (images, labels))

``metrics`` stay on the device (sums, not means, so that they add up over an
epoch); fetch them only when logging. When the training split is held on the
device (``parallel.put_split``), ``make_gather_step`` takes each batch as indices
into it, and ``make_epoch`` runs a whole epoch as one program: a ``lax.scan`` of
the same step over batches gathered on the device.

Images may arrive as stored, uint8 pixels: with ``image_max`` the step turns them
into torchvision's ``ToTensor`` values (``pixels / image_max`` in float32,
``jaxtrain.data.to_float``) on the device. ``precision='bf16'`` or ``'fp16'``
runs the model as under ``torch.autocast`` (``jaxtrain.amp``); with ``'fp16'`` an
optimizer wrapped in ``jaxtrain.optim.grad_scaler`` scales the loss as
``torch.amp.GradScaler`` does.

Every program runs data-parallel over a ``jaxtrain.parallel.data_mesh`` (all
devices by default; ``mesh=`` picks others): the state is replicated on every
device, each batch is split along its first axis over the mesh's ``"data"`` axis,
and XLA sums the gradients across devices. One device is a 1-device mesh, the
same program. The batch size must divide by the device count
(``parallel.check_batch_size``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

from jaxtrain import _xla_options, amp, ops, optim, parallel
from jaxtrain.data.dataset import to_float

LossFn = Callable[..., jax.Array]  # loss(logits, labels, *, reduction) -> scalar


@flax.struct.dataclass
class TrainState:
  """Everything a training step reads and writes: a pytree.

  Attributes:
    params: the model's ``nnx.Param`` state.
    model_state: the model's other state (batch statistics, RNG counters); may be empty.
    opt_state: the optimizer's state.
    step: the number of updates made, an int32 scalar.
  """

  params: Any
  model_state: Any
  opt_state: Any
  step: jax.Array


def create_train_state(
  model: nnx.Module, optimizer: optax.GradientTransformation, *, mesh: Mesh | None = None
) -> TrainState:
  """The initial state of ``model`` trained by ``optimizer``, replicated on ``mesh``.

  Args:
    model: the NNX model; its parameters are copied, not moved.
    optimizer: any optax transformation.
    mesh: the data mesh (``parallel.data_mesh()``, every device, if ``None``).
      With several processes, each must build the same model (the same seed).
  """
  mesh = parallel.data_mesh() if mesh is None else mesh
  _, params, model_state = nnx.split(model, nnx.Param, ...)
  state = TrainState(
    params=params,
    model_state=model_state,
    opt_state=optimizer.init(params),
    step=jnp.zeros((), jnp.int32),
  )
  # New buffers on every device: the train step donates the state's buffers,
  # which must not be the model's own (the caller's model stays usable).
  return parallel.put_replicated(state, mesh)


def merge_model(model: nnx.Module, state: TrainState) -> nnx.Module:
  """A copy of ``model`` holding the parameters and state of ``state``."""
  graphdef, _, _ = nnx.split(model, nnx.Param, ...)
  return nnx.merge(graphdef, state.params, state.model_state)


def _graphdef(model: nnx.Module, *, train: bool):
  """The static graph of ``model`` in training or evaluation mode (dropout, batch norm).

  Works on a clone: the caller's model keeps its mode.
  """
  clone = nnx.clone(model)
  clone.train() if train else clone.eval()
  return nnx.split(clone, nnx.Param, ...)[0]


def _check_reduction(reduction: str) -> None:
  if reduction not in ("mean", "sum"):
    raise ValueError(
      f"reduction={reduction!r} is not valid for training; expected 'mean' or 'sum' "
      "(the loss must be a scalar)"
    )


def _batch_metrics(loss, logits, labels, reduction: str) -> dict[str, jax.Array]:
  """Sums over the batch: they add up over an epoch, whatever the batch sizes."""
  count = labels.shape[0]
  return {
    # The loss as returned (a batch mean for 'mean'): the notes' running_loss adds these.
    "loss": loss,
    # The summed per-example loss: train loss = loss_sum / count, as d2l's train_ch3.
    "loss_sum": loss * count if reduction == "mean" else loss,
    "correct": jnp.sum(jnp.argmax(logits, axis=-1) == labels),
    "count": jnp.asarray(count, jnp.int32),
  }


NAN_POLICIES = ("stop", "skip")


def _check_nan_policy(nan_policy: str | None) -> None:
  if nan_policy is not None and nan_policy not in NAN_POLICIES:
    raise ValueError(
      f"nan_policy={nan_policy!r} is not valid; expected one of {', '.join(NAN_POLICIES)} "
      "(or None: no check)"
    )


def _all_finite(*trees) -> jax.Array:
  """True when every entry of every array in ``trees`` is finite: one fused reduction."""
  checks = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(trees)]
  return jnp.all(jnp.stack(checks)) if checks else jnp.asarray(True)


def _images(images: jax.Array, image_max: int | None) -> jax.Array:
  """The float32 images the model takes: uint8 pixels scaled on the device (``to_float``)."""
  if image_max is not None and jnp.issubdtype(images.dtype, jnp.floating):
    raise ValueError(
      f"image_max={image_max!r} scales integer pixels, but the images are "
      f"{images.dtype} already: leave image_max=None"
    )
  return to_float(images, image_max)


def _loss_scale(opt_state) -> jax.Array | None:
  """The GradScaler's current scale when the optimizer is an ``optim.grad_scaler``, else None."""
  is_scaler = lambda x: isinstance(x, optim.GradScalerState)  # noqa: E731
  if not any(map(is_scaler, jax.tree.leaves(opt_state, is_leaf=is_scaler))):
    return None  # no loss scaling, as torch without a GradScaler
  return optim.loss_scale(opt_state)  # ValueError for several scalers


def _step_fn(
  model: nnx.Module,
  loss_fn: LossFn,
  optimizer,
  reduction: str,
  nan_policy: str | None = None,
  *,
  image_max: int | None = None,
  precision: str = "float32",
):
  """The pure, un-jitted step on ``model``'s training-mode graph."""
  _check_reduction(reduction)
  _check_nan_policy(nan_policy)
  amp.check_precision(precision)
  graphdef = _graphdef(model, train=True)

  def loss_and_aux(params, model_state, images, labels, scale):
    # torch.autocast: the float32 parameters and the images cast to the low
    # precision on the way into the model; the logits back to float32 for the loss.
    params, images = amp.autocast(params, _images(images, image_max), precision)
    net = nnx.merge(graphdef, params, model_state)
    logits = amp.float32_logits(net(images))
    loss = loss_fn(logits, labels, reduction=reduction)
    # GradScaler: the gradient of the scaled loss (its optimizer unscales it).
    scaled = loss if scale is None else loss * scale.astype(loss.dtype)
    return scaled, (loss, logits, nnx.state(net, nnx.Not(nnx.Param)))

  def step(state: TrainState, batch) -> tuple[TrainState, dict[str, jax.Array]]:
    images, labels = batch
    scale = _loss_scale(state.opt_state)
    (_, (loss, logits, model_state)), grads = jax.value_and_grad(loss_and_aux, has_aux=True)(
      state.params, state.model_state, images, labels, scale
    )
    # The model state (batch statistics, RNG counts) keeps its stored dtypes.
    model_state = jax.tree.map(
      lambda new, old: new.astype(old.dtype), model_state, state.model_state
    )
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = TrainState(params, model_state, opt_state, state.step + 1)
    metrics = _batch_metrics(loss, logits, labels, reduction)
    if scale is not None:
      # Updates the GradScaler skipped (an inf or NaN in the scaled gradients):
      # torch's recipe, counted per epoch like nan_policy's skips.
      metrics["scaler_skipped"] = optim.found_inf(opt_state).astype(jnp.int32)
    if nan_policy is None:
      return new_state, metrics
    # The logits too: a loss can be finite on NaN outputs (multi_margin_loss skips a
    # NaN score's terms, as torch's kernel does). With a loss scaler, inf and NaN
    # gradients are its business (it skips the update and backs off).
    finite = _all_finite(loss, logits) if scale is not None else _all_finite(loss, logits, grads)
    # A 0/1 flag per step: summed over an epoch it counts the bad steps, and the
    # per-step values (kept on the device) locate the first one, at no sync.
    metrics["nonfinite"] = jnp.logical_not(finite).astype(jnp.int32)
    if nan_policy == "skip":
      # optax.apply_if_finite's rule, over the whole state: a bad step leaves the
      # parameters, the optimizer state (moments, schedule count), the model state
      # and the step counter as they were. jnp.where selects, so a NaN in the
      # discarded branch does not leak. The skipped batch leaves the epoch's
      # metrics too: train loss and accuracy are over the applied updates.
      new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
      metrics = {
        k: jnp.where(finite, v, jnp.zeros_like(v)) if k != "nonfinite" else v
        for k, v in metrics.items()
      }
      metrics["skipped"] = metrics["nonfinite"]
    return new_state, metrics

  # The CPU forms of jaxtrain.ops in the program lowered for the CPU, the plain
  # lax ones in a GPU or TPU program: chosen at lowering time, per program.
  return ops.by_platform(step)


def _gather(images, labels, idx, sharding):
  """The batch ``(images[idx], labels[idx])`` from a split on the device, split like ``idx``."""
  return jax.lax.with_sharding_constraint((images[idx], labels[idx]), sharding)


def make_train_step(
  model: nnx.Module,
  loss_fn: LossFn,
  optimizer: optax.GradientTransformation,
  *,
  reduction: str = "mean",
  nan_policy: str | None = None,
  mesh: Mesh | None = None,
  image_max: int | None = None,
  precision: str = "float32",
):
  """``train_step(state, (images, labels)) -> (state, metrics)``, jit-compiled.

  Args:
    model: the NNX model (its structure; its values come from ``state``).
    loss_fn: a ``jaxtrain.losses`` function of ``(logits, labels, reduction=...)``.
    optimizer: any optax transformation (``jaxtrain.optim.sgd(...)``, ...).
    reduction: ``'mean'`` or ``'sum'``: the loss the gradient is taken of. With
      ``'sum'`` the gradient is ``batch_size`` times larger (docs/optimizers.md).
    nan_policy: ``None`` (no check), ``'stop'`` or ``'skip'``. Both add the metric
      ``nonfinite`` (1 when the loss, a logit or a gradient entry is NaN or infinite).
      ``'stop'`` applies the update anyway (the caller stops, see ``loop.fit``);
      ``'skip'`` leaves the whole state unchanged for such a step (as
      ``optax.apply_if_finite``), zeroes its other metrics and adds ``skipped``.
      With a loss scaler (``optim.grad_scaler``), only a non-finite loss counts:
      non-finite gradients are the scaler's to skip.
    mesh: the devices (``parallel.data_mesh()``, every device, if ``None``). The
      state is replicated on them; the batch ``(images (B, ...), labels (B,))``
      is split along ``B``, which must divide by the device count. Host (numpy)
      batches are split on the way in; with several processes pass
      ``parallel.put_batch`` arrays.
    image_max: for integer (uint8) images, the pixel value that means 1.0 (255,
      or the dataset's ``max_value``): the step divides by it on the device, as
      torchvision's ``ToTensor``. ``None`` for float images.
    precision: ``'float32'``, or ``'bf16'`` / ``'fp16'``: the model runs under
      ``torch.autocast(dtype=...)``'s rules (``jaxtrain.amp``); parameters and
      optimizer state stay float32. With ``'fp16'`` wrap the optimizer in
      ``optim.grad_scaler`` (torch's ``GradScaler``): the step then scales the loss
      by its current scale, and adds the metric ``scaler_skipped``.

  Returns:
    The compiled step. The input ``state`` is donated: do not use it afterwards.
    ``metrics`` holds ``loss`` (as the loss function returned it), ``loss_sum``,
    ``correct`` and ``count`` of the whole (global) batch, replicated on the devices.
  """
  mesh = parallel.data_mesh() if mesh is None else mesh
  step = _step_fn(
    model, loss_fn, optimizer, reduction, nan_policy, image_max=image_max, precision=precision
  )
  return _jit_training(step, mesh, parallel.batch_sharding(mesh))


def make_gather_step(
  model: nnx.Module,
  loss_fn: LossFn,
  optimizer: optax.GradientTransformation,
  *,
  reduction: str = "mean",
  nan_policy: str | None = None,
  mesh: Mesh | None = None,
  image_max: int | None = None,
  precision: str = "float32",
):
  """``step(state, images, labels, idx) -> (state, metrics)``: the batch taken on the device.

  The same step as ``make_train_step`` on the batch ``(images[idx], labels[idx])``,
  gathered inside the program from a split held on the device
  (``parallel.put_split``): each call sends only the ``(B,)`` int32 indices.
  ``idx`` is split over the mesh like a batch; the arguments are as for
  ``make_train_step``.
  """
  mesh = parallel.data_mesh() if mesh is None else mesh
  split = parallel.batch_sharding(mesh)
  step = _step_fn(
    model, loss_fn, optimizer, reduction, nan_policy, image_max=image_max, precision=precision
  )

  def gather_step(state, images, labels, idx):
    return step(state, _gather(images, labels, idx, split))

  return _jit_training(gather_step, mesh, split, split, split)


def make_epoch(
  model: nnx.Module,
  loss_fn: LossFn,
  optimizer: optax.GradientTransformation,
  *,
  reduction: str = "mean",
  nan_policy: str | None = None,
  mesh: Mesh | None = None,
  image_max: int | None = None,
  precision: str = "float32",
):
  """``epoch(state, images, labels, order) -> (state, metrics)``: a whole epoch, one program.

  ``order`` is an ``(num_batches, batch_size)`` int array of example indices (the
  epoch's shuffled order); each scan iteration gathers its batch from ``images``
  and ``labels``, which stay on the device across epochs. Returns the metrics
  summed over the epoch, plus ``batch_loss``: each batch's loss, ``(num_batches,)``,
  and with a ``nan_policy`` (see ``make_train_step``) ``batch_nonfinite``: each
  batch's 0/1 flag.

  On a ``mesh`` of several devices (every device if ``None``), ``images`` and
  ``labels`` are split along their first axis over the devices, each holding its
  share (``parallel.put_split``), ``order`` is split along its batch axis
  (``batch_size`` must divide by the device count) and each gathered batch is
  constrained to be split the same way: every step runs data-parallel. The
  other arguments are as for ``make_train_step``.
  """
  step = _step_fn(
    model, loss_fn, optimizer, reduction, nan_policy, image_max=image_max, precision=precision
  )
  mesh = parallel.data_mesh() if mesh is None else mesh
  split = parallel.batch_sharding(mesh)

  def epoch(state, images, labels, order):
    def body(state, idx):
      return step(state, _gather(images, labels, idx, split))

    state, per_batch = jax.lax.scan(body, state, order)
    totals = {k: jnp.sum(v) for k, v in per_batch.items()}
    totals["batch_loss"] = per_batch["loss"]
    if "nonfinite" in per_batch:
      totals["batch_nonfinite"] = per_batch["nonfinite"]
    return state, totals

  return _jit_training(
    ops.by_platform(epoch), mesh, split, split, parallel.batch_sharding(mesh, axis=1)
  )


def _jit_training(fn, mesh: Mesh, *arg_shardings):
  """``fn(state, *args) -> (state, metrics)`` compiled for ``mesh``: the state (donated)
  and the metrics replicated, the other arguments sharded as given."""
  rep = parallel.replicated(mesh)
  return jax.jit(
    fn,
    in_shardings=(rep, *arg_shardings),
    out_shardings=(rep, rep),
    donate_argnums=0,
    compiler_options=_xla_options.for_mesh(mesh),
  )


def _eval_fn(model: nnx.Module, loss_fn: LossFn, image_max: int | None, precision: str):
  """``eval(state, images, labels, mask) -> sums``: loss and accuracy of a batch, no gradient."""
  amp.check_precision(precision)
  graphdef = _graphdef(model, train=False)

  def evaluate(state: TrainState, images, labels, mask) -> dict[str, jax.Array]:
    params, images = amp.autocast(state.params, _images(images, image_max), precision)
    net = nnx.merge(graphdef, params, state.model_state)
    logits = amp.float32_logits(net(images))
    per_example = loss_fn(logits, labels, reduction="none")
    mask = mask.astype(per_example.dtype)
    return {
      "loss_sum": jnp.sum(per_example * mask),
      "correct": jnp.sum((jnp.argmax(logits, axis=-1) == labels) * mask),
      "count": jnp.sum(mask),
    }

  return evaluate


def make_eval_step(
  model: nnx.Module,
  loss_fn: LossFn,
  *,
  mesh: Mesh | None = None,
  image_max: int | None = None,
  precision: str = "float32",
):
  """``eval_step(state, (images, labels, mask)) -> metrics``: loss and accuracy, no gradient.

  The model runs in evaluation mode. ``mask`` (``(batch,)`` of 0/1) marks real
  examples, so a final partial batch can be padded to the compiled size (and any
  batch to a multiple of the device count: ``loop.evaluate`` does both); pass
  ``np.ones(batch, np.float32)`` for a full batch. Returns ``loss_sum`` (the
  summed per-example loss), ``correct`` and ``count``. The batch is split over
  ``mesh``, and ``image_max`` and ``precision`` act, as in ``make_train_step``.
  """
  mesh = parallel.data_mesh() if mesh is None else mesh
  rep = parallel.replicated(mesh)
  evaluate = _eval_fn(model, loss_fn, image_max, precision)

  def eval_step(state: TrainState, batch) -> dict[str, jax.Array]:
    return evaluate(state, *batch)

  return jax.jit(
    ops.by_platform(eval_step),
    in_shardings=(rep, parallel.batch_sharding(mesh)),
    out_shardings=rep,
    compiler_options=_xla_options.for_mesh(mesh),
  )


def make_eval_epoch(
  model: nnx.Module,
  loss_fn: LossFn,
  *,
  mesh: Mesh | None = None,
  image_max: int | None = None,
  precision: str = "float32",
):
  """``eval_epoch(state, images, labels, order, mask) -> metrics``: a whole split, one program.

  ``make_eval_step`` over the batches ``images[order[b]]`` of a split held on the
  device (``parallel.put_split``), summed: ``order`` is ``(num_batches, B)``
  indices and ``mask`` the matching ``(num_batches, B)`` 0/1 weights (0 for the
  padding of the last batch). Returns ``loss_sum``, ``correct`` and ``count``.
  """
  mesh = parallel.data_mesh() if mesh is None else mesh
  rep, split = parallel.replicated(mesh), parallel.batch_sharding(mesh)
  evaluate = _eval_fn(model, loss_fn, image_max, precision)

  def eval_epoch(state, images, labels, order, mask):
    def body(totals, batch):
      idx, weights = batch
      x, y = _gather(images, labels, idx, split)
      sums = evaluate(state, x, y, weights)
      return jax.tree.map(jnp.add, totals, sums), None

    zeros = {
      "loss_sum": jnp.zeros((), jnp.float32),
      "correct": jnp.zeros((), jnp.float32),
      "count": jnp.zeros((), jnp.float32),
    }
    return jax.lax.scan(body, zeros, (order, mask))[0]

  columns = parallel.batch_sharding(mesh, axis=1)
  return jax.jit(
    ops.by_platform(eval_epoch),
    in_shardings=(rep, split, split, columns, columns),
    out_shardings=rep,
    compiler_options=_xla_options.for_mesh(mesh),
  )
