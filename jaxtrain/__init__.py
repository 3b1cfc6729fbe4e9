"""jaxtrain: PyTorch's training toolkit as pure JAX functions, with torch's semantics."""

from jaxtrain import losses, optim

__version__ = "0.1.0"
