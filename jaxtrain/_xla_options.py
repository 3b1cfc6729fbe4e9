"""XLA compiler options jaxtrain passes to its own CPU programs, one program at a time.

jaxtrain configures nothing in the process: no ``XLA_FLAGS``, no ``jax.config``.
Its jitted programs (the train step, the scanned epoch, the eval step) are
compiled with :func:`for_mesh`'s ``compiler_options`` instead, which are empty
unless every device of the program's mesh is a CPU, so GPU and TPU programs are
compiled exactly as JAX would compile them.

One option today, for XLA:CPU: convolutions run on XLA's Eigen kernels instead
of YNNPACK, the default for convolutions in jaxlib 0.10, whose convolutions use a
2-core machine's second core poorly (figures in benchmarks/RESULTS.md). The
option's value replaces XLA's whole default list of YNNPACK fusion kinds, which
is particular to a jaxlib release, so it is applied only on the jaxlib releases
it was measured on (``MEASURED_ON``).

Rules:

* An option named in the user's ``XLA_FLAGS`` is left to the user.
* ``JAXTRAIN_XLA_DEFAULTS=0`` in the environment turns the options off.
* An option the running jaxlib rejects is detected once per process (a tiny
  program is compiled with it), a warning says so, and programs are compiled
  without it: training never stops for it.
"""

from __future__ import annotations

import functools
import os
import warnings

import jax
from jax.sharding import Mesh

# Option -> value, for programs on CPU devices.
CPU_OPTIONS = {
  "xla_cpu_experimental_ynn_fusion_type": (
    "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"
  ),
}
# The jaxlib (major, minor) releases CPU_OPTIONS' values were measured on.
MEASURED_ON = ((0, 10),)

ENV_SWITCH = "JAXTRAIN_XLA_DEFAULTS"


def _jaxlib_release() -> tuple[int, ...]:
  import jaxlib  # noqa: PLC0415

  return tuple(int(part) for part in jaxlib.__version__.split(".")[:2])


def wanted(platform: str) -> dict[str, str]:
  """The options jaxtrain would pass to a program for ``platform``, before the jaxlib check."""
  if platform != "cpu" or os.environ.get(ENV_SWITCH, "1") == "0":
    return {}
  if _jaxlib_release() not in MEASURED_ON:
    return {}
  user_flags = os.environ.get("XLA_FLAGS", "")
  return {name: value for name, value in CPU_OPTIONS.items() if name not in user_flags}


@functools.cache
def _accepted(platform: str, name: str, value: str) -> bool:
  """Whether this process's jaxlib compiles a program for ``platform`` with the option."""
  device = jax.devices(platform)[0]
  arg = jax.ShapeDtypeStruct((), "float32", sharding=jax.sharding.SingleDeviceSharding(device))
  try:
    jax.jit(lambda x: x + 1, compiler_options={name: value}).lower(arg).compile()
  except Exception as e:  # noqa: BLE001  (JaxRuntimeError INVALID_ARGUMENT, or a newer type)
    warnings.warn(
      f"jaxtrain: this jaxlib rejects the XLA option {name}={value} "
      f"({' '.join(str(e).split())[:200]}); compiling without it (set {ENV_SWITCH}=0 to "
      "silence this)",
      RuntimeWarning,
      stacklevel=3,
    )
    return False
  return True


def for_platform(platform: str) -> dict[str, str] | None:
  """The ``compiler_options`` for a program on ``platform``: ``None`` when there are none."""
  options = {
    name: value for name, value in wanted(platform).items() if _accepted(platform, name, value)
  }
  return options or None


def for_mesh(mesh: Mesh) -> dict[str, str] | None:
  """The ``compiler_options`` for a program on ``mesh``: jaxtrain's CPU options when all its
  devices are CPUs, else ``None``."""
  platforms = {d.platform for d in mesh.devices.flat}
  return for_platform(platforms.pop()) if len(platforms) == 1 else None


def backends_started() -> bool:
  """Whether JAX has started a backend (after which XLA's thread pool size is fixed)."""
  try:
    from jax._src import xla_bridge  # noqa: PLC0415

    return xla_bridge.backends_are_initialized()
  except (ImportError, AttributeError):  # another jax: assume not
    return False
