"""PyTorch interop: the notes' models' ``state_dict`` <-> Flax NNX parameters, ``.pt`` files.

The notes define their models in torch; these functions move the weights of those
exact definitions into the matching :mod:`jaxtrain.models` and back, so that a
torch checkpoint runs (and keeps training) in jaxtrain and a jaxtrain model can be
handed back to torch::

  model = models.CNN(in_channels=3, image_size=32, rngs=nnx.Rngs(0))
  load_torch_checkpoint(model, "tudui_9.pth")          # torch.save(tudui.state_dict(), ...)
  ...
  save_torch_checkpoint(model, "from_jax.pth")         # tudui.load_state_dict(torch.load(...))

Conversions (torch -> jaxtrain; the reverse is the exact inverse):

* ``nn.Conv2d.weight`` ``(O, I, kh, kw)`` -> :class:`~jaxtrain.models.Conv2d` kernel
  ``(kh, kw, I, O)`` (OIHW -> HWIO).
* ``nn.Linear.weight`` ``(out, in)`` -> ``nnx.Linear`` kernel ``(in, out)`` (transposed).
* ``nn.RNN.weight_ih_l0`` / ``weight_hh_l0`` -> ``weight_ih`` / ``weight_hh`` transposed.
* Biases as they are.
* The CNN's first Linear: torch flattens the NCHW feature map in ``(C, H, W)``
  order, jaxtrain flattens NHWC in ``(H, W, C)`` order, so the columns of torch's
  ``fc1.weight`` are permuted from ``(C, H, W)`` to ``(H, W, C)`` before the
  transpose. Without this the logits differ although every shape matches.

Key names are those of the notes' torch definitions:

==================  ======================================================================
model               torch keys
==================  ======================================================================
``CNN``             ``model1.{0,2,4,7,8}.{weight,bias}`` (``Tudui``'s ``self.model1``
                    Sequential, 000_dc5555055295abc4.txt); a bare ``nn.Sequential``'s
                    ``{0,2,4,7,8}.*`` is accepted too (``prefix=""`` to write it)
``MLP``             ``hidden.*``, ``output.*`` (004_3b1cf40aed2d068d.txt)
``RNNClassifier``   ``rnn.{weight_ih_l0,weight_hh_l0,bias_ih_l0,bias_hh_l0}``, ``fc.*``
                    (001_42dfbdd5dad21a82.txt)
``RegressionNet``   ``{0,2}.*`` of ``Sequential(Linear, ReLU, Linear)`` (002_be92e9498db7b7c3.txt)
``SoftmaxRegression``  ``1.*`` of ``Sequential(Flatten(), Linear)`` (d2l, 003_e24e918ed2af1c93.txt)
==================  ======================================================================

A ``module.`` prefix (``nn.DataParallel``) is stripped when loading.

torch is imported only inside the functions that need it (saving, loading files,
building tensors): it is a dependency of interop, not of jaxtrain.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from flax import nnx

from jaxtrain import models


def _import_torch():
  """``torch``, or an ImportError that says how to get it."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:  # pragma: no cover - torch is installed in the test env
    raise ImportError(
      "jaxtrain.interop needs PyTorch to read or write torch tensors and checkpoints: "
      "pip install torch"
    ) from e
  return torch


# --- per-tensor conversions ------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
  """One torch tensor <-> one NNX parameter.

  Attributes:
    key: the torch ``state_dict`` key (without the model's prefix).
    variable: the NNX ``Param`` it fills.
    torch_shape: the shape torch holds it in.
    to_nnx: numpy array in torch layout -> numpy array in NNX layout.
    to_torch: numpy array in NNX layout -> numpy array in torch layout.
  """

  key: str
  variable: nnx.Variable
  torch_shape: tuple[int, ...]
  to_nnx: Callable[[np.ndarray], np.ndarray]
  to_torch: Callable[[np.ndarray], np.ndarray]


def _same(a: np.ndarray) -> np.ndarray:
  return a


def _transpose(a: np.ndarray) -> np.ndarray:
  return a.T


def _oihw_to_hwio(a: np.ndarray) -> np.ndarray:
  return a.transpose(2, 3, 1, 0)


def _hwio_to_oihw(a: np.ndarray) -> np.ndarray:
  return a.transpose(3, 2, 0, 1)


def _shape(variable: nnx.Variable) -> tuple[int, ...]:
  return tuple(variable[...].shape)


def _linear(key: str, layer: nnx.Linear) -> list[_Entry]:
  """``nn.Linear``: weight ``(out, in)`` is the transposed kernel ``(in, out)``."""
  k_in, k_out = _shape(layer.kernel)
  return [
    _Entry(f"{key}.weight", layer.kernel, (k_out, k_in), _transpose, _transpose),
    _Entry(f"{key}.bias", layer.bias, _shape(layer.bias), _same, _same),
  ]


