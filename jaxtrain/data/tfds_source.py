"""TensorFlow Datasets image classification, read offline without TensorFlow.

``tfds.load`` needs TensorFlow; ``tfds.data_source`` does not: it reads a dataset
prepared in the ``array_record`` format with numpy (and decodes PNG images with
Pillow). Preparing a dataset (downloading and writing it) does need TensorFlow:
that one-off step is :mod:`jaxtrain.data.prepare`, run only when asked
(``download=True``, ``--download``; ``docs/data.md``).

``tfds.data_source`` is always called with ``download=False``: its own download
would, on a machine without internet, retry for minutes before failing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxtrain.data.dataset import Dataset, Split

# Examples read per ``__getitems__`` call: batched reads of a real source take about
# half the time of per-item reads (docs/log.md); the chunk bounds the list of decoded
# dicts held at once.
READ_CHUNK = 4096


class DatasetError(RuntimeError):
  """A dataset could not be found, prepared or read; the message is what to do about it."""


class DatasetNotFoundError(DatasetError):
  """A tensorflow-datasets dataset is not prepared where it was looked for."""


class CorruptDatasetError(DatasetError):
  """A prepared dataset's files cannot be read (a broken dataset_info.json, garbage shards)."""


def _not_prepared_message(name: str, data_dir: str | os.PathLike | None) -> str:
  # tfds' own default: $TFDS_DATA_DIR, else ~/tensorflow_datasets.
  where = (
    data_dir
    if data_dir is not None
    else os.environ.get("TFDS_DATA_DIR", os.path.join("~", "tensorflow_datasets"))
  )
  return (
    f"dataset {name!r} is not prepared in the array_record format under {os.fspath(where)!r}, "
    "and nothing is downloaded without --download (download=True in Python), which "
    "needs TensorFlow: pip install 'jaxtrain[prepare]'. Without internet here, prepare "
    "it on a machine with internet, with --download or:\n"
    f"    tfds build {name} --file_format=array_record --data_dir=DIR\n"
    "then copy DIR to this machine and pass data_dir=DIR (--data-dir DIR on the command "
    "line). 'digits' and 'synthetic' need no preparation."
  )


def _read_chunk(source: Any, keys: list[int], batched: bool) -> tuple[Sequence[dict], bool]:
  """Reads ``keys`` from ``source``; returns the examples and whether batching works."""
  if batched:
    try:
      return source.__getitems__(keys), True
    except TypeError:
      # tfds.testing.mock_data installs a __getitems__ that is not bound to its
      # source (the keys land in `self`) and raises TypeError. Per-item reads
      # give the same examples on every source; only slower.
      pass
  return [source[k] for k in keys], False


def _read_split(source: Any, image_shape: tuple[int, ...], num_classes: int) -> Split:
  """Reads a whole tfds data source into a ``Split`` of uint8 pixels (``max_value`` 255)."""
  n = len(source)
  # One preallocated uint8 array: peak memory is the images' own bytes, not a
  # list of n arrays on top.
  images = np.empty((n, *image_shape), np.uint8)
  labels = np.empty((n,), np.int32)
  batched = True
  for start in range(0, n, READ_CHUNK):
    keys = list(range(start, min(start + READ_CHUNK, n)))
    examples, batched = _read_chunk(source, keys, batched)
    for i, example in enumerate(examples, start):
      images[i] = example["image"]
      labels[i] = example["label"]
  if n and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"labels outside [0, {num_classes}): min {labels.min()}, max {labels.max()}")
  return Split(images, labels, 255)


