"""The in-memory dataset every loader returns: numpy arrays per split.

A dataset is small enough to hold whole in host memory, and on an accelerator, so
a split is two arrays and an epoch is a permutation of their first axis. This
replaces torch's ``Dataset`` + ``DataLoader`` pair. The images stay as stored,
integer pixels (uint8, channels-last ``(N, H, W, C)``, the layout of JAX's
convolutions): CIFAR-10's 50,000 training images take 154 MB so, 614 MB as
float32. :func:`to_float` turns them into what torchvision's
``transforms.ToTensor()`` gives (``pixels / 255`` as float32, bit for bit); the
train step does it on the device, batch by batch.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
  """One split of a dataset: images and their class labels.

  ``len(split)`` is the number of examples, as ``len`` of a torch ``Dataset``.

  Attributes:
    images: ``(N, H, W, C)``, channels last: uint8 pixels in ``[0, max_value]``,
      or float32 images already scaled (your own data).
    labels: ``(N,)`` int32 class indices in ``[0, num_classes)``.
    max_value: for uint8 pixels, the value that maps to 1.0 (255 for 8-bit
      images; 16 for scikit-learn's digits, whose pixels are 0..16): the float
      image is ``to_float(images, max_value)``. ``None`` for float32 images.
  """

  images: np.ndarray
  labels: np.ndarray
  max_value: int | None = None

  def __post_init__(self):
    # Cheap checks so a hand-built split fails here, not inside a compiled step.
    if not isinstance(self.images, np.ndarray) or self.images.ndim != 4:
      raise ValueError(
        f"images must be a (N, H, W, C) numpy array, got shape {np.shape(self.images)}"
      )
    if not isinstance(self.labels, np.ndarray) or self.labels.ndim != 1:
      raise ValueError(f"labels must be a (N,) numpy array, got shape {np.shape(self.labels)}")
    if self.images.shape[0] != self.labels.shape[0]:
      raise ValueError(
        f"images and labels disagree on N: images {self.images.shape}, labels {self.labels.shape}"
      )
    if self.images.dtype == np.uint8:
      if (
        isinstance(self.max_value, bool)
        or not isinstance(self.max_value, int)
        or not 1 <= self.max_value <= 255
      ):
        raise ValueError(
          f"max_value must be the pixel value that means 1.0, an int in "
          f"[1, 255], for uint8 images; got max_value={self.max_value!r}"
        )
    elif self.images.dtype == np.float32:
      if self.max_value is not None:
        raise ValueError(
          f"max_value={self.max_value!r} scales uint8 pixels; these images are "
          "float32 already: leave max_value=None"
        )
    else:
      raise TypeError(
        f"images must be uint8 pixels (with max_value) or float32, got {self.images.dtype}"
      )
    if self.labels.dtype != np.int32:
      raise TypeError(f"labels must be int32, got {self.labels.dtype}")

  def __len__(self) -> int:
    return self.labels.shape[0]


def to_float(images, max_value: int | None):
  """Images as float32 in ``[0, 1]``: ``pixels / max_value``, torchvision's ``ToTensor``.

  torch computes ``img.to(torch.float32).div(255)``: each pixel converted to
  float32, then divided, correctly rounded. Here the 256 possible quotients are
  computed once that way (numpy's float32 division) and each pixel looks its
  value up, on the host (numpy) or inside a compiled program (JAX arrays): the
  same bits everywhere. A division inside an XLA program would not give them:
  XLA rewrites a division by a scalar into a multiplication by its reciprocal,
  which rounds differently for about half of the pixel values.

  Args:
    images: uint8 pixels, or float32 images (returned as they are).
    max_value: the pixel value that means 1.0 (255 for 8-bit images); ``None``
      for float images.

  Raises:
    TypeError: integer images that are not uint8, or uint8 without ``max_value``.

  Example:
    >>> to_float(np.array([0, 1, 128, 255], np.uint8), 255)
    array([0.        , 0.00392157, 0.5019608 , 1.        ], dtype=float32)
  """
  if np.dtype(images.dtype).kind not in "biu":
    return images
  if images.dtype != np.uint8 or max_value is None:
    raise TypeError(
      f"images are {images.dtype} pixels: expected uint8 with max_value (255 "
      "for 8-bit images, the dataset's Split.max_value) to scale them to [0, 1]"
    )
  table = np.arange(256, dtype=np.float32) / np.float32(max_value)
  if isinstance(images, np.ndarray):
    return table[images]
  return jnp.asarray(table)[images]


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

  @property
  def max_value(self) -> int | None:
    """The splits' ``max_value``: what ``to_float`` divides their pixels by."""
    return self.train.max_value

  def __post_init__(self):
    if self.train.max_value != self.test.max_value:
      raise ValueError(
        f"the splits disagree on max_value: train {self.train.max_value}, "
        f"test {self.test.max_value}"
      )
    for split_name, split in (("train", self.train), ("test", self.test)):
      if split.images.shape[1:] != tuple(self.image_shape):
        raise ValueError(
          f"{split_name} images have shape {split.images.shape[1:]} per example, "
          f"image_shape says {tuple(self.image_shape)}"
        )
