"""The scikit-learn sets: shapes, stratified splits, standardisation with training statistics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import datasets as sk_datasets
from sklearn.model_selection import train_test_split

from _standardised import assert_centred_and_scaled, assert_standardised, standardised_bound
from momentum_jax.data import load_breast_cancer
from momentum_jax.data import load_digits


@pytest.mark.parametrize(
  "load, num_train, num_val, features, classes",
  [(load_digits, 1437, 360, 64, 10), (load_breast_cancer, 455, 114, 30, 2)],
)
def test_sklearn_shapes_and_dtypes(load, num_train, num_val, features, classes):
  ds = load()
  assert ds.x_train.shape == (num_train, features)
  assert ds.x_val.shape == (num_val, features)
  assert ds.y_train.shape == (num_train,) and ds.y_val.shape == (num_val,)
  assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
  assert ds.num_classes == classes and len(ds.class_names) == classes


@pytest.mark.parametrize("load", [load_digits, load_breast_cancer])
def test_sklearn_split_is_deterministic_per_seed(load):
  a, b, c = load(seed=1), load(seed=1), load(seed=2)
  np.testing.assert_array_equal(a.x_val, b.x_val)
  np.testing.assert_array_equal(a.y_train, b.y_train)
  assert not np.array_equal(a.y_train, c.y_train)


@pytest.mark.parametrize("load, val_fraction", [(load_digits, 0.2), (load_breast_cancer, 0.3)])
def test_sklearn_split_is_stratified(load, val_fraction):
  ds = load(val_fraction=val_fraction, seed=5)
  y_val = np.asarray(ds.y_val)
  y_all = np.concatenate([np.asarray(ds.y_train), y_val])
  counts_all = np.bincount(y_all, minlength=ds.num_classes)
  counts_val = np.bincount(y_val, minlength=ds.num_classes)
  # A random split misses the proportions by ~√(n_k·f·(1 − f)) ≈ 3 to 5.
  assert np.all(np.abs(counts_val - val_fraction * counts_all) <= 1), (
    counts_val,
    val_fraction * counts_all,
  )


def raw_split(bunch, val_fraction=0.2, seed=0):
  return train_test_split(
    bunch.data, bunch.target, test_size=val_fraction, random_state=seed, stratify=bunch.target
  )


@pytest.mark.parametrize(
  "load, bunch",
  [(load_digits, sk_datasets.load_digits), (load_breast_cancer, sk_datasets.load_breast_cancer)],
)
def test_sklearn_standardises_with_training_statistics_only(load, bunch):
  ds = load(seed=0)
  raw_train, raw_val, y_train, y_val = raw_split(bunch())
  np.testing.assert_array_equal(ds.y_train, y_train)
  mean, std = raw_train.mean(axis=0), raw_train.std(axis=0)
  constant = std == 0
  std = np.where(constant, 1.0, std)
  # The loader computes the same float64 formula and casts it to float32.
  for raw, x in ((raw_train, ds.x_train), (raw_val, ds.x_val)):
    bound = standardised_bound((raw - mean) / std, mean, std, len(raw_train), 1)
    assert_standardised(x, (raw - mean) / std, bound)
  bound = standardised_bound((raw_train - mean) / std, mean, std, len(raw_train), 1)
  assert_centred_and_scaled(ds.x_train, bound, 0, constant)
  # The validation part is not re-centred on its own statistics.
  assert np.abs(np.asarray(ds.x_val).mean(axis=0)).max() > 0.05


def test_digits_constant_pixels_become_zero_not_nan():
  ds = load_digits()
  x_train = np.asarray(ds.x_train)
  assert np.isfinite(x_train).all() and np.isfinite(np.asarray(ds.x_val)).all()
  constant = np.asarray(raw_split(sk_datasets.load_digits())[0]).std(0) == 0
  assert constant.sum() >= 1  # pixel 0 is never inked
  assert np.all(x_train[:, constant] == 0.0)


def test_digits_images_are_standardised_globally():
  ds = load_digits(image=True)
  assert ds.x_train.shape == (1437, 8, 8, 1) and ds.x_val.shape == (360, 8, 8, 1)
  assert ds.input_shape == (8, 8, 1)
  raw_train, raw_val, _, _ = raw_split(sk_datasets.load_digits())
  mean, std = raw_train.mean(), raw_train.std()
  # The same float64 formula over all pixels, cast to float32.
  for raw, x in ((raw_train, ds.x_train), (raw_val, ds.x_val)):
    expected = ((raw - mean) / std).reshape(-1, 8, 8, 1)
    assert_standardised(x, expected, standardised_bound(expected, mean, std, raw_train.size, 1))
  # Row-major 8×8: pixel (row 2, column 5) is feature 2·8 + 5 of the flat set.
  flat = load_digits()
  order = np.argsort(np.asarray(flat.x_train[:, 21]))
  assert np.all(np.diff(np.asarray(ds.x_train[order, 2, 5, 0])) >= 0)


@pytest.mark.parametrize("val_fraction", [0.0, 1.0, 1.5, -0.1])
def test_sklearn_rejects_bad_val_fraction(val_fraction):
  with pytest.raises(ValueError, match=rf"val_fraction must be in \(0, 1\), got {val_fraction}"):
    load_digits(val_fraction=val_fraction)
