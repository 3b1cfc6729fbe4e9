"""How the writers write files: ``OutputError``, atomic replacement, appends that undo themselves.

A full disk (or a read-only or unwritable folder) must not leave a damaged
file in place of a good one, and must reach the caller as one error that names
the file:

* :func:`write_atomic` writes a temporary file next to the target and renames
  it over the target: the target is the old file or the new one, never half
  of one (config.json, curves.png);
* :func:`append` cuts the file back to its length before the write when the
  write fails: a JSON-lines or CSV file keeps whole lines (metrics.jsonl,
  metrics.csv);
* :func:`writing` turns any ``OSError`` raised inside it into an
  :class:`OutputError` naming the file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator


class OutputError(OSError):
  """Writing one of a run's outputs failed: a full disk, a read-only or unwritable folder.

  ``str()`` is one line naming the file and the operating system's error, e.g.
  ``could not write runs/x/curves.png: [Errno 28] No space left on device``.
  ``errno``, ``strerror`` and ``filename`` are those of the ``OSError`` it
  wraps (which is its ``__cause__``), with ``filename`` the output's path.
  """

  def __init__(self, path: str | os.PathLike, error: OSError):
    # strerror is None for an OSError made from a bare message: keep the message.
    super().__init__(error.errno, error.strerror or str(error), os.fspath(path))

  def __str__(self) -> str:
    reason = self.strerror if self.errno is None else f"[Errno {self.errno}] {self.strerror}"
    return f"could not write {self.filename}: {reason}"


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
  """Raises any ``OSError`` from its body as an ``OutputError`` naming ``path``."""
  try:
    yield
  except OutputError:
    raise
  except OSError as e:
    raise OutputError(path, e) from e


def write_atomic(path: str, data: str | bytes) -> None:
  """Writes ``path`` through a temporary file in its folder and ``os.replace``.

  Raises:
    OutputError: the write failed; ``path`` is as it was, and no temporary file is left.
  """
  directory, base = os.path.split(os.path.abspath(path))
  # Not tempfile.mkstemp: it creates files with mode 0600, and os.replace would
  # carry that to config.json and curves.png. os.open(..., 0o666) applies the
  # umask like an ordinary open(); O_EXCL with a random name avoids collisions.
  tmp = os.path.join(directory, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
  with writing(path):
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
      with os.fdopen(fd, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
      os.replace(tmp, path)
    except BaseException:
      with contextlib.suppress(OSError):  # the error being raised is the one to report
        os.remove(tmp)
      raise


def append(path: str, text: str) -> None:
  """Appends ``text`` (UTF-8) to ``path``, creating it; all of it or, on failure, none.

  Raises:
    OutputError: the write failed; ``path`` is cut back to its length before
      the call, so it never ends in a partial line.
  """
  with writing(path):
    # Binary: the bytes written are exactly the text's (a CSV's "\r\n" stays).
    f = open(path, "ab")  # noqa: SIM115  (closed below, before the cut)
    size = f.tell()  # append mode starts at the end
    try:
      f.write(text.encode("utf-8"))
      f.close()
    except BaseException:
      with contextlib.suppress(OSError):  # the buffer's failed flush, again
        f.close()
      with contextlib.suppress(OSError):  # if even this fails, the first error still tells
        os.truncate(path, size)
      raise
