"""A synthetic dataset of any shape, for benchmarks and tests.

Images are uniform noise (uint8 pixels, as real images are stored), but the labels
are not: each is the argmax of a fixed random linear function of its image, so the
classes are linearly separable and a training run's accuracy rises above chance (a
benchmark whose loss never moves would hide a broken training step).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jaxtrain.data.dataset import Dataset, Split, to_float


def synthetic(
  num_train: int = 8192,
  num_test: int = 2048,
  image_shape: Sequence[int] = (28, 28, 1),
  num_classes: int = 10,
  seed: int = 0,
) -> Dataset:
  """Random images with learnable labels, a pure function of the arguments.

  ``label = argmax((image / 255 - 0.5).reshape(-1) @ W)`` with ``W`` a fixed
  ``(H * W * C, num_classes)`` standard normal matrix drawn from ``seed``.
  Centring the images makes every class about equally frequent.

  Args:
    num_train: number of training examples.
    num_test: number of test examples.
    image_shape: ``(H, W, C)`` of one image.
    num_classes: number of classes.
    seed: the seed of everything; the same arguments give the same arrays.

  Returns:
    A ``Dataset`` named ``"synthetic"``: uint8 images ``(num_train, H, W, C)``
    and ``(num_test, H, W, C)`` uniform in ``[0, 255]`` (``max_value`` 255),
    int32 labels in ``[0, num_classes)``.
  """
  image_shape = tuple(int(d) for d in image_shape)
  if len(image_shape) != 3 or min(image_shape) <= 0:
    raise ValueError(f"image_shape must be (H, W, C) of positive sizes, got {image_shape}")
  for arg, value, low in (
    ("num_train", num_train, 1),
    ("num_test", num_test, 1),
    ("num_classes", num_classes, 2),
    ("seed", seed, 0),
  ):
    if int(value) != value or value < low:
      raise ValueError(f"{arg} must be an integer >= {low}, got {value!r}")
  # Independent streams for the labelling function and each split, so that
  # changing num_train leaves W and the test set unchanged.
  w_seed, train_seed, test_seed = np.random.SeedSequence(seed).spawn(3)
  dim = int(np.prod(image_shape))
  w = np.random.default_rng(w_seed).standard_normal((dim, num_classes), dtype=np.float32)

  def make(n: int, split_seed: np.random.SeedSequence) -> Split:
    images = np.random.default_rng(split_seed).integers(0, 256, (n, *image_shape), np.uint8)
    logits = (to_float(images.reshape(n, dim), 255) - np.float32(0.5)) @ w
    return Split(images, np.argmax(logits, axis=1).astype(np.int32), 255)

  return Dataset(
    name="synthetic",
    train=make(num_train, train_seed),
    test=make(num_test, test_seed),
    num_classes=num_classes,
    image_shape=image_shape,
  )
