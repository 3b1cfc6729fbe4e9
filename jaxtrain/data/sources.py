"""``load_dataset``: every dataset jaxtrain knows, by name."""

from __future__ import annotations

import os

from jaxtrain.data.dataset import Dataset
from jaxtrain.data.digits import digits
from jaxtrain.data.synthetic import synthetic
from jaxtrain.data.tfds_source import load_tfds_dataset

# Offline: digits (shipped in scikit-learn) and synthetic (generated).
# tensorflow-datasets, prepared beforehand in `data_dir`: the rest.
TFDS_DATASETS = ("mnist", "fashion_mnist", "cifar10")
DATASETS = ("digits", *TFDS_DATASETS, "synthetic")


def load_dataset(name: str, *, data_dir: str | os.PathLike | None = None) -> Dataset:
  """Loads the dataset ``name`` whole into host memory.

  ==============  ==========  ===============  ==========================================
  name            image       train / test     source
  ==============  ==========  ===============  ==========================================
  digits          8x8x1       1,437 / 360      scikit-learn's ``load_digits``, offline
  mnist           28x28x1     60,000 / 10,000  tensorflow-datasets, prepared in data_dir
  fashion_mnist   28x28x1     60,000 / 10,000  tensorflow-datasets, prepared in data_dir
  cifar10         32x32x3     50,000 / 10,000  tensorflow-datasets, prepared in data_dir
  synthetic       28x28x1     8,192 / 2,048    ``synthetic()`` with its defaults
  ==============  ==========  ===============  ==========================================

  Images are float32 ``(N, H, W, C)`` in ``[0, 1]`` (torchvision's ``ToTensor``
  scaling, channels last), labels int32 ``(N,)``; all have 10 classes.

  Args:
    name: one of ``DATASETS``.
    data_dir: where tfds datasets are prepared; ``None`` means tfds' default
      (``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``). Unused by
      ``digits`` and ``synthetic``.

  Returns:
    The ``Dataset``.

  Raises:
    ValueError: ``name`` is not a known dataset.
    DatasetNotFoundError: a tfds dataset is not prepared in ``data_dir``. It is
      raised at once; nothing is downloaded and there is no fallback to
      another dataset.
  """
  if name == "digits":
    return digits()
  if name == "synthetic":
    return synthetic()
  if name in TFDS_DATASETS:
    return load_tfds_dataset(name, data_dir=data_dir)
  raise ValueError(f"unknown dataset name={name!r}; expected one of {', '.join(DATASETS)}")
