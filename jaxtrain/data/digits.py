"""scikit-learn's handwritten digits: real data that needs no download.

``sklearn.datasets.load_digits`` ships inside the scikit-learn wheel (1,797 8x8
grayscale images of the digits 0-9, pixel values 0..16), so this is the dataset
that works offline and the default of the training command line.
"""

from __future__ import annotations

import numpy as np

from jaxtrain.data.dataset import Dataset, Split

# The split is fixed so that results are comparable between runs and machines:
# 20 % held out, stratified by class, scikit-learn's generator seeded with 0.
# This gives 1,437 training and 360 test images.
TEST_FRACTION = 0.2
SPLIT_SEED = 0
MAX_VALUE = 16  # load_digits' pixels are the integers 0..16


def digits() -> Dataset:
  """Loads scikit-learn's 8x8 digits with a fixed stratified train/test split.

  The pixel values, integers 0..16, are kept as uint8 with ``max_value=16``:
  ``to_float`` divides them by 16, so that they lie in ``[0, 1]`` like the
  ``uint8 / 255`` of the other datasets (16 / 16 is exactly 1).
  The split is ``train_test_split(test_size=0.2, stratify=labels,
  random_state=0)``: every class keeps its share in both splits.

  Returns:
    A ``Dataset`` named ``"digits"``: train ``(1437, 8, 8, 1)``, test
    ``(360, 8, 8, 1)`` uint8 images (``max_value`` 16), int32 labels in ``[0, 10)``.
  """
  # Imported here: scikit-learn is only needed by this dataset.
  from sklearn.datasets import load_digits
  from sklearn.model_selection import train_test_split

  x, y = load_digits(return_X_y=True)  # (1797, 64) float64 in 0..16, (1797,) int
  images = x.reshape(-1, 8, 8, 1).astype(np.uint8)  # the integers 0..16, exactly
  labels = y.astype(np.int32)
  x_train, x_test, y_train, y_test = train_test_split(
    images, labels, test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED
  )
  return Dataset(
    name="digits",
    train=Split(np.ascontiguousarray(x_train), np.ascontiguousarray(y_train), MAX_VALUE),
    test=Split(np.ascontiguousarray(x_test), np.ascontiguousarray(y_test), MAX_VALUE),
    num_classes=10,
    image_shape=(8, 8, 1),
  )
