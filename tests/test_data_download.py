"""Tests of ``download=True`` / ``--download``: tfds' real preparation, offline.

The datasets' real file formats, written small: MNIST's and Fashion-MNIST's four
``*-idx?-ubyte.gz`` files (the IDX format of yann.lecun.com/exdb/mnist, gzipped)
and CIFAR-10's ``cifar-10-binary.tar.gz`` (the binary version tfds downloads, from
www.cs.toronto.edu/~kriz/cifar.html: a label byte, then 1,024 red, 1,024 green and
1,024 blue bytes per image, row-major, in ``cifar-10-batches-bin/``). tfds' own
builders then run on them; only the network fetch is replaced
(``DownloadManager._download``, which fetches one URL and checks it against tfds'
registered checksum: these files cannot match). tfds extracts, parses and writes
them (TensorFlow encodes the PNGs), and ``load_dataset`` reads the result.

MNIST's builder reads exactly 60,000 / 10,000 images whatever the file holds
(``mnist._TRAIN_EXAMPLES``); the tests lower those two constants to the small
files' counts. CIFAR-10's reads the files to their end.

Preparing needs TensorFlow: the ``test`` extra installs it (``jaxtrain[prepare]``).
Tests of the failures (no TensorFlow, offline, unwritable folder) run without it.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest

from jaxtrain import data, loop, train
from jaxtrain.data import prepare

CIFAR10_LABELS = ("airplane automobile bird cat deer dog frog horse ship truck").split()


def needs_tensorflow():
  if prepare._tensorflow_missing():
    pytest.fail(
      "preparing a dataset needs TensorFlow: pip install -e '.[test]' "
      "(the test extra includes jaxtrain[prepare])"
    )


def assert_left_empty(data_dir):
  # Nothing half-prepared, no download folder, not even an empty dataset folder.
  assert not data_dir.exists() or sorted(os.listdir(data_dir)) == []


# --- the datasets' raw formats, small -------------------------------------------


def examples(n: int, shape, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """``n`` distinct random uint8 images and labels 0..9 (each label present)."""
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
  labels = (np.arange(n) % 10).astype(np.uint8)
  return images, labels


def idx_gz(path, array: np.ndarray) -> None:
  """The IDX format: magic (0, 0, 0x08 = uint8, ndim), big-endian int32 dims, data."""
  header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">i4").tobytes()
  with gzip.open(path, "wb") as f:
    f.write(header + array.tobytes())


def write_mnist(server, n_train: int, n_test: int, seed: int) -> dict:
  """MNIST's four files (Fashion-MNIST has the same names and format)."""
  server.mkdir()
  splits = {
    "train": examples(n_train, (28, 28), seed),
    "test": examples(n_test, (28, 28), seed + 1),
  }
  for prefix, (images, labels) in (("train", splits["train"]), ("t10k", splits["test"])):
    idx_gz(server / f"{prefix}-images-idx3-ubyte.gz", images)  # (n, 28, 28): magic 2051
    idx_gz(server / f"{prefix}-labels-idx1-ubyte.gz", labels)  # (n,): magic 2049
  return {k: (images[..., None], labels) for k, (images, labels) in splits.items()}


def write_cifar10(server, per_batch: int, n_test: int, seed: int) -> dict:
  """cifar-10-binary.tar.gz: five training batches, a test batch, the label names."""
  server.mkdir()
  train_images, train_labels = examples(5 * per_batch, (32, 32, 3), seed)
  test_images, test_labels = examples(n_test, (32, 32, 3), seed + 1)

  def records(images, labels) -> bytes:
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), 3 * 1024)  # R, G, B planes
    return np.concatenate([labels[:, None], planes], axis=1).tobytes()

  members = {
    f"data_batch_{b + 1}.bin": records(
      train_images[b * per_batch : (b + 1) * per_batch],
      train_labels[b * per_batch : (b + 1) * per_batch],
    )
    for b in range(5)
  }
  members["test_batch.bin"] = records(test_images, test_labels)
  members["batches.meta.txt"] = ("\n".join(CIFAR10_LABELS) + "\n\n").encode()
  with tarfile.open(server / "cifar-10-binary.tar.gz", "w:gz") as tar:
    for member, content in members.items():
      info = tarfile.TarInfo(f"cifar-10-batches-bin/{member}")
      info.size = len(content)
      tar.addfile(info, io.BytesIO(content))
  return {"train": (train_images, train_labels), "test": (test_images, test_labels)}


