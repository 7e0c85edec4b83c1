"""scikit-learn's shipped datasets (no network), split and standardised.

Both loaders split with ``sklearn.model_selection.train_test_split(...,
test_size=val_fraction, random_state=seed, stratify=y)``, so every class keeps
its proportion in both parts, and a seed names one split. The standardisation
``x ← (x − mean) / std`` uses statistics of the training part only: the
validation part is data the model has not seen, and fitting the scaler on it
would leak its distribution into training. So the validation mean is near, not
at, zero.

A feature that is constant on the training part (digits has four pixels that
are always 0) has ``std = 0``; its scale is set to 1, as scikit-learn's
``StandardScaler`` does, so it becomes 0 on the training part instead of NaN.

Importing scikit-learn takes about two seconds, more than a short sweep trains
for, so each set as scikit-learn ships it and each split (its row indices) are
kept in ``$XDG_CACHE_HOME/momentum_jax/data/`` (``~/.cache/...``), named by
scikit-learn's version: after the first load, scikit-learn is not imported.
A missing, unreadable or unwritable cache only means loading as before.
"""

from __future__ import annotations

import importlib.metadata
import io
import zipfile
from typing import Callable

import numpy as np

from momentum_jax.data._dataset import Dataset


def _check_args(val_fraction: float, seed: int) -> None:
  if (
    not isinstance(val_fraction, (int, float, np.floating))
    or isinstance(val_fraction, bool)
    or not 0.0 < val_fraction < 1.0
  ):
    raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _cached(name: str, make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  """The arrays ``make()`` returns, kept as ``name`` for this scikit-learn version."""
  from momentum_jax.runtime.compile_cache import cache_home

  version = importlib.metadata.version("scikit-learn")
  path = cache_home() / "data" / f"{name}-sklearn{version}.npz"
  try:
    with np.load(path, allow_pickle=False) as stored:
      return dict(stored)
  except (OSError, ValueError, zipfile.BadZipFile):  # not there yet, or damaged
    pass
  arrays = make()
  try:
    from momentum_jax.runtime.files import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
  except OSError:  # a read-only home: load from scikit-learn every time
    pass
  return arrays


def _shipped(name: str) -> dict[str, np.ndarray]:
  """``data``, ``target`` and ``target_names`` of ``sklearn.datasets.load_<name>()``."""

  def load():
    # Imported on use: scikit-learn takes about two seconds to import, and the
    # other loaders and the landscapes need none of it.
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    return {
      "data": bunch.data,
      "target": bunch.target,
      "target_names": np.asarray(bunch.target_names).astype(str),
    }

  return _cached(name, load)


def _split(name: str, x: np.ndarray, y: np.ndarray, val_fraction: float, seed: int):
  """``train_test_split(x, y, test_size=val_fraction, random_state=seed, stratify=y)``.

  The split depends on ``y`` alone, so its row indices are what is cached.
  """

  def split():
    from sklearn.model_selection import train_test_split

    train, val = train_test_split(
      np.arange(len(y)), test_size=val_fraction, random_state=seed, stratify=y
    )
    return {"train": train, "val": val}

  rows = _cached(f"{name}-split-{float(val_fraction)!r}-{int(seed)}", split)
  return x[rows["train"]], x[rows["val"]], y[rows["train"]], y[rows["val"]]


def _standardise(
  x_train: np.ndarray, x_val: np.ndarray, axis: int | tuple[int, ...] | None
) -> tuple[np.ndarray, np.ndarray]:
  """Standardises both parts with the training part's mean and std along ``axis``."""
  mean = x_train.mean(axis=axis, keepdims=True)
  std = x_train.std(axis=axis, keepdims=True)
  # Exactly constant features only: a small but real spread is information.
  std = np.where(std > 0.0, std, 1.0)
  return ((x_train - mean) / std).astype(np.float32), ((x_val - mean) / std).astype(np.float32)


def _classification(
  name: str,
  bunch: dict[str, np.ndarray],
  x_train: np.ndarray,
  x_val: np.ndarray,
  y_train: np.ndarray,
  y_val: np.ndarray,
) -> Dataset:
  """The :class:`Dataset` of a split scikit-learn set: int32 labels, its class names."""
  return Dataset(
    name=name,
    x_train=x_train,
    y_train=y_train.astype(np.int32),
    x_val=x_val,
    y_val=y_val.astype(np.int32),
    num_classes=len(bunch["target_names"]),
    class_names=tuple(str(target) for target in bunch["target_names"]),
  )


def load_digits(val_fraction: float = 0.2, seed: int = 0, image: bool = False) -> Dataset:
  r"""The 8×8 handwritten digits (1797 images, 10 classes, pixels 0..16).

  Flat (default): ``x`` has shape ``(n, 64)``, each of the 64 pixels
  standardised on its own (per feature, as ``StandardScaler`` does for an MLP
  or a linear model). Pixels at the border are inked in few images, so their
  standardised values reach tens of units; constant pixels become 0.

  ``image=True``: ``x`` has shape ``(n, 8, 8, 1)`` for a CNN, standardised with
  one mean and one std over all training pixels (per channel; digits has one).
  A convolution applies the same filter at every location, which assumes an
  intensity means the same everywhere; a per-pixel scaling would give each
  location its own scale (and blow up the rarely inked border pixels), while
  one affine map for all pixels keeps the images as they look.

  Args:
    val_fraction: Fraction of the examples held out for validation, in (0, 1).
    seed: ``random_state`` of the stratified split, >= 0.
    image: Return ``(n, 8, 8, 1)`` images instead of ``(n, 64)`` vectors.

  Returns:
    A :class:`Dataset` named ``"digits"``: float32 inputs, int32 labels,
    ``num_classes=10``.

  Example:
    >>> from momentum_jax.data import load_digits
    >>> ds = load_digits(image=True)
    >>> ds.x_train.shape, ds.x_val.shape, ds.y_train.dtype, ds.num_classes
    ((1437, 8, 8, 1), (360, 8, 8, 1), dtype('int32'), 10)
  """
  _check_args(val_fraction, seed)
  bunch = _shipped("digits")
  x_train, x_val, y_train, y_val = _split(
    "digits", bunch["data"], bunch["target"], val_fraction, seed
  )
  if image:
    x_train, x_val = _standardise(x_train, x_val, axis=None)
    x_train = x_train.reshape(-1, 8, 8, 1)
    x_val = x_val.reshape(-1, 8, 8, 1)
  else:
    x_train, x_val = _standardise(x_train, x_val, axis=0)
  return _classification("digits", bunch, x_train, x_val, y_train, y_val)


def load_breast_cancer(val_fraction: float = 0.2, seed: int = 0) -> Dataset:
  r"""The Wisconsin breast-cancer set (569 examples, 30 features, 2 classes).

  The features have different units and scales (areas in the thousands,
  smoothness near 0.1), so each is standardised on its own with the training
  part's mean and std. Labels as scikit-learn gives them: 0 = malignant,
  1 = benign.

  Args:
    val_fraction: Fraction of the examples held out for validation, in (0, 1).
    seed: ``random_state`` of the stratified split, >= 0.

  Returns:
    A :class:`Dataset` named ``"breast_cancer"``: float32 inputs of shape
    ``(n, 30)``, int32 labels, ``num_classes=2``.
  """
  _check_args(val_fraction, seed)
  bunch = _shipped("breast_cancer")
  x_train, x_val, y_train, y_val = _split(
    "breast_cancer", bunch["data"], bunch["target"], val_fraction, seed
  )
  x_train, x_val = _standardise(x_train, x_val, axis=0)
  return _classification("breast_cancer", bunch, x_train, x_val, y_train, y_val)
