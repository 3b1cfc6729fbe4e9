"""jaxtrain: PyTorch's training toolkit as pure JAX functions, with torch's semantics."""

from jaxtrain import losses
from jaxtrain import optim

__version__ = "0.1.0"