@pytest.fixture
def local_downloads(monkeypatch):
  """Serves tfds' downloads from a folder: ``serve(folder)`` returns the URLs fetched.

  Two network calls are replaced: jaxtrain's reachability check (``requests.head``,
  answered 200) and tfds' fetch of one URL (``DownloadManager._download``, which
  would also check the file against tfds' registered checksum).
  """
  import requests
  from etils import epath
  from promise import Promise
  from tensorflow_datasets.core.download import download_manager

  fetched = []

  def serve(folder):
    def head(url, **kwargs):
      response = requests.Response()
      response.status_code, response.url = 200, url
      return response

    def fetch(self, resource):
      fetched.append(resource.url)
      # tfds names the file after the URL's basename; extraction goes by its suffix.
      return Promise.resolve(epath.Path(folder) / resource.url.rsplit("/", 1)[1])

    monkeypatch.setattr(requests, "head", head)
    monkeypatch.setattr(download_manager.DownloadManager, "_download", fetch)
    return fetched

  return serve


@pytest.fixture
def small_mnist(monkeypatch):
  from tensorflow_datasets.image_classification import mnist

  def counts(n_train, n_test):
    monkeypatch.setattr(mnist, "_TRAIN_EXAMPLES", n_train)
    monkeypatch.setattr(mnist, "_TEST_EXAMPLES", n_test)

  return counts


def registered_urls(name: str) -> list[str]:
  import tensorflow_datasets as tfds

  return sorted(tfds.builder(name, data_dir="/nonexistent").url_infos)


def run_without_tensorflow(script: str, tmp_path) -> None:
  """Runs ``script`` in a Python that sees this environment's packages but TensorFlow.

  tfds and etils look TensorFlow up (``find_spec``) and use it when it is there, so
  hiding it must make it not found: the subprocess gets a copy of site-packages
  made of links to every entry except ``tensorflow`` (``-S``: no other site dir).
  """
  import site

  view = tmp_path / "site-packages-without-tensorflow"
  view.mkdir()
  for folder in site.getsitepackages():
    for entry in os.listdir(folder):
      if entry != "tensorflow" and not (view / entry).exists():
        (view / entry).symlink_to(os.path.join(folder, entry))
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, str(view)])}
  subprocess.run([sys.executable, "-S", "-c", script], check=True, timeout=120, env=env)


def assert_same_examples(split: data.Split, images: np.ndarray, labels: np.ndarray):
  """The split holds exactly the written (image, label) pairs, in tfds' shuffled order."""
  assert split.images.dtype == np.uint8 and split.max_value == 255
  assert split.images.shape == images.shape
  assert split.labels.dtype == np.int32
  assert split.images.nbytes == images.size  # one byte a pixel: uint8 end to end
  written = sorted((im.tobytes(), int(lab)) for im, lab in zip(images, labels))
  loaded = sorted((im.tobytes(), int(lab)) for im, lab in zip(split.images, split.labels))
  assert loaded == written


# --- real preparation (TensorFlow) ----------------------------------------------


def test_mnist_download_prepares_loads_and_trains(tmp_path, local_downloads, small_mnist, capsys):
  needs_tensorflow()
  written = write_mnist(tmp_path / "server", 40, 12, seed=0)
  small_mnist(40, 12)
  requested = local_downloads(tmp_path / "server")
  data_dir = tmp_path / "tfds"
  config = loop.Config(
    dataset="mnist",
    data_dir=str(data_dir),
    download=True,
    model="mlp",
    epochs=1,
    batch_size=8,
    progress="quiet",
  )
  _, results = loop.fit(config, log=lambda line: None)  # prepares, then trains
  assert len(results) == 1 and np.isfinite(results[0].train_loss)
  assert sorted(requested) == registered_urls("mnist")  # tfds' own four URLs, each once
  # Only the prepared dataset stays: the downloads and extractions are gone.
  assert sorted(os.listdir(data_dir)) == ["mnist"]
  assert sorted(os.listdir(data_dir / "mnist")) == ["3.0.1"]
  info = json.loads((data_dir / "mnist" / "3.0.1" / "dataset_info.json").read_text())
  assert info["fileFormat"] == "array_record"
  err = capsys.readouterr().err.splitlines()
  assert (
    f"jaxtrain: downloading mnist (11.1 MiB from storage.googleapis.com) and preparing "
    f"it in {data_dir / 'mnist' / '3.0.1'}" in err
  )  # 11,594,722 bytes: tfds' checksums
  assert any(line.startswith("jaxtrain: prepared mnist: ") for line in err)
  ds = data.load_dataset("mnist", data_dir=data_dir)  # download=False: read as prepared
  assert ds.image_shape == (28, 28, 1) and ds.num_classes == 10
  for split in ("train", "test"):
    assert_same_examples(getattr(ds, split), *written[split])


