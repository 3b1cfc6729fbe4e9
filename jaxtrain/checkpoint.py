"""Checkpoints of a :class:`~jaxtrain.train_step.TrainState`, one per epoch, with orbax.

``Checkpointer`` keeps the last ``keep`` epochs of a run in a directory::

  ckpt = Checkpointer("runs/cnn", keep=3)
  ckpt.save(epoch, state, {"config": dataclasses.asdict(config), "seed": 0})
  ...
  state, meta = ckpt.restore(create_train_state(model, optimizer))  # the latest epoch

Each epoch is an orbax step directory ``DIR/<epoch>/`` holding two items: ``state``
(the arrays, orbax's ``StandardSave``: tensorstore/OCDBT files) and ``meta`` (a
JSON file, ``JsonSave``). No file format is written here by hand.

The ``nnx.State`` containers inside a ``TrainState`` (``params``, ``model_state``
and the optimizer's moment trees) are pytrees and round-trip through orbax as they
are in flax 0.12.8 / orbax 0.12.8: restoring against a ``like`` state of the same
structure rebuilds them, ``nnx.Param`` wrappers included, so no conversion to pure
dicts is needed.

In a multi-process run (``jaxtrain.parallel.initialize``) each process's
``Checkpointer`` is its own (orbax's ``active_processes`` is that process alone):
the state is replicated, so process 0 alone saves, from its own replica, and any
process can restore by reading the files, which must then be on a filesystem it
sees; the restored arrays are placed as the ``like`` state's (replicated on every
device of every process).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxtrain import parallel
from jaxtrain.reporting import OutputError
from jaxtrain.train_step import TrainState

# The names of the two items in each step directory.
_STATE = "state"
_META = "meta"


class _DropReadOnlyNotice(logging.Filter):
  """Drops orbax's warning that a read-only manager's directory is read-only (we asked)."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Given directory is read only")


@contextlib.contextmanager
def _quiet_read_only():
  # orbax logs through absl to the 'absl' logger, unconditionally for read_only=True;
  # the evaluate CLI must keep stderr to its one line. Only that message is dropped.
  logger, f = logging.getLogger("absl"), _DropReadOnlyNotice()
  logger.addFilter(f)
  try:
    yield
  finally:
    logger.removeFilter(f)


def _manager(directory: str, *, keep: int | None, read_only: bool) -> ocp.CheckpointManager:
  multiprocess = {}
  if jax.process_count() > 1:
    # This process alone: no barrier with the others (process 0 saves alone, any
    # process restores alone). orbax cannot create the root directory in this
    # mode (create=False); Checkpointer creates it.
    me = jax.process_index()
    multiprocess = dict(
      multiprocessing_options=ocp.options.MultiprocessingOptions(
        primary_host=me, active_processes={me}, barrier_sync_key_prefix=f"jaxtrain_p{me}"
      )
    )
  options = ocp.CheckpointManagerOptions(
    # read_only: the options that only matter for writing are left at the values
    # orbax forces for read-only managers (else it warns that it overrides them).
    max_to_keep=None if read_only else keep,
    save_interval_steps=0 if read_only else 1,
    create=not read_only and not multiprocess,
    read_only=read_only,
    # A save interrupted by a crash leaves a '<epoch>.orbax-checkpoint-tmp-*'
    # directory, never listed as a checkpoint; clean such leftovers on start.
    cleanup_tmp_directories=not read_only,
    # Explicit rather than relying on orbax's per-filesystem default: write to a
    # temporary directory, then rename it to '<epoch>' once everything is on disk.
    temporary_path_class=ocp.path.atomicity.AtomicRenameTemporaryPath,
    **multiprocess,
  )
  with _quiet_read_only() if read_only else contextlib.nullcontext():
    return ocp.CheckpointManager(directory, options=options, item_names=(_STATE, _META))


def _abstract(like: TrainState):
  """``like`` as shapes, dtypes and shardings: the restore target, without reading its buffers.

  ``like`` may be a state whose buffers a donating train step has already consumed;
  shape, dtype and sharding survive that, the values are not needed.
  """

  def leaf(x):
    if isinstance(x, jax.Array):
      # A replicated array spanning several processes is restored into this
      # process's first device, then placed (see Checkpointer.restore).
      sharding = (
        x.sharding
        if x.is_fully_addressable
        else jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
      )
      return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)
    x = np.asarray(x)
    return jax.ShapeDtypeStruct(x.shape, x.dtype)

  return jax.tree.map(leaf, like)


def _savable(state: TrainState):
  """``state``, or with several processes this process's replica as numpy arrays.

  orbax saves a ``jax.Array`` from every process holding a part of it, and
  refuses single-device (host-local) arrays in a multi-process run; numpy arrays
  it saves from the primary host, here this process alone. The files are the
  same either way (restoring gives ``jax.Array``s placed as the target says).
  """
  if jax.process_count() == 1:
    return state
  return jax.tree.map(np.asarray, parallel.process_local(state))