def _conv(key: str, layer: models.Conv2d) -> list[_Entry]:
  """``nn.Conv2d``: weight OIHW <-> kernel HWIO."""
  kh, kw, c_in, c_out = _shape(layer.kernel)
  return [
    _Entry(f"{key}.weight", layer.kernel, (c_out, c_in, kh, kw), _oihw_to_hwio, _hwio_to_oihw),
    _Entry(f"{key}.bias", layer.bias, _shape(layer.bias), _same, _same),
  ]


def _flatten_linear(key: str, layer: nnx.Linear, channels: int, side: int) -> list[_Entry]:
  """The Linear after ``nn.Flatten`` of a ``(channels, side, side)`` feature map.

  torch's weight columns are indexed ``(c, h, w)`` (NCHW flatten); jaxtrain's kernel
  rows ``(h, w, c)`` (NHWC flatten). Same network up to this permutation.
  """
  k_in, k_out = _shape(layer.kernel)
  if k_in != channels * side * side:  # the CNN's own invariant; guards a changed model
    raise ValueError(f"{key}: kernel has {k_in} inputs, expected {channels}*{side}*{side}")

  def to_nnx(w):  # (out, C*H*W) -> (H*W*C, out)
    return w.reshape(k_out, channels, side, side).transpose(0, 2, 3, 1).reshape(k_out, -1).T

  def to_torch(k):  # (H*W*C, out) -> (out, C*H*W)
    return k.T.reshape(k_out, side, side, channels).transpose(0, 3, 1, 2).reshape(k_out, -1)

  return [
    _Entry(f"{key}.weight", layer.kernel, (k_out, k_in), to_nnx, to_torch),
    _Entry(f"{key}.bias", layer.bias, _shape(layer.bias), _same, _same),
  ]


# --- per-model layouts -----------------------------------------------------------------


def _cnn_entries(model: models.CNN) -> list[_Entry]:
  # Tudui's Sequential: 0 conv, 1 pool, 2 conv, 3 pool, 4 conv, 5 pool, 6 flatten,
  # 7 linear, 8 linear; only the layers with weights appear in the state_dict.
  channels = _shape(model.conv3.kernel)[3]
  return (
    _conv("0", model.conv1)
    + _conv("2", model.conv2)
    + _conv("4", model.conv3)
    + _flatten_linear("7", model.fc1, channels, model.image_size // 8)
    + _linear("8", model.fc2)
  )


def _rnn_entries(model: models.RNNClassifier) -> list[_Entry]:
  # nn.RNN computes x W_ih^T + h W_hh^T: its weights are ours transposed.
  w_ih, w_hh = model.weight_ih, model.weight_hh
  return [
    _Entry("rnn.weight_ih_l0", w_ih, _shape(w_ih)[::-1], _transpose, _transpose),
    _Entry("rnn.weight_hh_l0", w_hh, _shape(w_hh)[::-1], _transpose, _transpose),
    _Entry("rnn.bias_ih_l0", model.bias_ih, _shape(model.bias_ih), _same, _same),
    _Entry("rnn.bias_hh_l0", model.bias_hh, _shape(model.bias_hh), _same, _same),
  ] + _linear("fc", model.fc)


def _layout(model: nnx.Module) -> tuple[list[_Entry], str]:
  """The model's entries in torch's ``state_dict`` order, and its default key prefix."""
  if isinstance(model, models.CNN):
    return _cnn_entries(model), "model1."
  if isinstance(model, models.MLP):
    return _linear("hidden", model.hidden) + _linear("output", model.output), ""
  if isinstance(model, models.RNNClassifier):
    return _rnn_entries(model), ""
  if isinstance(model, models.RegressionNet):
    return _linear("0", model.linear1) + _linear("2", model.linear2), ""
  if isinstance(model, models.SoftmaxRegression):
    # nn.Flatten() is index 0 of d2l's Sequential. Images are flattened (C, H, W)
    # by torch and (H, W, C) here: the same order for the notes' one-channel images.
    return _linear("1", model.linear), ""
  raise TypeError(
    f"no torch layout known for {type(model).__name__}; supported: CNN, MLP, "
    "RNNClassifier, RegressionNet, SoftmaxRegression"
  )


def _to_numpy(key: str, value: Any) -> np.ndarray:
  """A torch tensor or array-like as a numpy array (torch is not imported for numpy input)."""
  if hasattr(value, "detach"):  # a torch.Tensor: bfloat16/float16 via float32
    value = value.detach().cpu()
    if value.is_floating_point():
      value = value.float()
    return value.numpy()
  try:
    return np.asarray(value)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"{key}: cannot convert a {type(value).__name__} to an array") from e


def _strip_prefix(keys: set[str], entries: list[_Entry], default_prefix: str) -> str:
  """The prefix the given keys use: ``module.`` (DataParallel) and/or the model's own."""
  expected = {e.key for e in entries}
  candidates = []
  for outer in ("", "module."):
    for inner in dict.fromkeys((default_prefix, "")):
      candidates.append(outer + inner)
  # The prefix that explains the most keys (ties: the model's default naming first).
  return max(
    candidates, key=lambda p: sum(k[len(p) :] in expected for k in keys if k.startswith(p))
  )


# --- public API ------------------------------------------------------------------------


