"""Tiny CIFAR-10 folders in the official python-pickle format, shared by the tests.

Each batch file is a protocol-2 pickle of a dict with ``bytes`` keys, as in
``cifar-10-python.tar.gz``: ``b"data"``, a ``uint8`` array of shape
``(rows, 3072)`` stored channel-major, and ``b"labels"``, a list of ints.
"""

from __future__ import annotations

import pathlib
import pickle

import numpy as np

PLANE = 32 * 32
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]


def write_batch(file: pathlib.Path, data: np.ndarray, labels) -> None:
  """Writes one batch file as the official files are written."""
  batch = {
    b"batch_label": b"fake batch",
    b"labels": list(labels),
    b"data": data,
    b"filenames": [b"x.png"] * len(labels),
  }
  with open(file, "wb") as handle:
    pickle.dump(batch, handle, protocol=2)  # as the official files


def write_fake_cifar(folder: pathlib.Path, rows: int = 4, meta: bool = True):
  """Writes a tiny CIFAR-10 folder: ``rows`` random images per batch file.

  Args:
    folder: The folder to fill, created if missing.
    rows: Images in each of the five training batches and in ``test_batch``.
    meta: Also write ``batches.meta``, with class names ``class0`` … ``class9``.

  Returns:
    ``(train_data, train_labels, test_data, test_labels)``: the raw ``uint8``
    rows of ``data_batch_1`` … ``data_batch_5`` concatenated, their labels as
    a list, and the same for ``test_batch``.
  """
  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(0)
  train_data, train_labels = [], []
  for b, name in enumerate(TRAIN_FILES):
    data = rng.integers(0, 256, size=(rows, 3 * PLANE), dtype=np.uint8)
    labels = [(3 * b + r) % 10 for r in range(rows)]
    write_batch(folder / name, data, labels)
    train_data.append(data)
    train_labels += labels
  # Brighter than the training images, so the training statistics leave its
  # mean well above zero.
  test_data = rng.integers(128, 256, size=(rows, 3 * PLANE), dtype=np.uint8)
  test_labels = [9 - r % 10 for r in range(rows)]
  write_batch(folder / "test_batch", test_data, test_labels)
  if meta:
    with open(folder / "batches.meta", "wb") as handle:
      pickle.dump(
        {b"label_names": [f"class{k}".encode() for k in range(10)], b"num_vis": 3072},
        handle,
        protocol=2,
      )
  return np.concatenate(train_data), train_labels, test_data, test_labels