def test_fashion_mnist_download_shows_tfds_bars_on_a_terminal(
  tmp_path, local_downloads, small_mnist, capsys
):
  needs_tensorflow()
  written = write_mnist(tmp_path / "server", 30, 10, seed=5)
  small_mnist(30, 10)
  local_downloads(tmp_path / "server")

  class Terminal(io.StringIO):
    def isatty(self):
      return True

  lines = Terminal()
  path = data.prepare_tfds_dataset("fashion_mnist", data_dir=tmp_path / "tfds", stream=lines)
  assert path == tmp_path / "tfds" / "fashion_mnist" / "3.0.1"
  assert "jaxtrain: prepared fashion_mnist" in lines.getvalue()
  assert "Generating splits" in capsys.readouterr().err  # tfds' tqdm bars, on stderr
  ds = data.load_dataset("fashion_mnist", data_dir=tmp_path / "tfds", download=True)
  for split in ("train", "test"):
    assert_same_examples(getattr(ds, split), *written[split])
  # Prepared already: nothing is fetched again and no line is printed.
  assert (
    data.prepare_tfds_dataset("fashion_mnist", data_dir=tmp_path / "tfds", stream=lines) == path
  )


def test_cifar10_download_through_the_command_line(tmp_path, local_downloads, capsys):
  # docs/data.md's command: python -m jaxtrain.train --dataset cifar10 --download.
  needs_tensorflow()
  written = write_cifar10(tmp_path / "server", per_batch=6, n_test=10, seed=2)
  requested = local_downloads(tmp_path / "server")
  data_dir = tmp_path / "tfds"
  code = train.main(
    [
      "--dataset",
      "cifar10",
      "--download",
      "--data-dir",
      str(data_dir),
      "--model",
      "mlp",
      "--epochs",
      "1",
      "--batch-size",
      "6",
      "--progress",
      "lines",
      "--out",
      str(tmp_path / "run"),
    ]
  )
  captured = capsys.readouterr()
  assert code == 0, captured.err
  assert requested == registered_urls("cifar10")
  assert "epoch 1/1" in captured.out
  # Not a terminal: two lines, and tfds' bars (carriage returns) are off.
  assert "\r" not in captured.err
  start, end = [line for line in captured.err.splitlines() if line.startswith("jaxtrain: ")]
  assert start == (
    "jaxtrain: downloading cifar10 (162.2 MiB from www.cs.toronto.edu) and "
    f"preparing it in {data_dir / 'cifar10' / '3.0.2'}"
  )  # tfds' checksums
  assert end.startswith("jaxtrain: prepared cifar10: ")
  assert sorted(os.listdir(data_dir)) == ["cifar10"]
  ds = data.load_dataset("cifar10", data_dir=data_dir)
  assert ds.image_shape == (32, 32, 3)
  for split in ("train", "test"):
    assert_same_examples(getattr(ds, split), *written[split])
  # A machine without TensorFlow (a GPU box the folder was copied to) reads the same
  # arrays, and download=True does not ask for TensorFlow when the data is there.
  script = (
    "import sys, numpy as np\n"
    "from jaxtrain.data import load_dataset\n"
    f"ds = load_dataset('cifar10', data_dir={str(data_dir)!r}, download=True)\n"
    "assert 'tensorflow' not in sys.modules\n"
    f"np.savez({str(tmp_path / 'read.npz')!r}, images=ds.train.images, labels=ds.train.labels)\n"
  )
  run_without_tensorflow(script, tmp_path)
  read = np.load(tmp_path / "read.npz")
  np.testing.assert_array_equal(read["images"], ds.train.images)
  np.testing.assert_array_equal(read["labels"], ds.train.labels)


