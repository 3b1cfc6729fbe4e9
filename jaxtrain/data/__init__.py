"""Datasets as numpy arrays in memory, and their minibatches.

``load_dataset(name)`` returns a ``Dataset`` whose splits hold uint8 images
``(N, H, W, C)`` (``to_float(images, split.max_value)`` gives ``[0, 1]`` float32,
as torchvision's ``ToTensor``) and int32 labels; ``batches(split, ...)`` yields
its minibatches in an order fixed by ``(seed, epoch)``. ``load_dataset(name,
download=True)`` first prepares a missing tensorflow-datasets dataset
(``prepare_tfds_dataset``; needs ``pip install 'jaxtrain[prepare]'``).
"""

from jaxtrain.data.batching import Batches, batches, epoch_permutation, num_batches
from jaxtrain.data.dataset import Dataset, Split, to_float
from jaxtrain.data.digits import digits
from jaxtrain.data.prepare import DatasetDownloadError, prepare_tfds_dataset
from jaxtrain.data.sources import DATASETS, load_dataset
from jaxtrain.data.synthetic import synthetic
from jaxtrain.data.tfds_source import (
  CorruptDatasetError,
  DatasetError,
  DatasetNotFoundError,
  load_tfds_dataset,
)
