"""``load_dataset``: every dataset jaxtrain knows, by name."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

from jaxtrain.data.dataset import Dataset
from jaxtrain.data.digits import digits
from jaxtrain.data.synthetic import synthetic
from jaxtrain.data.tfds_source import load_tfds_dataset


def _offline(make: Callable[[], Dataset]) -> Callable[..., Dataset]:
  def load(*, data_dir=None, download=False):
    del data_dir, download  # nothing to find or fetch
    return make()

  return load


# name -> load(*, data_dir, download). Offline: digits (shipped in scikit-learn) and
# synthetic (generated). tensorflow-datasets, prepared in `data_dir` beforehand or by
# `download=True`: the rest.
TFDS_DATASETS = ("mnist", "fashion_mnist", "cifar10")
DATASETS: dict[str, Callable[..., Dataset]] = {
  "digits": _offline(digits),
  **{name: functools.partial(load_tfds_dataset, name) for name in TFDS_DATASETS},
  "synthetic": _offline(synthetic),
}


def load_dataset(
  name: str, *, data_dir: str | os.PathLike | None = None, download: bool = False
) -> Dataset:
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

  Images are uint8 pixels ``(N, H, W, C)``, channels last, as stored (CIFAR-10's
  50,000 training images: 154 MB, not 614 MB as float32); ``to_float(images,
  split.max_value)`` gives torchvision's ``ToTensor`` values. Labels are int32
  ``(N,)``; all have 10 classes.

  Args:
    name: one of ``DATASETS``.
    data_dir: where tfds datasets are prepared; ``None`` means tfds' default
      (``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``). Unused by
      ``digits`` and ``synthetic``.
    download: prepare a tfds dataset missing from ``data_dir`` first: tfds'
      builder downloads it and writes it there (array_record), once. Needs
      TensorFlow (``pip install 'jaxtrain[prepare]'``) and internet. ``digits``
      and ``synthetic`` have nothing to download.

  Returns:
    The ``Dataset``.

  Raises:
    ValueError: ``name`` is not a known dataset.
    DatasetNotFoundError: a tfds dataset is not prepared in ``data_dir`` and
      ``download`` is false. It is raised at once; nothing is downloaded and
      there is no fallback to another dataset.
    DatasetDownloadError: ``download`` is true and preparing failed (no
      TensorFlow, no network, ``data_dir`` not writable...): one line, at once.
  """
  if name not in DATASETS:
    raise ValueError(f"unknown dataset name={name!r}; expected one of {', '.join(DATASETS)}")
  return DATASETS[name](data_dir=data_dir, download=download)