def load_tfds_dataset(
  name: str, *, data_dir: str | os.PathLike | None = None, download: bool = False
) -> Dataset:
  """Loads a prepared tfds image-classification dataset into memory.

  The dataset must have an ``image`` feature of uint8 pixels, a ``label``
  ClassLabel feature, and ``train`` and ``test`` splits (as ``mnist``,
  ``fashion_mnist`` and ``cifar10`` do), prepared in the ``array_record`` format.

  Args:
    name: the tfds name, e.g. ``"mnist"``.
    data_dir: the folder the dataset was prepared in; ``None`` means tfds'
      default (``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``).
    download: if the dataset is not prepared there, download and prepare it
      first (``jaxtrain.data.prepare``; needs TensorFlow). A prepared dataset
      is loaded as it is, without TensorFlow.

  Returns:
    A ``Dataset``: images ``(N, H, W, C)`` uint8 (``max_value`` 255: ``to_float``
    gives torchvision's ``ToTensor`` values), labels ``(N,)`` int32.

  Raises:
    DatasetNotFoundError: at once, when the dataset is not prepared there (or
      was prepared in another file format) and ``download`` is false; the
      message says how to prepare it.
    DatasetDownloadError: ``download`` is true and preparing failed (a
      ``DatasetNotFoundError`` too; see ``prepare_tfds_dataset``).
  """
  try:
    return _load_prepared(name, data_dir)
  except DatasetNotFoundError:
    if not download:
      raise
  # Imported here: it needs this module's DatasetNotFoundError.
  from jaxtrain.data.prepare import prepare_tfds_dataset

  prepare_tfds_dataset(name, data_dir=data_dir)
  return _load_prepared(name, data_dir)


def _load_prepared(name: str, data_dir: str | os.PathLike | None) -> Dataset:
  # Imported here: tensorflow-datasets is only needed by these datasets, and
  # `import jaxtrain.data` should not pay for it.
  import tensorflow_datasets as tfds

  try:
    train_source, test_source = tfds.data_source(
      name,
      split=["train", "test"],
      data_dir=data_dir,
      download=False,
      # Without it, tfds assumes the TFRecord format, which has no random access.
      builder_kwargs={"file_format": "array_record"},
    )
  except KeyError as e:
    # tfds' signal that no dataset_info.json was found: "Trying to access
    # `splits['train']` but `splits` is empty ... not been generated yet".
    raise DatasetNotFoundError(_not_prepared_message(name, data_dir)) from e
  except ValueError as e:
    # Prepared, but as TFRecord: "File format is already set to FileFormat.TFRECORD".
    if "file format" not in str(e).lower():
      raise _corrupt(name, data_dir, e) from e
    raise DatasetNotFoundError(f"{_not_prepared_message(name, data_dir)}\ntfds said: {e}") from e
  except Exception as e:  # noqa: BLE001  (a broken JSON, protobuf or shard: any of tfds' errors)
    raise _corrupt(name, data_dir, e) from e

  features = train_source.dataset_info.features
  image_shape = tuple(int(d) for d in features["image"].shape)
  if np.dtype(features["image"].np_dtype) != np.uint8 or len(image_shape) != 3:
    raise ValueError(
      f"{name!r} images are {features['image'].np_dtype} {image_shape}; expected uint8 (H, W, C)"
    )
  num_classes = int(features["label"].num_classes)
  try:
    train, test = (
      _read_split(source, image_shape, num_classes) for source in (train_source, test_source)
    )
  except ValueError:
    raise
  except Exception as e:  # noqa: BLE001  (array_record's and tfds' errors on garbage shards)
    raise _corrupt(name, data_dir, e) from e
  return Dataset(
    name=name, train=train, test=test, num_classes=num_classes, image_shape=image_shape
  )


def _corrupt(name: str, data_dir, error: BaseException) -> CorruptDatasetError:
  where = (
    data_dir
    if data_dir is not None
    else os.environ.get("TFDS_DATA_DIR", os.path.join("~", "tensorflow_datasets"))
  )
  reason = " ".join(str(error).split()) or type(error).__name__
  return CorruptDatasetError(
    f"dataset {name!r} under {os.fspath(where)!r} is prepared but cannot be read "
    f"({type(error).__name__}: {reason}); delete its folder and prepare it again "
    "(--download)"
  )
