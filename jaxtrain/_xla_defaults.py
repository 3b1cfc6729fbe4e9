"""XLA settings jaxtrain chooses for its users, applied when ``jaxtrain`` is imported.

One setting today, for the CPU backend (jaxlib 0.10): convolutions run on
XLA's Eigen kernels instead of YNNPACK (the default for convolutions in this
jaxlib): ``--xla_cpu_experimental_ynn_fusion_type=-individual_convolution``.
On a 2-core AVX-512 CPU the notes' CIFAR-10 CNN step (batch 64) went from
22.5 ms to 18.4 ms with it (benchmarks/RESULTS.md); YNNPACK's convolutions use
the second core poorly. It changes nothing on GPU/TPU, nor for models without
convolutions.

Rules:
* A flag the user set in ``XLA_FLAGS`` wins: a setting is added only when
  ``XLA_FLAGS`` does not mention it.
* ``JAXTRAIN_XLA_DEFAULTS=0`` in the environment turns all of this off.
* XLA reads ``XLA_FLAGS`` once, when the first backend starts: importing
  ``jaxtrain`` after running a JAX computation leaves the flags as they were
  (:func:`applied` says whether they took effect).
"""

from __future__ import annotations

import os

# flag name -> the value jaxtrain wants.
DEFAULTS = {
    "xla_cpu_experimental_ynn_fusion_type": "-individual_convolution",
}

_added: list[str] = []
_too_late = [False]


def _backends_started() -> bool:
  try:
    from jax._src import xla_bridge
    return xla_bridge.backends_are_initialized()
  except (ImportError, AttributeError):  # another jax: assume in time
    return False


def apply() -> list[str]:
  """Adds jaxtrain's defaults to ``XLA_FLAGS`` (see the module docstring).

  Returns:
    The flags added by this call (none when turned off or all set by the user).
  """
  if os.environ.get("JAXTRAIN_XLA_DEFAULTS", "1") == "0":
    return []
  flags = os.environ.get("XLA_FLAGS", "")
  added = [f"--{name}={value}" for name, value in DEFAULTS.items() if name not in flags]
  if added:
    os.environ["XLA_FLAGS"] = " ".join([flags, *added]).strip()
    _added.extend(added)
    _too_late[0] = _too_late[0] or _backends_started()
  return added


def applied() -> bool:
  """False when jaxtrain added a flag after a JAX backend had started (not in force)."""
  return not (_added and _too_late[0])