def from_torch_state_dict(model: nnx.Module, state_dict: Mapping[str, Any]) -> nnx.Module:
  """Loads a torch ``state_dict`` of the notes' model into ``model``, in place.

  Args:
    model: a :mod:`jaxtrain.models` model whose sizes match the torch model's
      (``CNN``, ``MLP``, ``RNNClassifier``, ``RegressionNet``, ``SoftmaxRegression``).
    state_dict: torch key -> ``torch.Tensor`` or numpy array, with the notes' key
      names (see the module docstring); a ``module.`` prefix is stripped.

  Returns:
    ``model``, its parameters replaced (cast to their float32 dtype). Nothing is
    written unless every key converts (the model is unchanged on error).

  Raises:
    ValueError: a missing key, an unexpected key, or a tensor of the wrong shape;
      the message names the key(s) and, for shapes, both shapes in torch layout.
    TypeError: a model with no known torch layout.
  """
  entries, default_prefix = _layout(model)
  keys = set(state_dict)
  prefix = _strip_prefix(keys, entries, default_prefix)
  given = {k[len(prefix) :]: k for k in keys if k.startswith(prefix)}
  expected = {e.key for e in entries}
  missing = [prefix + e.key for e in entries if e.key not in given]
  unexpected = sorted(
    k for k in keys if not k.startswith(prefix) or k[len(prefix) :] not in expected
  )
  if missing or unexpected:
    raise ValueError(
      f"state_dict does not match {type(model).__name__}: missing keys {missing}, "
      f"unexpected keys {unexpected}"
    )
  new = []
  for e in entries:
    key = given[e.key]
    value = _to_numpy(key, state_dict[key])
    if tuple(value.shape) != e.torch_shape:
      raise ValueError(
        f"{key}: shape {tuple(value.shape)} in the state_dict, but {type(model).__name__} "
        f"expects {e.torch_shape} (torch layout)"
      )
    new.append(np.ascontiguousarray(e.to_nnx(value)))
  for e, value in zip(entries, new):  # all converted: now write
    e.variable[...] = value.astype(e.variable[...].dtype)
  return model


def to_torch_state_dict(model: nnx.Module, *, prefix: str | None = None) -> dict[str, Any]:
  """The torch ``state_dict`` of ``model``: the exact inverse of :func:`from_torch_state_dict`.

  Args:
    model: a supported :mod:`jaxtrain.models` model (e.g. ``merge_model(model, state)``
      after training).
    prefix: prepended to every key. ``None``: the notes' naming (``"model1."`` for the
      CNN, Tudui's attribute; nothing for the others). ``""`` gives a bare
      ``nn.Sequential``'s keys for the CNN.

  Returns:
    An ordered dict of float32 CPU ``torch.Tensor`` s, torch's key names, shapes
    and order: ``torch_model.load_state_dict(sd)`` accepts it with ``strict=True``.
  """
  torch = _import_torch()
  entries, default_prefix = _layout(model)
  prefix = default_prefix if prefix is None else prefix
  out = collections.OrderedDict()  # state_dict's own type and order
  for e in entries:
    value = np.asarray(e.variable[...], dtype=np.float32)
    out[prefix + e.key] = torch.from_numpy(np.array(e.to_torch(value), order="C"))  # own, writable
  return out


def load_torch_checkpoint(model: nnx.Module, path: str | os.PathLike) -> nnx.Module:
  """Loads a torch ``.pt``/``.pth`` file into ``model`` (in place) and returns it.

  The file is read with ``torch.load(path, map_location="cpu", weights_only=True)``
  (tensors and plain containers only: no pickled code runs). It may hold the
  ``state_dict`` itself (``torch.save(net.state_dict(), path)``, the notes' way), or
  a dict with the ``state_dict`` under ``"state_dict"`` or ``"model"`` (common
  training-checkpoint layouts). A whole pickled module (``torch.save(net, path)``)
  is refused by ``weights_only``: save its ``state_dict()`` instead.

  Raises:
    ImportError: torch is not installed.
    ValueError: the file holds no state_dict, or it does not match ``model``.
  """
  torch = _import_torch()
  obj = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
  if isinstance(obj, Mapping):
    for key in ("state_dict", "model"):
      if isinstance(obj.get(key), Mapping):
        obj = obj[key]
        break
  if not isinstance(obj, Mapping):
    raise ValueError(
      f"{os.fspath(path)}: expected a state_dict (a dict of tensors), got {type(obj).__name__}"
    )
  return from_torch_state_dict(model, obj)


def save_torch_checkpoint(
  model: nnx.Module, path: str | os.PathLike, *, prefix: str | None = None
) -> None:
  """Saves ``model``'s torch ``state_dict`` with ``torch.save``.

  The file loads with ``net.load_state_dict(torch.load(path))``.

  Args:
    model: a supported :mod:`jaxtrain.models` model.
    path: the ``.pt``/``.pth`` file to write.
    prefix: as in :func:`to_torch_state_dict`.
  """
  torch = _import_torch()
  torch.save(to_torch_state_dict(model, prefix=prefix), os.fspath(path))
