"""Data parallelism over every device, on one host or several, with JAX's own SPMD machinery.

A training run is one SPMD program over a 1-D ``jax.sharding.Mesh`` whose single
axis, ``"data"``, spans the devices (all of ``jax.devices()`` by default: with
several processes, the devices of every process). Parameters and optimizer state
are replicated on every device (``NamedSharding(mesh, P())``); each batch is split
along its first axis (``NamedSharding(mesh, P("data"))``), so each device computes
the gradient of its rows and XLA inserts the all-reduce. One device is a 1-device
mesh: the same program::

  mesh = data_mesh()                       # every device
  check_batch_size(64, mesh)               # 64 must divide by the device count
  state = put_replicated(state, mesh)
  batch = put_batch((images, labels), mesh)  # or feed(...) for a jitted step

With several processes (hosts), each calls :func:`initialize` first, passes only
its own rows of each global batch (:func:`process_rows`) to :func:`put_batch`,
and the arrays are assembled with ``jax.make_array_from_process_local_data``.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA = "data"  # the mesh axis the batch is split along

# The environment variables ``initialize`` reads when a flag is not given. JAX
# itself reads JAX_COORDINATOR_ADDRESS (jax.distributed.initialize does), not the
# other two: jaxtrain reads all three, with the same names.
ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh with axis ``"data"`` over ``devices``.

  Args:
    devices: the devices, in mesh order; ``None`` means ``jax.devices()``: every
      device of every process.

  Returns:
    ``Mesh(devices, ("data",))``.

  Raises:
    ValueError: ``devices`` is empty.
  """
  devices = jax.devices() if devices is None else list(devices)
  if not devices:
    raise ValueError("devices must hold at least one device, got an empty sequence")
  return Mesh(np.asarray(devices, dtype=object), (DATA,))


def batch_sharding(mesh: Mesh, *, axis: int = 0) -> NamedSharding:
  """Split along ``axis`` over the mesh's ``"data"`` axis, replicated along the others."""
  return NamedSharding(mesh, P(*([None] * axis), DATA))


def replicated(mesh: Mesh) -> NamedSharding:
  """The same value on every device of ``mesh``."""
  return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: Mesh, *, name: str = "batch_size") -> None:
  """Raises ``ValueError`` unless ``batch_size`` divides by the mesh's device count.

  Each device takes ``batch_size / num_devices`` rows: the split must be even.

  Args:
    batch_size: the global batch size (all processes together).
    mesh: the data mesh.
    name: the argument's name in the message (``'batch_size'``, ``'--batch-size'``).
  """
  n = mesh.size
  if batch_size % n == 0:
    return
  below, above = batch_size // n * n, (batch_size // n + 1) * n
  nearest = f"{below} or {above}" if below else f"{above}"
  raise ValueError(
    f"{name}={batch_size} does not divide by the {n} devices of the data mesh (each device "
    f"takes an equal share of the batch); use a multiple of {n}, e.g. {nearest}"
  )


