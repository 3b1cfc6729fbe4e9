import atexit
import itertools
import os
import shutil
import subprocess
import sys
import tempfile

# One persistent compilation cache for the whole session: this process, pytest-xdist's
# workers (they inherit the environment) and the subprocesses tests start (the command
# line, the killed and resumed runs, the docs' blocks), which compile the same programs
# again and again. Set before jax is imported; removed when the session ends. The
# cache returns the very executable XLA compiled, so no result changes. A size limit
# (far above what the suite writes) makes jax lock the folder around each read and
# write: without one, a process may read an entry another is still writing.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _cache = tempfile.mkdtemp(prefix="jaxtrain-tests-xla-cache-")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
  os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"] = str(8 << 30)
  atexit.register(shutil.rmtree, _cache, True)

import jax  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# Tests import their shared helpers (oracle.py) as plain modules.
sys.path.insert(0, os.path.dirname(__file__))

# The scripts tests run in subprocesses: not modules to collect (--doctest-modules
# would import, and so run, them).
collect_ignore = ["scripts"]

# The torch-parity tests compare float32 matmuls and convolutions at float32
# tolerance: they assume float32 arithmetic, the CPU's default, where a GPU would
# use TF32 and a TPU bfloat16 passes by default. Set here so that the suite means
# the same on every backend (and in the subprocesses tests start).
jax.config.update("jax_default_matmul_precision", "highest")
os.environ["JAX_DEFAULT_MATMUL_PRECISION"] = "highest"


@pytest.fixture(scope="module")
def one_torch_thread():
  """torch on one thread for a module: steadier, and fair to the other core's work."""
  threads = torch.get_num_threads()
  torch.set_num_threads(1)
  yield
  torch.set_num_threads(threads)


@pytest.fixture
def tmpfs(tmp_path):
  """``tmpfs(options)``: a tmpfs mounted with ``options`` (``"size=48k"``, ``"size=1m,ro"``)
  on a new folder under ``tmp_path``: a real full or read-only filesystem. ``None`` where
  this machine does not allow mounting (not Linux, not root). Unmounted at the end."""
  names, mounted = itertools.count(), []

  def mount(options):
    path = tmp_path / f"tmpfs{next(names)}"
    path.mkdir()
    if not sys.platform.startswith("linux") or shutil.which("mount") is None:
      return None
    command = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)]
    if subprocess.run(command, capture_output=True).returncode != 0:
      return None
    mounted.append(path)
    return path

  yield mount
  for path in mounted:
    if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
      # Busy: a file left open by a failed test. Detached now, freed once closed.
      subprocess.run(["umount", "--lazy", str(path)], check=True)
