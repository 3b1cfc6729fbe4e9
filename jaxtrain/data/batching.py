"""Minibatches of an in-memory split, in an order fixed by ``(seed, epoch)``.

torch's ``DataLoader(dataset, batch_size, shuffle=True, drop_last=True)`` draws a
new order from a global generator each epoch. Here the order is a pure function
of ``(seed, epoch)``: a run resumed at epoch ``e`` sees the batches it would have
seen, and the trainer can run a whole epoch on the device by gathering with
``epoch_permutation`` (the same order ``batches`` yields).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from jaxtrain.data.dataset import Split


def _check_index(arg: str, value: int) -> None:
  # default_rng([seed, epoch]) needs non-negative integers; say which one is wrong.
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
    raise ValueError(f"{arg} must be a non-negative integer, got {value!r}")


def _check_batch_size(batch_size: int) -> None:
  if (
    isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0
  ):
    raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
  """The order in which epoch ``epoch`` visits ``n`` examples.

  ``np.random.default_rng([seed, epoch]).permutation(n)``: the same
  ``(seed, epoch)`` gives the same order on every machine, and every epoch a
  different one.

  Args:
    n: number of examples.
    seed: the run's seed, ``>= 0``.
    epoch: the epoch, ``>= 0``.

  Returns:
    ``(n,)`` int32, a permutation of ``range(n)`` (int32 so that it gathers on
    the device without a cast; JAX's default integer is 32-bit).
  """
  _check_index("n", n)
  _check_index("seed", seed)
  _check_index("epoch", epoch)
  return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int32)


def num_batches(n: int, batch_size: int, drop_last: bool) -> int:
  """Number of batches in one epoch, as ``len(DataLoader)``.

  Args:
    n: number of examples.
    batch_size: examples per batch, ``> 0``.
    drop_last: drop the last batch when it is smaller than ``batch_size``.

  Returns:
    ``n // batch_size`` with ``drop_last``, else ``ceil(n / batch_size)``. It is 0
    when ``drop_last`` and ``batch_size > n``, as in torch; ``batches`` raises then.
  """
  _check_index("n", n)
  _check_batch_size(batch_size)
  return n // batch_size if drop_last else -(-n // batch_size)


class Batches:
  """The batches of one epoch: iterable (repeatably, same order) with ``len``.

  Made by ``batches``; ``len`` is the number of batches, as ``len(DataLoader)``.
  """

  def __init__(
    self,
    split: Split,
    order: np.ndarray | None,
    batch_size: int,
    drop_last: bool,
    rows: slice | np.ndarray | None = None,
  ):
    self._split = split
    self._order = order
    self._batch_size = batch_size
    self._rows = rows
    self._len = num_batches(len(split), batch_size, drop_last)

  def __len__(self) -> int:
    return self._len

  def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    images, labels = self._split.images, self._split.labels
    for b in range(self._len):
      lo, hi = b * self._batch_size, (b + 1) * self._batch_size
      if self._order is None:
        # In order: slices are views, no copy.
        x, y = images[lo:hi], labels[lo:hi]
        yield (x, y) if self._rows is None else (x[self._rows], y[self._rows])
      else:
        idx = self._order[lo:hi]
        idx = idx if self._rows is None else idx[self._rows]
        yield images[idx], labels[idx]


def batches(
  split: Split,
  *,
  batch_size: int,
  seed: int,
  epoch: int,
  shuffle: bool = True,
  drop_last: bool = True,
  rows: slice | np.ndarray | None = None,
) -> Batches:
  """The minibatches of one epoch of ``split``.

  With ``shuffle``, batch ``b`` holds the examples
  ``epoch_permutation(len(split), seed, epoch)[b * batch_size:(b + 1) * batch_size]``;
  without, the examples in stored order (``seed`` and ``epoch`` are then unused).

  Args:
    split: the examples.
    batch_size: examples per batch, ``> 0``; with ``drop_last`` at most ``len(split)``.
    seed: the run's seed, ``>= 0``.
    epoch: the epoch, ``>= 0``; each epoch has its own order.
    shuffle: visit the examples in a random order (torch's ``shuffle``).
    drop_last: drop the last batch when smaller than ``batch_size``, as torch's
      ``DataLoader(drop_last=True)`` used by the notes; else yield it short.
    rows: yield only these rows of each batch (a slice or an index array into
      ``range(batch_size)``): a process's share of each global batch in a
      multi-process run (``jaxtrain.parallel.process_rows``); ``None``: all.
      Only the selected examples are gathered.

  Returns:
    A ``Batches``: iterating yields ``(images, labels)`` numpy pairs,
    ``(B, H, W, C)`` images as stored (uint8 pixels: ``to_float`` scales them) and ``(B,)``
    int32; ``len`` is the batch count.

  Raises:
    ValueError: ``batch_size <= 0``, or ``batch_size > len(split)`` with
      ``drop_last`` (the epoch would have no batch at all), or a negative
      ``seed``/``epoch``.
  """
  n = len(split)
  _check_batch_size(batch_size)
  if drop_last and batch_size > n:
    raise ValueError(
      f"batch_size={batch_size} is larger than the split's {n} examples; with "
      "drop_last=True the epoch would have no batch"
    )
  _check_index("seed", seed)
  _check_index("epoch", epoch)
  order = epoch_permutation(n, seed, epoch) if shuffle else None
  return Batches(split, order, batch_size, drop_last, rows)
