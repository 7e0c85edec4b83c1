"""CIFAR-10 from a local folder in its official "python version" format.

The folder ``cifar-10-batches-py/`` (from ``cifar-10-python.tar.gz``) holds
``data_batch_1`` … ``data_batch_5`` (10 000 training images each),
``test_batch`` (10 000) and, optionally, ``batches.meta`` (the class names).
Each batch is a Python-2 pickle of a dict with ``bytes`` keys: ``b"data"``, a
``uint8`` array of shape ``(10000, 3072)`` whose rows are one image stored
channel-major (1024 red values, then 1024 green, then 1024 blue, each 32×32
in row-major order), and ``b"labels"``, a list of ints in 0..9.

momentum_jax never downloads: the folder comes from the ``path`` argument or
else the environment variable :data:`CIFAR10_ENV_VAR`. A missing or incomplete
folder raises :class:`CIFAR10NotFoundError`, a ``FileNotFoundError`` (so
``except FileNotFoundError`` works as for any missing file) whose message
names the folder, the files expected and missing, and how to set the path.
A file that exists but does not hold a CIFAR-10 batch raises ``ValueError``.

Pickles can run code when loaded; the batches are read with an unpickler that
only accepts the few NumPy and codec functions that an array needs, so a
stray or malicious file at the configured path fails instead of executing.
"""

from __future__ import annotations

import codecs
import os
import pathlib
import pickle
from typing import Any

import numpy as np

from momentum_jax.data._dataset import Dataset

try:
  from numpy._core import multiarray as _multiarray
except ImportError:  # NumPy < 2 without the numpy._core alias.
  from numpy.core import multiarray as _multiarray

CIFAR10_ENV_VAR = "MOMENTUM_JAX_CIFAR10"
"""Environment variable naming the CIFAR-10 folder when ``path`` is not given."""

FOLDER_NAME = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
CLASS_NAMES = (
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
)
_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
_IMAGE_SIZE = 32
_NUM_PIXELS = 3 * _IMAGE_SIZE * _IMAGE_SIZE


class CIFAR10NotFoundError(FileNotFoundError):
  """The CIFAR-10 folder is not given, does not exist, or lacks batch files."""


def _how_to_fix() -> str:
  return (
    f"Download cifar-10-python.tar.gz from {_URL}, extract it "
    "(tar -xzf cifar-10-python.tar.gz), then pass "
    f"load_cifar10(path='/path/to/{FOLDER_NAME}') or set the environment "
    f"variable {CIFAR10_ENV_VAR}=/path/to/{FOLDER_NAME} (the folder that "
    f"contains {FOLDER_NAME}/ works too). momentum_jax never downloads it."
  )


def _resolve_folder(path: str | os.PathLike[str] | None, required: tuple[str, ...]) -> pathlib.Path:
  """The folder holding the batch files, or a CIFAR10NotFoundError saying why not."""
  if path is None:
    path = os.environ.get(CIFAR10_ENV_VAR)
    if not path:
      raise CIFAR10NotFoundError(
        f"No CIFAR-10 folder given: path is None and the environment "
        f"variable {CIFAR10_ENV_VAR} is not set. {_how_to_fix()}"
      )
    source = f" (from the environment variable {CIFAR10_ENV_VAR})"
  else:
    source = ""
  folder = pathlib.Path(path).expanduser().resolve()
  if not folder.exists():
    raise CIFAR10NotFoundError(
      f"The CIFAR-10 folder {folder}{source} does not exist. {_how_to_fix()}"
    )
  if not folder.is_dir():
    raise CIFAR10NotFoundError(
      f"The CIFAR-10 path {folder}{source} is a file, not a folder; if it "
      f"is the archive, extract it first. {_how_to_fix()}"
    )
  nested = folder / FOLDER_NAME
  known = (*TRAIN_FILES, TEST_FILE, META_FILE)
  note = ""
  if nested.is_dir() and not any((folder / name).exists() for name in known):
    note = f" (the {FOLDER_NAME}/ subfolder of the given {folder})"
    folder = nested
  missing = [name for name in required if not (folder / name).is_file()]
  if missing:
    if not note and len(missing) == len(required):
      note = f" (it has no {FOLDER_NAME}/ subfolder either)"
    raise CIFAR10NotFoundError(
      f"CIFAR-10 files are missing in the folder {folder}{source}{note}: "
      f"expected {', '.join(required)}; missing {', '.join(missing)}. "
      f"{_how_to_fix()}"
    )
  return folder


class _ArrayUnpickler(pickle.Unpickler):
  """Unpickles plain containers and NumPy arrays, and refuses anything else."""

  # What a NumPy array needs, under the names NumPy 1 (the official files),
  # NumPy 2 and Python 3's protocol-2 bytes encoding write.
  _ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("_codecs", "encode"): codecs.encode,
  }

  def find_class(self, module: str, name: str) -> Any:
    try:
      return self._ALLOWED[(module, name)]
    except KeyError:
      raise pickle.UnpicklingError(
        f"refusing to load {module}.{name}: a CIFAR-10 batch holds only arrays, lists and bytes"
      ) from None


def _get(batch: dict[Any, Any], key: str) -> Any:
  # The official pickles have bytes keys; re-pickled copies often have str.
  for candidate in (key.encode(), key):
    if candidate in batch:
      return batch[candidate]
  raise KeyError(key)


