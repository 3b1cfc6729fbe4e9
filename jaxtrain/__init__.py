"""jaxtrain: PyTorch's training toolkit as pure JAX functions, with torch's semantics."""

from jaxtrain import _xla_defaults

_xla_defaults.apply()  # before any JAX backend starts: see jaxtrain/_xla_defaults.py

from jaxtrain import losses  # noqa: E402
from jaxtrain import optim  # noqa: E402

__version__ = "0.1.0"