def padded_size(n: int, mesh: Mesh) -> int:
  """``n`` rounded up to a multiple of the mesh's device count."""
  return -(-n // mesh.size) * mesh.size


def process_rows(batch_size: int, mesh: Mesh, *, axis: int = 0) -> slice | np.ndarray:
  """The rows of a global batch of ``batch_size`` that this process's devices hold.

  With one process, every row: ``slice(0, batch_size)``. With several, process
  ``p`` of ``P`` (devices in ``jax.devices()`` order) holds the contiguous rows
  ``[p * batch_size / P, (p + 1) * batch_size / P)``; a mesh whose devices
  interleave processes gives an index array, in increasing order (the order
  ``jax.make_array_from_process_local_data`` expects).

  Args:
    batch_size: the global batch size; it must divide by the device count.
    mesh: the data mesh.
    axis: the batch axis (``1`` for a scan epoch's ``(num_batches, batch)`` order).
  """
  check_batch_size(batch_size, mesh)
  if jax.process_count() == 1:
    return slice(0, batch_size)
  shape = (1,) * axis + (batch_size,)
  index_map = batch_sharding(mesh, axis=axis).addressable_devices_indices_map(shape)
  starts = sorted({index[axis].start or 0 for index in index_map.values()})
  per_device = batch_size // mesh.size
  rows = np.concatenate([np.arange(s, s + per_device) for s in starts])
  if len(rows) and np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
    return slice(int(rows[0]), int(rows[0]) + len(rows))
  return rows


def put_batch(batch: Any, mesh: Mesh, *, axis: int = 0) -> Any:
  """A global batch on the mesh, split along ``axis``, from this process's rows.

  Args:
    batch: a pytree of host arrays (numpy) holding this process's rows of the
      global batch along ``axis`` (:func:`process_rows`); with one process, the
      whole batch.
    mesh: the data mesh.
    axis: the batch axis of every leaf.

  Returns:
    The same pytree of ``jax.Array``, each of global size ``local size x
    num_processes`` along ``axis``, sharded as ``batch_sharding(mesh, axis=axis)``.
  """
  sharding = batch_sharding(mesh, axis=axis)
  if jax.process_count() == 1:
    return jax.device_put(batch, sharding)
  processes = len({d.process_index for d in mesh.devices.flat})

  def put(x):
    x = np.asarray(x)
    shape = x.shape[:axis] + (x.shape[axis] * processes,) + x.shape[axis + 1 :]
    return jax.make_array_from_process_local_data(sharding, x, shape)

  return jax.tree.map(put, batch)


def feed(batch: Any, mesh: Mesh, *, axis: int = 0) -> Any:
  """This process's rows of a global batch, as a step jitted with ``batch_sharding`` takes them.

  With one process: ``batch`` itself (numpy); the jitted function splits it over
  the devices on the way in, its fastest path (an explicit ``jax.device_put``
  first adds a dispatch of its own to every call). With several
  processes: :func:`put_batch` (a jitted function takes only global arrays then).
  """
  return batch if jax.process_count() == 1 else put_batch(batch, mesh, axis=axis)


def put_replicated(tree: Any, mesh: Mesh) -> Any:
  """``tree``'s arrays copied onto every device of ``mesh`` (new buffers, never aliases).

  With several processes, every process must pass the same values (e.g. a model
  built from the same seed, a checkpoint read from a shared filesystem); each
  process's devices get its own copy, no data crosses processes.
  """
  sharding = replicated(mesh)
  if jax.process_count() == 1:
    # Copies first: device_put(..., may_alias=False) onto several devices still
    # reuses the source's buffer for the first device (jax 0.10.2, measured), and
    # a donating train step would then delete the caller's array.
    fresh = jax.tree.map(lambda x: jnp.copy(x) if isinstance(x, jax.Array) else x, tree)
    return jax.device_put(fresh, sharding)

  def put(x):
    host = np.asarray(x.addressable_data(0) if isinstance(x, jax.Array) else x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

  return jax.tree.map(put, tree)


def put_split(images: np.ndarray, labels: np.ndarray, mesh: Mesh) -> tuple[jax.Array, jax.Array]:
  """A whole split on the mesh, split along its examples: each device holds ``1 / devices`` of it.

  The arrays keep their dtypes (uint8 images stay uint8). ``N`` is padded with
  zero examples to a multiple of the device count (an even split); no index of
  a batch points at the padding. Every process passes the whole split (each
  loads the dataset) and places the rows of its own devices.

  Args:
    images: ``(N, ...)`` host array.
    labels: ``(N,)`` host array.
    mesh: the data mesh.

  Returns:
    ``(images, labels)`` as ``jax.Array``s of ``N`` rounded up to a multiple of
    the device count, sharded as ``batch_sharding(mesh)``.
  """
  sharding = batch_sharding(mesh)
  padded = padded_size(len(labels), mesh)

  def put(x):
    x = np.asarray(x)
    if len(x) != padded:
      x = np.concatenate([x, np.zeros((padded - len(x),) + x.shape[1:], x.dtype)])
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

  return put(images), put(labels)


def device_memory_free(mesh: Mesh) -> int | None:
  """The smallest free memory of the mesh's devices in bytes; ``None`` where JAX does not say.

  GPUs and TPUs report ``bytes_limit`` and ``bytes_in_use`` (``Device.memory_stats``);
  the CPU reports nothing (its "device memory" is the host's).
  """
  free = []
  for device in mesh.devices.flat:
    if device.process_index != jax.process_index():
      continue
    stats = device.memory_stats()
    if not stats or "bytes_limit" not in stats:
      return None
    free.append(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
  return min(free) if free else None


def prefetch(batches: Iterable[Any], mesh: Mesh, *, depth: int = 2) -> Iterator[Any]:
  """Host batches on the mesh ``depth`` batches ahead of the consumer.

  A worker thread draws the next batches from ``batches`` (gathering them on the
  host) and starts their copies to the devices (``put_batch``) while the caller's
  step runs, so the step finds its batch already there.

  Args:
    batches: host batches (pytrees of numpy arrays with this process's rows).
    mesh: the data mesh.
    depth: batches in flight.

  Yields:
    The batches, in order, as ``put_batch`` arrays.
  """
  iterator = iter(batches)
  done = object()

  def next_on_device():
    batch = next(iterator, done)
    return done if batch is done else put_batch(batch, mesh)

  with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="jaxtrain-prefetch") as pool:
    queue = collections.deque(pool.submit(next_on_device) for _ in range(depth))
    while True:
      batch = queue.popleft().result()
      if batch is done:
        return
      queue.append(pool.submit(next_on_device))
      yield batch


def process_local(tree: Any) -> Any:
  """This process's copy of a tree of replicated arrays: single-device, fully addressable.

  Arrays that are already fully addressable (one process) are returned as they are.

  Raises:
    ValueError: a leaf spans several processes and is not replicated.
  """

  def local(x):
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
      return x
    if not x.is_fully_replicated:
      raise ValueError(
        f"process_local needs replicated arrays; got one of shape {x.shape} sharded as {x.sharding}"
      )
    return x.addressable_data(0)

  return jax.tree.map(local, tree)


def is_main_process() -> bool:
  """True on process 0: the one that prints and writes the run folder."""
  return jax.process_index() == 0


def _env_int(name: str) -> int | None:
  value = os.environ.get(name)
  if value is None or value == "":
    return None
  try:
    return int(value)
  except ValueError:
    raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def initialize(
  coordinator_address: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
  *,
  auto: bool = False,
) -> bool:
  """Joins a multi-process run (``jax.distributed.initialize``) if one is asked for.

  Each argument left ``None`` is read from the environment: ``JAX_COORDINATOR_ADDRESS``,
  ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``. If any of the three is then set (or
  ``auto``), ``jax.distributed.initialize`` is called with them; JAX fills the
  ones still unset from the cluster it detects (Cloud TPU, SLURM, Open MPI), and
  raises ``ValueError`` if it detects none. If none is set and not ``auto``,
  nothing happens: a single-process run.

  Must run before anything touches JAX's devices (``jax.devices()``, any array).
  Multi-process CPU runs use JAX's default CPU collectives, gloo over TCP.

  Args:
    coordinator_address: ``'host:port'`` of process 0, where it serves the
      coordination service; every process passes the same.
    num_processes: the number of processes, ``>= 1``.
    process_id: this process's index, ``0 <= process_id < num_processes``.
    auto: initialize even with nothing set (JAX detects everything).

  Returns:
    Whether ``jax.distributed.initialize`` was called.

  Raises:
    ValueError: a malformed address, or counts out of range (the message names
      the argument or the environment variable).
  """
  if coordinator_address is None:
    coordinator_address = os.environ.get(ENV_COORDINATOR) or None
  if num_processes is None:
    num_processes = _env_int(ENV_NUM_PROCESSES)
  if process_id is None:
    process_id = _env_int(ENV_PROCESS_ID)
  if not auto and (coordinator_address, num_processes, process_id) == (None, None, None):
    return False
  if coordinator_address is not None:
    host, _, port = coordinator_address.rpartition(":")
    if not host or not port.isdigit():
      raise ValueError(
        f"coordinator_address={coordinator_address!r} is not valid; expected "
        "'host:port' of process 0, e.g. '10.0.0.1:1234'"
      )
  if num_processes is not None and (isinstance(num_processes, bool) or num_processes < 1):
    raise ValueError(f"num_processes must be a positive integer, got {num_processes!r}")
  if process_id is not None:
    if isinstance(process_id, bool) or process_id < 0:
      raise ValueError(f"process_id must be a non-negative integer, got {process_id!r}")
    if num_processes is not None and process_id >= num_processes:
      raise ValueError(
        f"process_id={process_id} is not below num_processes={num_processes} "
        "(processes are numbered 0 to num_processes - 1)"
      )
  # jax raises RuntimeError if its backend is already initialized.
  jax.distributed.initialize(coordinator_address, num_processes, process_id)
  return True