def test_failed_preparation_leaves_nothing(tmp_path, local_downloads):
  needs_tensorflow()
  server = tmp_path / "server"
  write_cifar10(server, per_batch=4, n_test=4, seed=3)
  # The same archive with test_batch.bin cut inside its last record: tfds' parser
  # fails after it has written the training split.
  with tarfile.open(server / "cifar-10-binary.tar.gz") as tar:
    members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
  members["cifar-10-batches-bin/test_batch.bin"] = members["cifar-10-batches-bin/test_batch.bin"][
    :-100
  ]
  with tarfile.open(server / "cifar-10-binary.tar.gz", "w:gz") as tar:
    for name, content in members.items():
      info = tarfile.TarInfo(name)
      info.size = len(content)
      tar.addfile(info, io.BytesIO(content))
  local_downloads(server)
  data_dir = tmp_path / "tfds"
  with pytest.raises(
    data.DatasetDownloadError,
    match="preparing 'cifar10' .* failed: .*Nothing half-prepared was kept",
  ) as info:
    data.load_dataset("cifar10", data_dir=data_dir, download=True)
  assert "\n" not in str(info.value)
  assert_left_empty(data_dir)
  with pytest.raises(data.DatasetNotFoundError, match="not prepared"):
    data.load_dataset("cifar10", data_dir=data_dir)


def test_prepared_in_another_format_is_reported(tmp_path, local_downloads, small_mnist):
  needs_tensorflow()
  write_mnist(tmp_path / "server", 10, 10, seed=7)
  small_mnist(10, 10)
  local_downloads(tmp_path / "server")
  path = data.prepare_tfds_dataset("mnist", data_dir=tmp_path / "tfds", stream=io.StringIO())
  info = json.loads((path / "dataset_info.json").read_text())
  info["fileFormat"] = "tfrecord"  # as `tfds build` without --file_format writes it
  (path / "dataset_info.json").write_text(json.dumps(info))
  with pytest.raises(data.DatasetDownloadError, match="not in the array_record format"):
    data.load_dataset("mnist", data_dir=tmp_path / "tfds", download=True)


# --- failures, at once and in one line (no TensorFlow needed) ----------------------


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_without_tensorflow_download_names_the_extra(name, tmp_path, monkeypatch, capsys):
  # find_spec finds no TensorFlow, as where it is not installed (the test extra
  # installs it); tfds' and etils' own look-ups go through find_spec too.
  find_spec = importlib.util.find_spec
  monkeypatch.setattr(
    importlib.util,
    "find_spec",
    lambda name, *args: None if name.split(".")[0] == "tensorflow" else find_spec(name, *args),
  )
  data_dir = tmp_path / "tfds"
  start = time.perf_counter()
  with pytest.raises(
    data.DatasetDownloadError,
    match=r"needs TensorFlow .* not installed: pip install 'jaxtrain\[prepare\]'",
  ):
    data.load_dataset(name, data_dir=data_dir, download=True)
  assert time.perf_counter() - start < 10
  assert_left_empty(data_dir)
  code = train.main(["--dataset", name, "--download", "--data-dir", str(data_dir)])
  err = capsys.readouterr().err
  assert code == 2
  assert err.count("\n") == 1 and "pip install 'jaxtrain[prepare]'" in err


