"""The in-memory dataset every loader returns: numpy arrays per split.

A dataset is small enough to hold whole in host memory (the largest, CIFAR-10's
50,000 training images, is 614 MB as float32), so a split is two arrays and an
epoch is a permutation of their first axis. This replaces torch's
``Dataset`` + ``DataLoader`` pair: the pixels are already what torchvision's
``transforms.ToTensor()`` would give (``uint8 / 255`` as float32), but
channels-last, ``(N, H, W, C)``, the layout of JAX's convolutions.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
  """One split of a dataset: images and their class labels.

  ``len(split)`` is the number of examples, as ``len`` of a torch ``Dataset``.

  Attributes:
    images: ``(N, H, W, C)`` float32 in ``[0, 1]``, channels last.
    labels: ``(N,)`` int32 class indices in ``[0, num_classes)``.
  """

  images: np.ndarray
  labels: np.ndarray

  def __post_init__(self):
    # Cheap checks so a hand-built split fails here, not inside a compiled step.
    if not isinstance(self.images, np.ndarray) or self.images.ndim != 4:
      raise ValueError(
          f"images must be a (N, H, W, C) numpy array, got shape {np.shape(self.images)}")
    if not isinstance(self.labels, np.ndarray) or self.labels.ndim != 1:
      raise ValueError(f"labels must be a (N,) numpy array, got shape {np.shape(self.labels)}")
    if self.images.shape[0] != self.labels.shape[0]:
      raise ValueError(
          f"images and labels disagree on N: images {self.images.shape}, "
          f"labels {self.labels.shape}")
    if self.images.dtype != np.float32:
      raise TypeError(f"images must be float32, got {self.images.dtype}")
    if self.labels.dtype != np.int32:
      raise TypeError(f"labels must be int32, got {self.labels.dtype}")

  def __len__(self) -> int:
    return self.labels.shape[0]


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """A named image-classification dataset with a train and a test split.

  Attributes:
    name: the name ``load_dataset`` knows it by, e.g. ``"mnist"``.
    train: the training split.
    test: the held-out split the notes evaluate on.
    num_classes: the number of classes; labels lie in ``[0, num_classes)``.
    image_shape: ``(H, W, C)`` of one image.
  """

  name: str
  train: Split
  test: Split
  num_classes: int
  image_shape: tuple[int, int, int]

  def __post_init__(self):
    for split_name, split in (("train", self.train), ("test", self.test)):
      if split.images.shape[1:] != tuple(self.image_shape):
        raise ValueError(
            f"{split_name} images have shape {split.images.shape[1:]} per example, "
            f"image_shape says {tuple(self.image_shape)}")
