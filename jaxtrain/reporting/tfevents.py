"""Reading TensorBoard event files back, without TensorFlow or TensorBoard.

An event file is a TFRecord file of ``Event`` protocol buffers; the protos come
from tensorboardX (a dependency already, for writing them).
"""

from __future__ import annotations

import glob
import os
import struct
from collections.abc import Iterable


def _records(path: str, *, check_crc: bool) -> Iterable[bytes]:
  """The records of one TFRecord file; stops quietly at a truncated last record.

  Each record is: uint64 length, uint32 masked CRC32C of the length, the data,
  uint32 masked CRC32C of the data (all little-endian). A run killed while
  writing leaves a partial last record; it is skipped, as TensorBoard does.
  """
  from tensorboardX.record_writer import masked_crc32c  # noqa: PLC0415

  with open(path, "rb") as f:
    while True:
      header = f.read(12)
      if len(header) < 12:
        return
      (length,), (length_crc,) = struct.unpack("<Q", header[:8]), struct.unpack("<I", header[8:])
      if check_crc and masked_crc32c(header[:8]) != length_crc:
        raise ValueError(f"{path}: corrupt record header (CRC mismatch)")
      data = f.read(length)
      footer = f.read(4)
      if len(data) < length or len(footer) < 4:
        return
      if check_crc and masked_crc32c(data) != struct.unpack("<I", footer)[0]:
        raise ValueError(f"{path}: corrupt record data (CRC mismatch)")
      yield data


def read_scalars(
  tensorboard_dir: str | os.PathLike, *, check_crc: bool = True
) -> dict[str, list[tuple[int, float]]]:
  """Reads the scalars of TensorBoard event files, without TensorFlow or TensorBoard.

  Args:
    tensorboard_dir: a directory of ``events.out.tfevents.*`` files (read in
      name order, i.e. by creation time), or one event file.
    check_crc: verify the records' checksums (pure-python CRC32C unless the
      ``crc32c`` package is installed; turn off for very large files).

  Returns:
    tag -> [(step, value), ...] in the order written. Values are float32 as
    stored (``simple_value``; scalars written as tensors are read too).
  """
  from tensorboardX.proto import event_pb2  # noqa: PLC0415

  path = os.fspath(tensorboard_dir)
  files = (
    [path]
    if os.path.isfile(path)
    else sorted(glob.glob(os.path.join(path, "**", "*tfevents*"), recursive=True))
  )
  scalars: dict[str, list[tuple[int, float]]] = {}
  for name in files:
    for data in _records(name, check_crc=check_crc):
      try:
        event = event_pb2.Event.FromString(data)
      except Exception as e:  # protobuf's DecodeError; one error type for bad files
        raise ValueError(f"{name}: corrupt event record ({e})") from e
      if not event.HasField("summary"):
        continue
      for value in event.summary.value:
        kind = value.WhichOneof("value")
        if kind == "simple_value":
          number = value.simple_value
        elif kind == "tensor" and len(value.tensor.float_val) == 1:
          number = value.tensor.float_val[0]
        elif kind == "tensor" and len(value.tensor.double_val) == 1:
          number = value.tensor.double_val[0]
        else:  # images, histograms, text: not scalars
          continue
        scalars.setdefault(value.tag, []).append((int(event.step), float(number)))
  return scalars
