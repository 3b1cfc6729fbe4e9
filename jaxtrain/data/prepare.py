"""Downloading and preparing a tensorflow-datasets dataset: what ``download=True`` does.

``prepare_tfds_dataset(name)`` runs tfds' own builder for ``name`` (its download
URLs, checksums and parsing code) and writes the dataset in the ``array_record``
format that :mod:`jaxtrain.data.tfds_source` reads. tfds' builders encode the
images as PNG with TensorFlow, so this one step needs it: ``pip install
'jaxtrain[prepare]'`` (tensorflow-cpu). Reading the result does not.

What it guarantees, beyond calling ``builder.download_and_prepare``:

* It fails fast. TensorFlow is looked for before anything is fetched; each host
  must answer one request within ``CONNECT_TIMEOUT_S`` (offline: at once), and a
  download is retried ``DOWNLOAD_RETRIES`` times, not tfds' 10 with exponential
  backoff (offline, about 200 s of waiting). Every failure ends in one
  ``DatasetDownloadError`` line that says what failed.
* Nothing half-prepared is left where a load would read it. tfds writes into an
  ``incomplete.*`` folder beside the dataset's version folder and renames it into
  place only on success (and removes it on failure); the raw downloads go to a
  temporary folder in ``data_dir`` that is removed afterwards, success or not,
  and a folder this call created and left empty is removed too.
* Progress shows: tfds' tqdm bars on a terminal; elsewhere (a log file, a CI
  log) one line before and one after, not a stream of carriage returns.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import pathlib
import shutil
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from typing import Any

from jaxtrain.data.tfds_source import DatasetNotFoundError

# How the missing TensorFlow is installed; every message that needs it says this.
PREPARE_INSTALL = "pip install 'jaxtrain[prepare]'"

# Download retries per file, in place of tfds' 10: urllib3 backs off 0.2 s x 2^k
# between attempts, so 10 retries wait ~200 s before a failing download gives up, 3 ~1 s.
DOWNLOAD_RETRIES = 3
# How long the reachability check waits for each host to answer.
CONNECT_TIMEOUT_S = 10


class DatasetDownloadError(DatasetNotFoundError):
  """``download=True`` could not prepare the dataset: no TensorFlow, no network, no space...

  A ``DatasetNotFoundError`` (the dataset is still not there), so code that
  handles a missing dataset handles this too. The message is one line.
  """


def _tensorflow_missing() -> bool:
  # find_spec, not import: importing TensorFlow takes seconds, and this check
  # must answer at once.
  return importlib.util.find_spec("tensorflow") is None


def _dataset_size(path: pathlib.Path) -> int:
  return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _mib(n: int) -> str:
  return f"{n / 2**20:.1f} MiB"


def _root_cause(error: BaseException) -> BaseException:
  """The innermost exception of a chain (e.g. the socket error under requests')."""
  seen = set()
  while id(error) not in seen:
    seen.add(id(error))
    cause = error.__cause__ or error.__context__
    if cause is None:
      break
    error = cause
  return error


def _one_line(error: BaseException) -> str:
  """``Type: message`` on one line, without a final period (the caller's sentence goes on)."""
  return " ".join(f"{type(error).__name__}: {error}".split()).rstrip(".")


@contextlib.contextmanager
def _few_retries() -> Iterator[None]:
  """tfds' downloader retries each file ``DOWNLOAD_RETRIES`` times, not 10, meanwhile.

  A module-level setting of tfds: restored on exit, so importing jaxtrain
  changes nothing and only this call sees it.
  """
  from tensorflow_datasets.core.download import downloader

  retries = downloader.MAX_RETRIES
  downloader.MAX_RETRIES = DOWNLOAD_RETRIES
  try:
    yield
  finally:
    downloader.MAX_RETRIES = retries


def _check_reachable(name: str, urls) -> None:
  """One HEAD request per host, with a timeout: a machine without a network fails here.

  tfds' downloader has no timeout (a silently dropped connection waits for the
  system's), and its worker threads go on retrying the other files after the
  first one failed. This check fails first, at once, in one thread. Any HTTP
  answer counts as reachable; requests honours the HTTPS_PROXY variables as
  tfds' downloads do.
  """
  import requests

  first_url = {}
  for url in urls:
    first_url.setdefault(urllib.parse.urlparse(url).netloc, url)
  for host, url in first_url.items():
    try:
      requests.head(url, timeout=CONNECT_TIMEOUT_S, allow_redirects=False)
    except requests.RequestException as e:
      raise DatasetDownloadError(
        f"cannot download {name!r}: {host} does not answer ({_one_line(_root_cause(e))}). "
        "Without internet here, prepare it on a machine with internet and copy its "
        f"{name!r} folder into data_dir (docs/data.md)"
      ) from e


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
  """tfds' tqdm bars on or off for the duration (tfds has one global switch)."""
  from tensorflow_datasets.core.utils import tqdm_utils

  before = getattr(tqdm_utils, "_active", True)  # tfds keeps the switch here, no getter
  tqdm_utils.display_progress_bar(enabled)
  try:
    yield
  finally:
    tqdm_utils.display_progress_bar(before)


def _made_dirs(path: pathlib.Path) -> list[pathlib.Path]:
  """Creates ``path`` and its missing parents; returns the ones created, deepest first."""
  missing = []
  p = path
  while not p.exists():
    missing.append(p)
    if p.parent == p:
      break
    p = p.parent
  path.mkdir(parents=True, exist_ok=True)
  return missing


def _remove_if_empty(paths) -> None:
  for p in paths:
    with contextlib.suppress(OSError):  # not empty, or gone: leave it
      p.rmdir()


def _download_errors(tfds) -> tuple[type[BaseException], ...]:
  """What a failed download raises: requests' errors (no network, refused, timed out,
  too many retries), tfds' ``DownloadError`` (an HTTP status other than 200) and its
  checksum mismatch (a file that is not the one tfds registered)."""
  import requests
  from tensorflow_datasets.core.download import download_manager

  return (
    requests.RequestException,
    tfds.download.DownloadError,
    download_manager.NonMatchingChecksumError,
  )


def _hosts(urls) -> str:
  return ", ".join(sorted({urllib.parse.urlparse(u).netloc for u in urls})) or "its sources"


def prepare_tfds_dataset(
  name: str, *, data_dir: str | os.PathLike | None = None, stream: Any = None
) -> pathlib.Path:
  """Downloads and prepares the tfds dataset ``name`` in ``data_dir``, unless it is there.

  Equivalent to ``tfds build NAME --file_format=array_record --data_dir=DATA_DIR``
  with tfds' own builder (download URLs, checksum verification, parsing), plus the
  guarantees in this module's docstring. The raw downloads are deleted
  afterwards: only the prepared dataset stays.

  Args:
    name: a tfds dataset name, e.g. ``"cifar10"``.
    data_dir: where to prepare it; ``None`` means tfds' default
      (``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``). Created if missing.
    stream: where the progress lines go (default ``sys.stderr``, where tqdm
      draws its bars); bars are drawn only if it is a terminal.

  Returns:
    The dataset's folder, ``data_dir/name/version``.

  Raises:
    ValueError: ``name`` is not a tfds dataset.
    DatasetDownloadError: TensorFlow is not installed (the message says
      ``pip install 'jaxtrain[prepare]'``); ``data_dir`` cannot be written; the
      download failed (offline, a server error, a checksum mismatch); the disk
      is full; or ``name`` is already prepared there in another file format.
  """
  import tensorflow_datasets as tfds

  stream = sys.stderr if stream is None else stream
  try:
    builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
  except tfds.core.DatasetNotFoundError:  # a ValueError: caught first
    raise ValueError(f"name={name!r} is not a tensorflow-datasets dataset") from None
  except ValueError as e:
    # "File format is already set to FileFormat.TFRECORD": prepared by another
    # tool in the default format. tfds will not write a second format beside it.
    if "file format" not in str(e).lower():
      raise
    where = os.fspath(tfds.builder(name, data_dir=data_dir).data_dir)
    raise DatasetDownloadError(
      f"{name!r} is already prepared in {where!r}, but not in the array_record format "
      "jaxtrain reads; delete that folder, or pass another data_dir, and download again"
    ) from e
  target = pathlib.Path(os.fspath(builder.data_dir))
  if (target / "dataset_info.json").exists():
    return target
  if _tensorflow_missing():
    raise DatasetDownloadError(
      f"preparing {name!r} needs TensorFlow (tfds' builders write the images with it), "
      f"which is not installed: {PREPARE_INSTALL}"
    )

  root = pathlib.Path(os.fspath(builder.data_dir_root)).expanduser()
  dataset_dir = target.parent
  new_dataset_dir = not dataset_dir.exists()
  created: list[pathlib.Path] = []
  try:
    created = _made_dirs(root)
    download_dir = pathlib.Path(tempfile.mkdtemp(prefix=f".{name}-download-", dir=root))
  except OSError as e:
    _remove_if_empty(created)
    raise DatasetDownloadError(
      f"cannot write to data_dir {os.fspath(root)!r} to prepare {name!r}: {_one_line(e)}; "
      "pass a folder you can write (--data-dir)"
    ) from e
  try:
    urls = sorted(builder.url_infos or {})
    _check_reachable(name, urls)
    download_bytes = sum(int(info.size) for info in builder.url_infos.values()) if urls else 0
    print(
      f"jaxtrain: downloading {name} ("
      f"{_mib(download_bytes) if download_bytes else 'size unknown'} from {_hosts(urls)}) "
      f"and preparing it in {os.fspath(target)}",
      file=stream,
      flush=True,
    )
    bars = bool(getattr(stream, "isatty", lambda: False)())
    # tfds prints its own two lines to stdout ("Downloading and preparing dataset
    # Unknown size ..."): this call's lines replace them, and stdout stays for the
    # caller (the command line's --progress json writes JSON there).
    with _few_retries(), _progress_bars(bars), contextlib.redirect_stdout(io.StringIO()):
      builder.download_and_prepare(
        download_dir=download_dir,
        # tfds would otherwise first look for a TFRecord copy on its own bucket.
        download_config=tfds.download.DownloadConfig(try_download_gcs=False),
      )
  except DatasetDownloadError:
    raise
  except _download_errors(tfds) as e:
    request = getattr(e, "request", None)  # requests' exceptions carry the URL
    url = f" from {request.url}" if getattr(request, "url", None) else ""
    raise DatasetDownloadError(
      f"downloading {name!r}{url} failed: {_one_line(_root_cause(e))}. Nothing of it was "
      f"kept in {os.fspath(root)!r}"
    ) from e
  except ImportError as e:  # TensorFlow found, but it does not import
    raise DatasetDownloadError(
      f"preparing {name!r} needs a working TensorFlow: {_one_line(e)}; {PREPARE_INSTALL}"
    ) from e
  except Exception as e:
    # Not enough disk space, a full disk, a file tfds cannot parse or extract: one
    # line for the command line; Python callers keep the cause (``from e``).
    raise DatasetDownloadError(
      f"preparing {name!r} in {os.fspath(root)!r} failed: {_one_line(e)}. Nothing "
      "half-prepared was kept"
    ) from e
  finally:
    shutil.rmtree(download_dir, ignore_errors=True)
    _remove_if_empty(([dataset_dir] if new_dataset_dir else []) + created)
  print(
    f"jaxtrain: prepared {name}: {_mib(_dataset_size(target))} in {os.fspath(target)}",
    file=stream,
    flush=True,
  )
  return target