def test_without_download_nothing_is_fetched(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(prepare, "prepare_tfds_dataset", lambda *a, **k: calls.append(a))
  with pytest.raises(data.DatasetNotFoundError, match="--download") as info:
    data.load_dataset("cifar10", data_dir=tmp_path)
  assert not isinstance(info.value, data.DatasetDownloadError)
  assert "pip install 'jaxtrain[prepare]'" in str(info.value)
  assert calls == [] and os.listdir(tmp_path) == []
  config, _ = train.config_from_args(["--out", str(tmp_path / "run")])
  assert config.download is False and loop.Config().download is False


def test_offline_download_fails_fast_in_one_line(tmp_path, monkeypatch, capsys):
  # Offline: every name lookup fails, as on this machine (no network).
  attempts = []

  def no_network(host, *args, **kwargs):
    attempts.append(host)
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

  monkeypatch.setattr(socket, "getaddrinfo", no_network)
  monkeypatch.setattr(prepare, "_tensorflow_missing", lambda: False)  # fails before it is used
  data_dir = tmp_path / "tfds"
  start = time.perf_counter()
  with pytest.raises(data.DatasetDownloadError) as info:
    data.load_dataset("mnist", data_dir=data_dir, download=True)
  assert time.perf_counter() - start < 10
  assert str(info.value).startswith(
    "cannot download 'mnist': storage.googleapis.com does not answer (gaierror: [Errno -2] "
    "Name or service not known). Without internet here, prepare it on a machine with"
  )
  assert "\n" not in str(info.value)
  assert attempts == ["storage.googleapis.com"]  # one request, before tfds' threads start
  assert_left_empty(data_dir)
  # The command line: one line, exit status 2.
  code = train.main(["--dataset", "mnist", "--download", "--data-dir", str(data_dir)])
  err = capsys.readouterr().err
  assert code == 2 and err.count("\n") == 1
  assert err.startswith("python -m jaxtrain.train: error: cannot download 'mnist'")


def test_download_retries_are_cut(monkeypatch):
  # tfds' downloader (requests + urllib3's Retry, 10 retries, exponential backoff)
  # on a URL whose host never answers: with the cut, 1 + DOWNLOAD_RETRIES attempts.
  from tensorflow_datasets.core.download import downloader

  attempts = []

  def no_network(host, *args, **kwargs):
    attempts.append(host)
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

  monkeypatch.setattr(socket, "getaddrinfo", no_network)
  start = time.perf_counter()
  with prepare._few_retries(), pytest.raises(OSError, match="Max retries exceeded"):
    with downloader._open_url("https://storage.googleapis.com/x.gz", verify=True):
      pass
  assert time.perf_counter() - start < 5
  assert len(attempts) == 1 + prepare.DOWNLOAD_RETRIES == 4
  assert downloader.MAX_RETRIES == 10  # tfds' own setting is back


def test_failed_download_leaves_nothing(tmp_path, monkeypatch, local_downloads, small_mnist):
  # The host answered, then one file fails as tfds reports an HTTP error.
  import tensorflow_datasets as tfds
  from promise import Promise
  from tensorflow_datasets.core.download import download_manager

  needs_tensorflow()  # tfds extracts the other files with it
  write_mnist(tmp_path / "server", 10, 10, seed=1)
  small_mnist(10, 10)
  local_downloads(tmp_path / "server")
  serve = download_manager.DownloadManager._download

  def fetch(self, resource):
    if "t10k-labels" in resource.url:
      return Promise.reject(
        tfds.download.DownloadError(f"Failed to get url {resource.url}. HTTP code: 503.")
      )
    return serve(self, resource)

  monkeypatch.setattr(download_manager.DownloadManager, "_download", fetch)
  data_dir = tmp_path / "tfds"
  with pytest.raises(data.DatasetDownloadError) as info:
    data.load_dataset("mnist", data_dir=data_dir, download=True)
  assert str(info.value).startswith(
    "downloading 'mnist' failed: DownloadError: Failed to get url "
    "https://storage.googleapis.com/cvdf-datasets/mnist/t10k-labels-idx1-ubyte.gz. "
    "HTTP code: 503. Nothing of it was kept"
  )
  assert_left_empty(data_dir)


def test_unwritable_data_dir(tmp_path, monkeypatch):
  monkeypatch.setattr(prepare, "_tensorflow_missing", lambda: False)  # fails before it is used
  blocker = tmp_path / "a-file"
  blocker.write_text("")
  # A folder under a regular file cannot be created (root ignores permission bits,
  # so a read-only folder would not fail here).
  with pytest.raises(
    data.DatasetDownloadError, match=r"cannot write to data_dir .*a-file/tfds.* Not a directory"
  ):
    data.load_dataset("cifar10", data_dir=blocker / "tfds", download=True)
  assert blocker.read_text() == ""


def test_unknown_names(tmp_path):
  with pytest.raises(ValueError, match="name='no_such_dataset' is not a tensorflow-datasets"):
    data.prepare_tfds_dataset("no_such_dataset", data_dir=tmp_path)
  with pytest.raises(ValueError, match="digits, mnist, fashion_mnist, cifar10, synthetic"):
    data.load_dataset("imagenet", download=True)
  assert os.listdir(tmp_path) == []