def _read_pickle(file: pathlib.Path) -> dict[Any, Any]:
  try:
    with open(file, "rb") as handle:
      # encoding="bytes": the official files were written by Python 2.
      content = _ArrayUnpickler(handle, encoding="bytes").load()
  except (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
  ) as error:
    raise ValueError(
      f"{file} is not a CIFAR-10 python-format batch ({error}); replace it "
      f"with the file from {_URL}"
    ) from error
  if not isinstance(content, dict):
    raise ValueError(
      f"{file} holds a {type(content).__name__}, but a CIFAR-10 "
      "batch is a dict with keys b'data' and b'labels'"
    )
  return content


def _read_batch(file: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  """Images as a uint8 (n, 32, 32, 3) view, and labels as int32 (n,)."""
  batch = _read_pickle(file)
  try:
    data, labels = _get(batch, "data"), _get(batch, "labels")
  except KeyError as error:
    raise ValueError(
      f"{file} has no key b'{error.args[0]}'; a CIFAR-10 batch has keys b'data' and b'labels'"
    ) from None
  data = np.asarray(data)
  labels = np.asarray(labels)
  if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _NUM_PIXELS:
    raise ValueError(
      f"{file}: b'data' must be uint8 of shape (n, {_NUM_PIXELS}), got {data.dtype} {data.shape}"
    )
  if labels.shape != (data.shape[0],):
    raise ValueError(f"{file}: {data.shape[0]} images but labels of shape {labels.shape}")
  if labels.size and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
    raise ValueError(f"{file}: labels must lie in 0..9, got {labels.min()}..{labels.max()}")
  # Row = [R plane | G plane | B plane], each plane 32×32 row-major: split the
  # planes off, then move the channel axis last.
  images = data.reshape(-1, 3, _IMAGE_SIZE, _IMAGE_SIZE).transpose(0, 2, 3, 1)
  return images, labels.astype(np.int32)


def _read_split(folder: pathlib.Path, names: tuple[str, ...]):
  parts = [_read_batch(folder / name) for name in names]
  return (
    np.concatenate([images for images, _ in parts]),
    np.concatenate([labels for _, labels in parts]),
  )


def _class_names(folder: pathlib.Path) -> tuple[str, ...]:
  file = folder / META_FILE
  if not file.is_file():
    return CLASS_NAMES
  try:
    names = _get(_read_pickle(file), "label_names")
  except KeyError:
    raise ValueError(
      f"{file} has no key b'label_names'; delete the file to use the official class names"
    ) from None
  return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def _channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Exact per-channel mean and std of ``images / 255`` from uint8 pixels.

  A histogram of the 256 possible values gives both moments exactly in float64
  without a float copy of the data (600 MB for the training set).
  """
  values = np.arange(256) / 255.0
  means, stds = [], []
  for channel in range(images.shape[-1]):
    counts = np.bincount(images[..., channel].ravel(), minlength=256)
    mean = counts @ values / counts.sum()
    means.append(mean)
    stds.append(np.sqrt(counts @ (values - mean) ** 2 / counts.sum()))
  stds = np.asarray(stds)
  return np.asarray(means), np.where(stds > 0.0, stds, 1.0)


def _standardise(images: np.ndarray, mean: np.ndarray, std: np.ndarray):
  # (u / 255 − mean) / std as one multiply-add, in place on the float32 copy.
  out = images.astype(np.float32, order="C")
  out *= (1.0 / (255.0 * std)).astype(np.float32)
  out += (-mean / std).astype(np.float32)
  return out


def load_cifar10(path: str | os.PathLike[str] | None = None, val: str | None = "test") -> Dataset:
  r"""CIFAR-10 from its official python-format files, standardised per channel.

  Pixels are scaled to [0, 1] and then standardised per colour channel,
  ``x ← (u / 255 − mean_c) / std_c``, with ``mean_c`` and ``std_c`` computed
  exactly over all 50 000 training images (never the validation ones).
  Training images keep the order of ``data_batch_1`` … ``data_batch_5``.

  Args:
    path: The folder holding the batch files, or the folder that contains
      ``cifar-10-batches-py/``. ``None``: the environment variable
      :data:`CIFAR10_ENV_VAR` (``MOMENTUM_JAX_CIFAR10``).
    val: ``"test"``: the official ``test_batch`` is the validation split.
      ``None``: no validation split, and ``test_batch`` need not exist.

  Returns:
    A :class:`Dataset` named ``"cifar10"``: float32 images of shape
    ``(n, 32, 32, 3)``, int32 labels, ``num_classes=10``, the class names from
    ``batches.meta`` when present.

  Raises:
    CIFAR10NotFoundError: No path given, or a missing folder or batch file.
    ValueError: ``val`` is not ``"test"`` or ``None``, or a batch file is not
      in the CIFAR-10 python format.
  """
  if val not in ("test", None):
    raise ValueError(f"val must be 'test' or None, got {val!r}")
  required = TRAIN_FILES + ((TEST_FILE,) if val == "test" else ())
  folder = _resolve_folder(path, required)
  x_train, y_train = _read_split(folder, TRAIN_FILES)
  mean, std = _channel_stats(x_train)
  x_val = y_val = None
  if val == "test":
    x_val, y_val = _read_split(folder, (TEST_FILE,))
    x_val = _standardise(x_val, mean, std)
  return Dataset(
    name="cifar10",
    x_train=_standardise(x_train, mean, std),
    y_train=y_train,
    x_val=x_val,
    y_val=y_val,
    num_classes=len(CLASS_NAMES),
    class_names=_class_names(folder),
  )
