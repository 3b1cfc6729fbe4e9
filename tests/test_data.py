"""Tests of jaxtrain.data: loaders (offline) and batching.

tfds datasets are tested offline two ways: `tfds.testing.mock_data` through the
same `load_dataset` call users make, and a tiny dataset really prepared in the
array_record format in a temporary folder (the real `ArrayRecordDataSource`
reading path, batched `__getitems__` included). torch is the oracle for
`ToTensor`'s scaling and for `len(DataLoader)`.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds
import torch
from command_line import one_line_error, run_cli

from jaxtrain import data
from jaxtrain.data import tfds_source

TFDS_SHAPES = {  # tfds' catalog: mnist and fashion_mnist 28x28 gray, cifar10 32x32 RGB
  "mnist": (28, 28, 1),
  "fashion_mnist": (28, 28, 1),
  "cifar10": (32, 32, 3),
}


def assert_to_tensor_scaled(split: data.Split):
  """The split holds uint8 pixels, and to_float gives exactly torchvision ToTensor's
  `uint8.to(float32).div(255)`, on the host and inside a compiled JAX program."""
  import jax

  assert split.images.dtype == np.uint8 and split.max_value == 255
  expected = torch.from_numpy(split.images).to(torch.float32).div(255).numpy()
  np.testing.assert_array_equal(data.to_float(split.images, split.max_value), expected)
  on_device = jax.jit(lambda x: data.to_float(x, 255))(split.images)
  np.testing.assert_array_equal(np.asarray(on_device), expected)


def assert_split(split: data.Split, n: int, image_shape, num_classes: int):
  assert split.images.shape == (n, *image_shape)
  assert split.labels.shape == (n,)
  assert split.labels.dtype == np.int32
  assert split.labels.min() >= 0 and split.labels.max() < num_classes
  assert len(split) == n


# --- tfds datasets, mocked ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(TFDS_SHAPES))
def test_tfds_mock_through_load_dataset(name, tmp_path):
  # mock_data replaces the builder's data_source with random examples of the real
  # features (uint8 images of the catalog shape, ClassLabel(10)); it ignores data_dir.
  with tfds.testing.mock_data(num_examples=6):
    ds = data.load_dataset(name, data_dir=tmp_path)
  assert ds.name == name
  assert ds.num_classes == 10
  assert ds.image_shape == TFDS_SHAPES[name]
  for split in (ds.train, ds.test):
    assert_split(split, 6, TFDS_SHAPES[name], 10)
    assert_to_tensor_scaled(split)
  assert ds.train.images.max() > 128  # random pixels, not all zeros


# --- tfds datasets, really prepared -------------------------------------------


class JaxtrainTinyImages(tfds.core.GeneratorBasedBuilder):
  """50 train / 7 test 4x4x1 images whose pixels are all equal to their index.

  `Tensor` rather than `Image` features: writing PNG needs TensorFlow, reading
  needs Pillow; this keeps the test offline and dependency-free while it
  exercises tfds' real array_record reader.
  """

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(
      builder=self,
      features=tfds.features.FeaturesDict(
        {
          "image": tfds.features.Tensor(shape=(4, 4, 1), dtype=np.uint8),
          "label": tfds.features.ClassLabel(num_classes=3),
        }
      ),
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples(50), "test": self._generate_examples(7)}

  def _generate_examples(self, n):
    for i in range(n):
      yield i, {"image": np.full((4, 4, 1), 200 + i, np.uint8), "label": i % 3}


@pytest.fixture(scope="module")
def tiny_data_dir(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds")
  JaxtrainTinyImages(data_dir=data_dir, file_format="array_record").download_and_prepare()
  return data_dir


def test_tfds_real_array_record(tiny_data_dir, monkeypatch):
  # Chunks of 16 over 50 examples: three full batched reads and a partial one.
  monkeypatch.setattr(tfds_source, "READ_CHUNK", 16)
  reads = []

  def spy(source, keys, batched):
    examples, batched = read_chunk(source, keys, batched)
    reads.append((len(keys), batched))
    return examples, batched

  read_chunk = tfds_source._read_chunk
  monkeypatch.setattr(tfds_source, "_read_chunk", spy)
  ds = data.load_tfds_dataset("jaxtrain_tiny_images", data_dir=tiny_data_dir)
  # The real source reads in batches (`__getitems__`), never falling back per item.
  assert reads == [(16, True), (16, True), (16, True), (2, True), (7, True)]
  assert ds.image_shape == (4, 4, 1) and ds.num_classes == 3
  assert_split(ds.train, 50, (4, 4, 1), 3)
  assert_split(ds.test, 7, (4, 4, 1), 3)
  for split, n in ((ds.train, 50), (ds.test, 7)):
    assert_to_tensor_scaled(split)
    pixel = split.images.astype(np.int64)
    index = pixel[:, 0, 0, 0] - 200
    # tfds stores examples in its own shuffled order; each image still has its label.
    assert sorted(index) == list(range(n))
    assert (pixel == pixel[:, :1, :1, :1]).all()
    np.testing.assert_array_equal(split.labels, index % 3)
    np.testing.assert_array_equal(
      data.to_float(split.images, 255)[:, 0, 0, 0], np.float32(200 + index) / 255
    )


def test_tfds_prepared_as_tfrecord_is_reported(tiny_data_dir, tmp_path):
  # The same files, but dataset_info.json says TFRecord: tfds raises a ValueError.
  src = tiny_data_dir / "jaxtrain_tiny_images" / "1.0.0"
  dst = tmp_path / "jaxtrain_tiny_images" / "1.0.0"
  dst.mkdir(parents=True)
  for f in src.iterdir():
    (dst / f.name).write_bytes(f.read_bytes())
  info = json.loads((dst / "dataset_info.json").read_text())
  info["fileFormat"] = "tfrecord"
  (dst / "dataset_info.json").write_text(json.dumps(info))
  with pytest.raises(data.DatasetNotFoundError, match="array_record"):
    data.load_tfds_dataset("jaxtrain_tiny_images", data_dir=tmp_path)


@pytest.mark.parametrize("name", sorted(TFDS_SHAPES))
def test_tfds_not_prepared_raises_at_once(name, tmp_path):
  start = time.perf_counter()
  with pytest.raises(data.DatasetNotFoundError) as info:
    data.load_dataset(name, data_dir=tmp_path)
  # Without download=False tfds would retry the download for ~200 s offline.
  assert time.perf_counter() - start < 10
  message = str(info.value)
  assert f"tfds build {name} --file_format=array_record" in message
  assert str(tmp_path) in message
  assert isinstance(info.value, RuntimeError)
  assert os.listdir(tmp_path) == []  # no temporary download folders left behind


def test_tfds_missing_data_dir_is_not_created(tmp_path):
  missing = tmp_path / "nowhere"
  with pytest.raises(data.DatasetNotFoundError):
    data.load_dataset("mnist", data_dir=missing)
  assert not missing.exists()


def test_unknown_dataset_lists_the_names():
  with pytest.raises(ValueError, match="digits, mnist, fashion_mnist, cifar10, synthetic"):
    data.load_dataset("imagenet")


# --- digits ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
  return data.load_dataset("digits")


def test_digits_shapes_and_range(digits):
  # 1,797 images: sklearn.datasets.load_digits' documented size; 20 % -> 360 test.
  assert_split(digits.train, 1437, (8, 8, 1), 10)
  assert_split(digits.test, 360, (8, 8, 1), 10)
  assert digits.num_classes == 10 and digits.image_shape == (8, 8, 1)
  images = np.concatenate([digits.train.images, digits.test.images])
  assert images.dtype == np.uint8 and digits.max_value == 16  # load_digits' 0..16, as stored
  assert images.min() == 0 and images.max() == 16
  scaled = data.to_float(images, digits.max_value)
  assert scaled.dtype == np.float32 and scaled.min() == 0.0 and scaled.max() == 1.0
  np.testing.assert_array_equal(scaled * 16, images)  # k / 16 exactly


def test_digits_is_a_stratified_partition(digits):
  from sklearn.datasets import load_digits

  x, y = load_digits(return_X_y=True)
  # Every original image appears exactly once across the two splits, with its label.
  # The 1,797 (pixels, label) rows of load_digits are distinct, so comparing the
  # sorted unique rows (and the counts) compares the two collections.
  ours = np.column_stack(
    [
      np.concatenate([digits.train.images, digits.test.images]).reshape(-1, 64),
      np.concatenate([digits.train.labels, digits.test.labels]),
    ]
  )
  theirs = np.column_stack([x, y])
  assert len(ours) == len(theirs) == len(np.unique(theirs, axis=0)) == 1797
  np.testing.assert_array_equal(np.unique(ours, axis=0), np.unique(theirs, axis=0))
  # Stratified: each class keeps its 20 % share in the test split, to one example.
  test_counts = np.bincount(digits.test.labels, minlength=10)
  assert np.all(np.abs(test_counts - 0.2 * np.bincount(y, minlength=10)) <= 1), test_counts


def test_digits_is_deterministic(digits):
  again = data.load_dataset("digits")
  for a, b in ((digits.train, again.train), (digits.test, again.test)):
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)


# --- synthetic ------------------------------------------------------------------


def test_synthetic_shapes_and_determinism():
  ds = data.synthetic(300, 100, (8, 6, 3), 5, seed=1)
  assert_split(ds.train, 300, (8, 6, 3), 5)
  assert_split(ds.test, 100, (8, 6, 3), 5)
  assert ds.train.images.dtype == np.uint8 and ds.max_value == 255
  assert ds.train.images.min() == 0 and ds.train.images.max() == 255  # the full range
  assert ds.num_classes == 5 and ds.image_shape == (8, 6, 3)
  again = data.synthetic(300, 100, (8, 6, 3), 5, seed=1)
  np.testing.assert_array_equal(ds.train.images, again.train.images)
  np.testing.assert_array_equal(ds.test.labels, again.test.labels)
  other = data.synthetic(300, 100, (8, 6, 3), 5, seed=2)
  assert not np.array_equal(ds.train.images, other.train.images)
  # The test set and the labelling do not depend on num_train.
  bigger = data.synthetic(400, 100, (8, 6, 3), 5, seed=1)
  np.testing.assert_array_equal(ds.test.images, bigger.test.images)
  np.testing.assert_array_equal(ds.test.labels, bigger.test.labels)


def test_synthetic_is_learnable():
  ds = data.synthetic(2000, 500, (8, 8, 1), 10, seed=0)
  assert np.bincount(ds.train.labels, minlength=10).min() > 100  # every class present

  # A least-squares linear classifier fit on train beats chance (0.1) by far on test.
  def features(split):
    return np.column_stack([split.images.reshape(len(split), -1), np.ones(len(split))])

  w, *_ = np.linalg.lstsq(features(ds.train), np.eye(10)[ds.train.labels], rcond=None)
  accuracy = np.mean(np.argmax(features(ds.test) @ w, axis=1) == ds.test.labels)
  assert accuracy > 0.5, accuracy


def test_load_dataset_synthetic_defaults():
  ds = data.load_dataset("synthetic")
  assert ds.image_shape == (28, 28, 1) and ds.num_classes == 10
  assert len(ds.train) == 8192 and len(ds.test) == 2048


@pytest.mark.parametrize(
  "kwargs", [{"num_train": 0}, {"num_classes": 1}, {"image_shape": (8, 8)}, {"seed": -1}]
)
def test_synthetic_bad_arguments(kwargs):
  with pytest.raises(ValueError, match=next(iter(kwargs))):
    data.synthetic(**{"num_train": 10, "num_test": 10, **kwargs})


# --- Split ----------------------------------------------------------------------


def test_split_checks():
  images, labels = np.zeros((3, 2, 2, 1), np.float32), np.zeros(3, np.int32)
  pixels = images.astype(np.uint8)
  with pytest.raises(ValueError, match="disagree on N"):
    data.Split(images, labels[:2])
  with pytest.raises(TypeError, match="uint8 pixels .with max_value. or float32, got float64"):
    data.Split(images.astype(np.float64), labels)
  with pytest.raises(TypeError, match="int32"):
    data.Split(images, labels.astype(np.int64))
  with pytest.raises(ValueError, match="image_shape"):
    data.Dataset("x", data.Split(images, labels), data.Split(images, labels), 2, (2, 3, 1))
  with pytest.raises(ValueError, match=r"max_value must .* in \[1, 255\].*got max_value=None"):
    data.Split(pixels, labels)
  with pytest.raises(
    ValueError, match="max_value=255 scales uint8 pixels; these images are float32"
  ):
    data.Split(images, labels, 255)
  with pytest.raises(ValueError, match="disagree on max_value: train 255, test 16"):
    data.Dataset("x", data.Split(pixels, labels, 255), data.Split(pixels, labels, 16), 2, (2, 2, 1))


def test_to_float_needs_max_value_for_pixels():
  with pytest.raises(TypeError, match="uint8 pixels: expected uint8 with max_value"):
    data.to_float(np.zeros((1, 2, 2, 1), np.uint8), None)
  with pytest.raises(TypeError, match="uint16 pixels"):
    data.to_float(np.zeros((1, 2, 2, 1), np.uint16), 255)
  floats = np.full((1, 2, 2, 1), 0.5, np.float32)
  assert data.to_float(floats, None) is floats


# --- batching -------------------------------------------------------------------


def indexed_split(n: int) -> data.Split:
  """A split whose image i and label i both hold i, to follow examples through batches."""
  return data.Split(
    np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1), np.arange(n, dtype=np.int32)
  )


def seen(batches) -> list[np.ndarray]:
  out = []
  for images, labels in batches:
    np.testing.assert_array_equal(images[:, 0, 0, 0], labels)  # pairs stay together
    assert images.dtype == np.float32 and labels.dtype == np.int32
    out.append(labels)
  return out


@pytest.mark.parametrize(
  "n,batch_size,drop_last",
  [
    (10, 3, True),
    (10, 3, False),
    (10, 5, True),
    (10, 5, False),
    (10, 10, True),
    (7, 1, False),
    (10, 64, False),
  ],
)
def test_len_matches_torch_dataloader(n, batch_size, drop_last):
  loader = torch.utils.data.DataLoader(range(n), batch_size=batch_size, drop_last=drop_last)
  expected_sizes = [len(b) for b in loader]  # torch 2.13.0 DataLoader, the oracle
  assert data.num_batches(n, batch_size, drop_last) == len(loader)
  got = data.batches(indexed_split(n), batch_size=batch_size, seed=0, epoch=0, drop_last=drop_last)
  assert len(got) == len(loader)
  assert [len(b) for b in seen(got)] == expected_sizes


def test_every_example_once_per_epoch():
  labels = np.concatenate(
    seen(data.batches(indexed_split(10), batch_size=3, seed=0, epoch=4, drop_last=False))
  )
  assert sorted(labels) == list(range(10))
  dropped = np.concatenate(seen(data.batches(indexed_split(10), batch_size=3, seed=0, epoch=4)))
  assert len(dropped) == 9 and len(set(dropped)) == 9


def test_order_is_a_function_of_seed_and_epoch():
  split = indexed_split(100)

  def order(seed, epoch):
    return np.concatenate(seen(data.batches(split, batch_size=10, seed=seed, epoch=epoch)))

  np.testing.assert_array_equal(order(0, 1), order(0, 1))
  assert not np.array_equal(order(0, 1), order(0, 2))
  assert not np.array_equal(order(0, 1), order(1, 1))
  # The contract the on-device epoch relies on: batches gather with epoch_permutation.
  np.testing.assert_array_equal(order(3, 5), data.epoch_permutation(100, 3, 5))
  perm = data.epoch_permutation(100, 3, 5)
  assert perm.dtype == np.int32 and sorted(perm) == list(range(100))
  # Iterating the same Batches twice gives the same batches.
  b = data.batches(split, batch_size=7, seed=0, epoch=0)
  np.testing.assert_array_equal(np.concatenate(seen(b)), np.concatenate(seen(b)))


def test_drop_last_gathers_the_permutation_prefix():
  perm = data.epoch_permutation(10, 2, 3)
  got = np.concatenate(seen(data.batches(indexed_split(10), batch_size=4, seed=2, epoch=3)))
  np.testing.assert_array_equal(got, perm[:8])


def test_no_shuffle_keeps_stored_order():
  got = seen(
    data.batches(indexed_split(7), batch_size=3, seed=0, epoch=9, shuffle=False, drop_last=False)
  )
  np.testing.assert_array_equal(np.concatenate(got), np.arange(7))


@pytest.mark.parametrize(
  "kwargs,match",
  [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": -2}, "batch_size"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"batch_size": 11}, "batch_size=11 is larger"),
    ({"batch_size": 2, "seed": -1}, "seed"),
    ({"batch_size": 2, "epoch": -1}, "epoch"),
  ],
)
def test_batches_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    data.batches(indexed_split(10), **{"seed": 0, "epoch": 0, **kwargs})


def test_num_batches_bad_batch_size():
  with pytest.raises(ValueError, match="batch_size"):
    data.num_batches(10, 0, drop_last=True)
  assert data.num_batches(10, 11, drop_last=True) == 0  # as len(DataLoader); batches raises


@pytest.mark.parametrize("max_value", [255, 16])
def test_to_float_is_torch_division_for_every_pixel_value(max_value):
  # torch 2.13.0: torchvision's ToTensor is `pixels.to(torch.float32).div(255)`. XLA
  # would turn a division by a scalar into a multiplication by its reciprocal (off by
  # one ulp for about half of the values), so the compiled program must agree too.
  import jax

  pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
  expected = torch.from_numpy(pixels).to(torch.float32).div(max_value).numpy()
  np.testing.assert_array_equal(data.to_float(pixels, max_value), expected)
  compiled = jax.jit(lambda x: data.to_float(x, max_value))(pixels)
  np.testing.assert_array_equal(np.asarray(compiled), expected)


def _copy_of(tiny_data_dir, tmp_path):
  import shutil

  copy = tmp_path / "tfds"
  shutil.copytree(tiny_data_dir, copy)
  return copy, copy / "jaxtrain_tiny_images" / "1.0.0"


@pytest.mark.parametrize("damage", ["dataset_info.json", "shards"])
def test_a_damaged_prepared_dataset_is_one_clear_error(tiny_data_dir, tmp_path, damage):
  # A broken JSON (protobuf's ParseError) or garbage shards (array_record's RuntimeError):
  # one error type, one line, naming the dataset and what to do.
  copy, folder = _copy_of(tiny_data_dir, tmp_path)
  if damage == "dataset_info.json":
    (folder / "dataset_info.json").write_text("{not json")
  else:
    for shard in folder.glob("*.array_record-*"):
      shard.write_bytes(os.urandom(3000))
  with pytest.raises(data.CorruptDatasetError) as info:
    data.load_tfds_dataset("jaxtrain_tiny_images", data_dir=copy)
  message = str(info.value)
  assert "\n" not in message and "is prepared but cannot be read" in message
  assert "jaxtrain_tiny_images" in message and "prepare it again" in message
  assert isinstance(info.value, data.DatasetError)


def test_the_cli_reports_a_damaged_dataset_in_one_line(tmp_path):
  # A prepared-looking mnist folder whose dataset_info.json is garbage.
  folder = tmp_path / "data" / "mnist" / "3.0.1"
  folder.mkdir(parents=True)
  (folder / "dataset_info.json").write_text("{not json")
  proc = run_cli(
    "--dataset", "mnist", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run")
  )
  err = one_line_error(proc, 2)
  assert "dataset 'mnist'" in err and "cannot be read" in err
  assert not (tmp_path / "run").exists()