def _place_like(restored, like):
  """``restored`` on ``like``'s devices when those span several processes (replicated)."""
  if not isinstance(like, jax.Array) or like.is_fully_addressable:
    return restored
  host = np.asarray(restored)
  return jax.make_array_from_callback(host.shape, like.sharding, lambda index: host[index])


def _no_checkpoint(directory: str, epoch: int | None, epochs: list[int]) -> FileNotFoundError:
  if epoch is None or not epochs:
    return FileNotFoundError(f"no checkpoint in {directory}")
  return FileNotFoundError(
    f"no checkpoint for epoch {epoch} in {directory}; saved epochs: " + ", ".join(map(str, epochs))
  )


class Checkpointer:
  """Saves and restores a run's ``TrainState`` after each epoch, keeping the last ``keep``.

  A thin layer over ``orbax.checkpoint.CheckpointManager`` whose steps are epochs.

  Args:
    directory: where the checkpoints go; created if missing.
    keep: how many of the latest epochs to keep (older ones are deleted after each
      save); at least 1.
    read_only: only restore: the directory must exist, nothing is created, deleted
      or cleaned (safe while a training run is saving into it), ``save`` raises.
    asynchronous: ``save`` returns once the state is copied to host memory, and
      orbax writes the files in a background thread (orbax's asynchronous
      checkpointing) while the caller goes on; the next ``save``, ``close`` and
      ``wait`` wait for it (and raise its error, if the write failed). The commit
      stays atomic: a checkpoint is listed only once completely written.

  Raises:
    ValueError: if ``keep < 1``.
    FileNotFoundError: if ``read_only`` and ``directory`` does not exist.
  """

  def __init__(
    self,
    directory: str | os.PathLike,
    *,
    keep: int = 3,
    read_only: bool = False,
    asynchronous: bool = False,
  ):
    if not isinstance(keep, int) or keep < 1:
      raise ValueError(f"keep must be a positive integer, got {keep!r}")
    # orbax wants absolute paths (it resolves them against its own notion of cwd).
    self.directory = os.path.abspath(os.fspath(directory))
    self.keep = keep
    self.read_only = read_only
    self.asynchronous = asynchronous
    self._pending: int | None = None  # the epoch of a save that may still be writing
    if read_only:
      if not os.path.isdir(self.directory):
        raise FileNotFoundError(f"no checkpoint directory {self.directory}")
    else:
      try:
        os.makedirs(self.directory, exist_ok=True)
      except OSError as e:
        raise OutputError(self.directory, e) from e
    self._manager = _manager(self.directory, keep=keep, read_only=read_only)

  def save(self, epoch: int, state: TrainState, meta: dict[str, Any]) -> None:
    """Saves ``state`` and ``meta`` as the checkpoint of epoch ``epoch``.

    Unless the Checkpointer is ``asynchronous``, returns once on disk (orbax's
    ``wait_until_finished``), so a crash after ``save`` returns never loses this
    checkpoint; asynchronous, it returns once the state is copied to the host, and
    a crash before the write ends leaves the previous checkpoint the latest. The
    write is atomic: orbax
    writes into ``DIR/<epoch>.orbax-checkpoint-tmp-*`` and renames it to
    ``DIR/<epoch>`` only once the arrays, the JSON and a ``commit_success.txt`` are
    written (``AtomicRenameTemporaryPath``, set explicitly). A crash mid-save leaves
    at most a temporary directory, which is never listed as a checkpoint and is
    removed when the next ``Checkpointer`` opens the directory. After the save,
    epochs beyond the last ``keep`` are deleted.

    Args:
      epoch: the epoch just finished, 1-based; greater than every saved epoch.
      state: the state after that epoch. It is read, not consumed: it stays usable.
      meta: a JSON-serialisable dict (the run's config, the epoch's metrics, the
        seed...). Tuples come back as lists.

    Raises:
      ValueError: if ``epoch`` is not after the latest saved epoch (orbax would
        silently skip the save otherwise).
      TypeError: if ``meta`` is not JSON-serialisable.
      OutputError: the write failed (disk full, read-only, no permission), this
        one or, asynchronously, the previous one; one line naming the epoch.
    """
    if self.read_only:
      raise ValueError(f"cannot save in {self.directory}: the Checkpointer is read-only")
    if not isinstance(epoch, (int, np.integer)) or epoch < 0:
      raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
    epoch = int(epoch)
    latest = self.latest_epoch()
    if latest is not None and epoch <= latest:
      # CheckpointManager.save returns False, writing nothing, for a step at or
      # before the latest one: make that an error rather than a lost checkpoint.
      raise ValueError(
        f"cannot save epoch {epoch} in {self.directory}: epoch {latest} is already saved "
        "(epochs must increase; delete the later checkpoints to rewind a run)"
      )
    # Fail before anything is written, with the key in the message.
    try:
      json.dumps(meta)
    except TypeError as e:
      raise TypeError(f"meta must be JSON-serialisable: {e}") from e
    with self._writing(epoch):
      saved = self._manager.save(
        epoch,
        args=ocp.args.Composite(
          **{_STATE: ocp.args.StandardSave(_savable(state)), _META: ocp.args.JsonSave(meta)}
        ),
      )
    self._pending = epoch
    if not self.asynchronous:
      self.wait()
    if not saved:  # Should not happen given the check above; never lose a save silently.
      raise RuntimeError(f"orbax declined to save epoch {epoch} in {self.directory}")

  def wait(self) -> None:
    """Returns once every save is on disk.

    Raises:
      OutputError: a save failed (disk full, read-only, no permission): one line
        naming the epoch and the directory; the checkpoints committed before it
        are intact.
    """
    with self._writing(self._pending):
      self._manager.wait_until_finished()
    self._pending = None

  @contextlib.contextmanager
  def _writing(self, epoch: int | None):
    """Turns orbax's and tensorstore's write errors into one ``OutputError`` naming the epoch."""
    try:
      yield
    except OutputError:
      raise
    except (OSError, ValueError, RuntimeError) as e:
      if epoch is None and not isinstance(e, OSError):
        raise
      # tensorstore reports a full disk as ValueError('RESOURCE_EXHAUSTED: ... No space
      # left on device'): one line of it, under the epoch's checkpoint folder.
      error = e if isinstance(e, OSError) else OSError(None, " ".join(str(e).split()))
      raise OutputError(os.path.join(self.directory, str(epoch)), error) from e

  def all_epochs(self) -> list[int]:
    """The saved epochs, in increasing order (after any save still being written).

    A save in flight ends first: orbax's background thread deletes checkpoints beyond
    ``keep`` as it commits, and listing the folder meanwhile could see a step folder
    that is gone a moment later. That save's error, if any, is raised here, under its
    own epoch.
    """
    if self._pending is not None:
      self.wait()
    self._manager.reload()
    return sorted(self._manager.all_steps())

  def latest_epoch(self) -> int | None:
    """The latest saved epoch, or ``None`` if there is none."""
    epochs = self.all_epochs()
    return epochs[-1] if epochs else None

  def restore(self, like: TrainState, epoch: int | None = None) -> tuple[TrainState, dict]:
    """The state and meta saved after ``epoch`` (the latest if ``None``).

    Args:
      like: a ``TrainState`` of the saved structure, e.g.
        ``create_train_state(model, optimizer)`` for the run's model and optimizer.
        Only its structure, shapes, dtypes and shardings are used.

    Returns:
      ``(state, meta)``: ``state`` has exactly ``like``'s pytree structure and dtypes,
      its arrays bit-identical to the saved ones.

    Raises:
      FileNotFoundError: if there is no checkpoint (for ``epoch``) in the directory.
    """
    step = self._resolve(epoch)
    restored = self._manager.restore(
      step,
      args=ocp.args.Composite(
        **{_STATE: ocp.args.StandardRestore(_abstract(like)), _META: ocp.args.JsonRestore()}
      ),
    )
    return jax.tree.map(_place_like, restored[_STATE], like), dict(restored[_META])

  def read_meta(self, epoch: int | None = None) -> dict:
    """The meta dict of ``epoch`` (the latest if ``None``), without reading the arrays.

    Raises:
      FileNotFoundError: if there is no checkpoint (for ``epoch``) in the directory.
    """
    step = self._resolve(epoch)
    restored = self._manager.restore(
      step, args=ocp.args.Composite(**{_META: ocp.args.JsonRestore()})
    )
    return dict(restored[_META])

  def _resolve(self, epoch: int | None) -> int:
    """The saved epoch ``epoch`` names (``None``: the latest), or FileNotFoundError."""
    epochs = self.all_epochs()
    step = epochs[-1] if (epoch is None and epochs) else epoch
    if step not in epochs:
      raise _no_checkpoint(self.directory, epoch, epochs)
    return step

  def close(self) -> None:
    """Waits for any pending write and releases orbax's resources."""
    try:
      self.wait()
    finally:
      self._manager.close()

  def __enter__(self) -> Checkpointer:
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def read_meta(directory: str | os.PathLike, epoch: int | None = None) -> dict:
  """The meta dict saved with a checkpoint (the latest if ``epoch`` is ``None``).

  Reads only the JSON item: no state, model or optimizer is needed.

  Raises:
    FileNotFoundError: if ``directory`` does not exist or holds no checkpoint (for ``epoch``).
  """
  # Read-only: opening a directory to look must not create or clean anything.
  with Checkpointer(directory, read_only=True) as ckpt:
    return ckpt.read_meta(epoch)
