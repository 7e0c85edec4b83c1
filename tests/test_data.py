"""The data loaders: shapes, determinism, splits, standardisation, CIFAR-10 files."""

from __future__ import annotations

import pathlib
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import datasets as sk_datasets
from sklearn.model_selection import train_test_split

from _cifar import PLANE, write_batch, write_fake_cifar
from _tolerances import U32, U64
from momentum_jax.data import CIFAR10_ENV_VAR
from momentum_jax.data import CIFAR10NotFoundError
from momentum_jax.data import Dataset
from momentum_jax.data import least_squares
from momentum_jax.data import load_breast_cancer
from momentum_jax.data import load_cifar10
from momentum_jax.data import load_digits
from momentum_jax.data import regression_normal
from momentum_jax.data import regression_uniform
from momentum_jax.data import _dataset

# --- Dataset --------------------------------------------------------------------


def test_dataset_converts_to_jax_and_reports_shapes():
  ds = Dataset(
    "toy",
    np.zeros((5, 2, 3)),
    np.arange(5, dtype=np.int32),
    np.ones((2, 2, 3)),
    np.zeros(2, np.int32),
    num_classes=5,
  )
  assert isinstance(ds.x_train, jax.Array) and isinstance(ds.y_val, jax.Array)
  assert ds.num_train == 5 and ds.num_val == 2
  assert ds.input_shape == (2, 3)
  assert ds.is_classification


@pytest.fixture(params=["host", "device"])
def checks_on(request, monkeypatch):
  """Runs a test with the Dataset checks in numpy (a CPU's arrays) and in jnp (an accelerator's).

  On this CPU-only suite the jnp branch is reached by pretending the arrays
  live elsewhere.
  """
  if request.param == "device":
    monkeypatch.setattr(_dataset, "_namespace", lambda array: (jnp, array))
  return request.param


def test_dataset_checks_read_cpu_arrays_with_numpy():
  xp, view = _dataset._namespace(jnp.arange(3.0))
  assert xp is np and isinstance(view, np.ndarray)


@pytest.mark.parametrize("field", ["x_train", "y_train", "x_val", "y_val"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_dataset_rejects_non_finite_values_naming_the_array(field, bad, checks_on):
  arrays = {
    "x_train": np.zeros((4, 3)),
    "y_train": np.zeros(4),
    "x_val": np.zeros((2, 3)),
    "y_val": np.zeros(2),
  }
  arrays[field].flat[1] = bad
  counts = "1 NaN and 0 inf" if np.isnan(bad) else "0 NaN and 1 inf"
  with pytest.raises(ValueError, match=f"Dataset 'toy': {field} contains {counts} values"):
    Dataset("toy", **arrays)


def test_dataset_rejects_inconsistent_shapes():
  with pytest.raises(ValueError, match="x_train has 4 rows but y_train has 3"):
    Dataset("toy", np.zeros((4, 2)), np.zeros(3))
  with pytest.raises(ValueError, match="x_val was given without y_val"):
    Dataset("toy", np.zeros((4, 2)), np.zeros(4), x_val=np.zeros((1, 2)))
  with pytest.raises(ValueError, match=r"x_val examples have shape \(3,\)"):
    Dataset("toy", np.zeros((4, 2)), np.zeros(4), np.zeros((1, 3)), np.zeros(1))


def test_dataset_checks_class_labels(checks_on):
  x = np.zeros((3, 2))
  with pytest.raises(ValueError, match=r"labels in \[0, 3\], outside \[0, 3\)"):
    Dataset("toy", x, np.array([0, 1, 3]), num_classes=3)
  with pytest.raises(ValueError, match=r"labels in \[-1, 2\], outside \[0, 3\)"):
    Dataset("toy", x, np.array([-1, 1, 2]), num_classes=3)
  with pytest.raises(ValueError, match="must be integers"):
    Dataset("toy", x, np.array([0.0, 1.0, 2.0]), num_classes=3)
  with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
    Dataset("toy", x, np.array([0, 0, 0]), num_classes=1)


# --- synthetic regression -------------------------------------------------------


def ols(ds: Dataset):
  """Least squares of y on [x, 1]: coefficients, their standard errors, σ̂."""
  x = np.asarray(ds.x_train, np.float64)[:, 0]
  y = np.asarray(ds.y_train, np.float64)
  design = np.stack([x, np.ones_like(x)], axis=1)
  coef, *_ = np.linalg.lstsq(design, y, rcond=None)
  residual = y - design @ coef
  sigma2 = residual @ residual / (len(y) - 2)
  se = np.sqrt(np.diag(sigma2 * np.linalg.inv(design.T @ design)))
  return coef, se, np.sqrt(sigma2)


@pytest.mark.parametrize(
  "make, n, slope, intercept, noise",
  [(regression_normal, 1000, 3.0, 2.0, 0.5), (regression_uniform, 100, 3.0, 2.0, 1.0)],
)
@pytest.mark.parametrize("num_samples", [None, 20000])
def test_regression_shapes_and_true_coefficients(make, n, slope, intercept, noise, num_samples):
  # The default sizes of the literature, then a large one that resolves the
  # coefficients of the noisy uniform set to ±0.05.
  ds = make() if num_samples is None else make(num_samples)
  n = num_samples or n
  assert ds.x_train.shape == (n, 1) and ds.y_train.shape == (n,)
  assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.float32
  assert ds.x_val is None and ds.y_val is None and ds.num_classes is None
  coef, se, sigma = ols(ds)
  # Four standard errors: a wrong slope, intercept or noise scale fails.
  assert abs(coef[0] - slope) < 4 * se[0], (coef, se)
  assert abs(coef[1] - intercept) < 4 * se[1], (coef, se)
  assert abs(sigma - noise) < 4 * noise / np.sqrt(2 * n), sigma


def test_regression_input_and_noise_distributions():
  n = 5000
  normal, uniform = regression_normal(n), regression_uniform(n)
  x = np.asarray(normal.x_train[:, 0])
  assert abs(x.mean()) < 4 / np.sqrt(n) and abs(x.std() - 1) < 4 / np.sqrt(2 * n)
  u = np.asarray(uniform.x_train[:, 0])
  assert u.min() >= 0 and u.max() < 1
  assert abs(u.mean() - 0.5) < 4 * np.sqrt(1 / 12 / n)
  # At 100 samples the noise scale is known to ±14%; at 5000 to ±2%.
  for ds, noise in ((normal, 0.5), (uniform, 1.0)):
    _, _, sigma = ols(ds)
    assert abs(sigma - noise) < 4 * noise / np.sqrt(2 * n), (ds.name, sigma)


@pytest.mark.parametrize("make", [regression_normal, regression_uniform])
def test_regression_is_deterministic_per_seed(make):
  a, b, c = make(seed=3), make(seed=3), make(seed=4)
  np.testing.assert_array_equal(a.x_train, b.x_train)
  np.testing.assert_array_equal(a.y_train, b.y_train)
  assert not np.array_equal(a.x_train, c.x_train)
  assert not np.array_equal(a.y_train, c.y_train)


def test_least_squares_is_the_closed_form_line():
  # x = 0, 1, 2 and y = 1, 2, 4: w = 3/2, b = 5/6, residuals 1/6, -1/3, 1/6.
  ds = Dataset("three", np.array([[0.0], [1.0], [2.0]]), np.array([1.0, 2.0, 4.0]))
  w, b, mse = least_squares(ds)
  assert (w, b, mse) == pytest.approx((1.5, 5 / 6, 1 / 18), rel=1e-5)
  exact = Dataset("line", np.linspace(-1, 1, 9)[:, None], 3 * np.linspace(-1, 1, 9) - 2)
  assert least_squares(exact) == pytest.approx((3.0, -2.0, 0.0), abs=1e-6)


def test_regression_rejects_bad_arguments():
  with pytest.raises(ValueError, match="num_samples must be a positive integer"):
    regression_normal(num_samples=0)
  with pytest.raises(ValueError, match="seed must be a non-negative integer"):
    regression_uniform(seed=-1)


# --- scikit-learn sets ------------------------------------------------------------


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


def standardised_bound(expected, mean, std, terms: int, roundings: int) -> np.ndarray:
  """How far float32 standardised values may lie from the float64 formula ``expected``.

  The data are nonnegative, so ``|x|/std ≤ a = |expected| + |mean|/std`` and
  the mean of ``|x|`` is the mean. The float32 arithmetic rounds
  ``roundings`` times, each by ``U32·a`` at most (a cast of the float64
  value: once). The float64 statistics, summed over ``terms`` values in
  another order by each side, are off by ``(terms + 3)·U64`` relative at
  most (Higham §4.2, positive terms; the squares, the division and the
  root): the mean moves the value by that times ``mean/std ≤ a``, the std
  by that times ``|expected| ≤ a``; two programs, twice.
  """
  a = np.abs(expected) + np.abs(mean) / std
  return (roundings * U32 + 4 * (terms + 3) * U64) * a


def assert_standardised(actual, expected, bound) -> None:
  """``|actual − expected| ≤ bound`` element by element, naming the worst."""
  error = np.abs(np.asarray(actual, np.float64) - expected)
  worst = np.unravel_index(np.argmax(error - bound), error.shape)
  assert (error <= bound).all(), f"at {worst}: |error| {error[worst]:.3g} > {bound[worst]:.3g}"


def assert_centred_and_scaled(x, bound, axis, constant=None) -> None:
  """Training values of mean 0 and std 1, up to each value's ``bound`` (their mean, their
  largest: the std moves by no more than the values do), plus a float64 sum's rounding."""
  x = np.asarray(x, np.float64)
  terms = x.size // np.asarray(bound.mean(axis=axis)).size
  slack = terms * U64 * np.abs(x).mean(axis=axis)
  assert (np.abs(x.mean(axis=axis)) <= bound.mean(axis=axis) + slack).all()
  keep = slice(None) if constant is None else ~constant  # constant features stay 0
  spread = np.abs(x.std(axis=axis) - 1)[keep]
  assert (spread <= (bound.max(axis=axis) + 2 * slack)[keep]).all(), spread.max()


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


# --- CIFAR-10 ----------------------------------------------------------------------


def channel_major_to_hwc(data: np.ndarray) -> np.ndarray:
  """Gathers pixel (i, j, c) from index c·1024 + 32·i + j of each row."""
  index = (
    np.arange(3)[None, None, :] * PLANE
    + np.arange(32)[:, None, None] * 32
    + np.arange(32)[None, :, None]
  )
  return data[:, index]


def expected_standardised(data: np.ndarray, train: np.ndarray) -> np.ndarray:
  """(u/255 − mean_c)/std_c, with each channel's stats from its plane of ``train``."""
  planes = [train[:, c * PLANE : (c + 1) * PLANE] / 255.0 for c in range(3)]
  mean = np.array([p.mean() for p in planes])
  std = np.array([p.std() for p in planes])
  return (channel_major_to_hwc(data) / 255.0 - mean) / std


def test_cifar_pixel_layout_labels_and_standardisation(tmp_path):
  folder = tmp_path / "cifar-10-batches-py"
  train, train_labels, test, test_labels = write_fake_cifar(folder)
  # A known pixel: image 6 (the third of data_batch_2), row 3, column 5 has
  # (R, G, B) = (10, 200, 77); its transpose (5, 3) differs.
  train[6, [0 * PLANE + 3 * 32 + 5, 1 * PLANE + 3 * 32 + 5, 2 * PLANE + 3 * 32 + 5]] = [10, 200, 77]
  train[6, [5 * 32 + 3, PLANE + 5 * 32 + 3, 2 * PLANE + 5 * 32 + 3]] = [250, 1, 3]
  write_batch(folder / "data_batch_2", train[4:8], train_labels[4:8])

  ds = load_cifar10(folder)
  assert ds.x_train.shape == (20, 32, 32, 3) and ds.x_val.shape == (4, 32, 32, 3)
  assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
  assert ds.num_classes == 10
  assert ds.class_names == tuple(f"class{k}" for k in range(10))
  np.testing.assert_array_equal(ds.y_train, train_labels)  # batch 1 … 5 order
  np.testing.assert_array_equal(ds.y_val, test_labels)

  planes = [train[:, c * PLANE : (c + 1) * PLANE] / 255.0 for c in range(3)]
  mean = np.array([p.mean() for p in planes])
  std = np.array([p.std() for p in planes])
  # u·float32(1/(255·std)) + float32(−mean/std): four float32 roundings.
  terms = train.shape[0] * PLANE
  for pixel, (i, j) in (([10, 200, 77], (3, 5)), ([250, 1, 3], (5, 3))):
    expected = (np.array(pixel) / 255.0 - mean) / std
    bound = standardised_bound(expected, mean, std, terms, 4)
    assert_standardised(ds.x_train[6, i, j], expected, bound)
  for data, x in ((train, ds.x_train), (test, ds.x_val)):
    expected = expected_standardised(data, train)
    assert_standardised(x, expected, standardised_bound(expected, mean, std, terms, 4))
  # Training statistics only: training channels are centred, validation not.
  expected = expected_standardised(train, train)
  bound = standardised_bound(expected, mean, std, terms, 4)
  assert_centred_and_scaled(ds.x_train, bound, (0, 1, 2))
  assert np.all(np.asarray(ds.x_val).mean(axis=(0, 1, 2)) > 0.5)


def test_cifar_path_from_env_var_and_parent_folder(tmp_path, monkeypatch):
  write_fake_cifar(tmp_path / "cifar-10-batches-py", rows=2, meta=False)
  from_parent = load_cifar10(tmp_path)
  assert from_parent.num_train == 10
  assert from_parent.class_names[0] == "airplane"  # no batches.meta
  monkeypatch.setenv(CIFAR10_ENV_VAR, str(tmp_path / "cifar-10-batches-py"))
  from_env = load_cifar10()
  np.testing.assert_array_equal(from_env.x_train, from_parent.x_train)
  assert CIFAR10_ENV_VAR == "MOMENTUM_JAX_CIFAR10"


def test_cifar_missing_folder_error_says_where_and_how(tmp_path, monkeypatch):
  missing = tmp_path / "nowhere"
  with pytest.raises(CIFAR10NotFoundError) as info:
    load_cifar10(missing)
  message = str(info.value)
  assert isinstance(info.value, FileNotFoundError)
  assert str(missing) in message and "does not exist" in message
  assert CIFAR10_ENV_VAR in message and "path=" in message
  monkeypatch.setenv(CIFAR10_ENV_VAR, str(missing))
  with pytest.raises(
    CIFAR10NotFoundError, match=f"from the environment variable {CIFAR10_ENV_VAR}"
  ):
    load_cifar10()
  monkeypatch.delenv(CIFAR10_ENV_VAR)
  with pytest.raises(CIFAR10NotFoundError, match=f"{CIFAR10_ENV_VAR} is not set"):
    load_cifar10()


def test_cifar_missing_batch_error_lists_expected_and_missing(tmp_path):
  folder = tmp_path / "cifar-10-batches-py"
  write_fake_cifar(folder, rows=2)
  (folder / "data_batch_3").unlink()
  with pytest.raises(CIFAR10NotFoundError) as info:
    load_cifar10(tmp_path)  # through the parent folder
  message = str(info.value)
  assert str(folder) in message
  assert (
    "expected data_batch_1, data_batch_2, data_batch_3, data_batch_4, "
    "data_batch_5, test_batch; missing data_batch_3."
  ) in message
  # An empty folder: everything is missing, and it says it looked for the
  # subfolder too.
  (tmp_path / "empty").mkdir()
  with pytest.raises(CIFAR10NotFoundError, match="no cifar-10-batches-py/"):
    load_cifar10(tmp_path / "empty")


def test_cifar_without_validation_needs_no_test_batch(tmp_path):
  write_fake_cifar(tmp_path, rows=2)
  (tmp_path / "test_batch").unlink()
  ds = load_cifar10(tmp_path, val=None)
  assert ds.x_val is None and ds.num_train == 10
  with pytest.raises(CIFAR10NotFoundError, match="missing test_batch"):
    load_cifar10(tmp_path)
  with pytest.raises(ValueError, match="val must be 'test' or None"):
    load_cifar10(tmp_path, val="train")


def test_cifar_rejects_malformed_and_malicious_files(tmp_path):
  write_fake_cifar(tmp_path, rows=2)
  write_batch(tmp_path / "data_batch_4", np.zeros((2, 3000), np.uint8), [0, 1])
  with pytest.raises(ValueError, match=r"data_batch_4: b'data' must be uint8"):
    load_cifar10(tmp_path)

  marker = tmp_path / "executed"

  class Payload:
    def __reduce__(self):
      return (pathlib.Path.touch, (marker,))

  with open(tmp_path / "data_batch_4", "wb") as handle:
    pickle.dump({b"data": Payload(), b"labels": []}, handle, protocol=2)
  with pytest.raises(ValueError, match="refusing to load"):
    load_cifar10(tmp_path)
  assert not marker.exists()


# CIFAR10NotFoundError is a FileNotFoundError: sweep.run must still report it
# as a ConfigError at the problem's field.
@pytest.mark.parametrize(
  "remove, says",
  [
    ("folder", "does not exist"),
    ("data_batch_3", "missing data_batch_3"),
  ],
)
def test_sweep_names_the_problem_field_for_a_missing_or_incomplete_cifar_folder(
  tmp_path, remove, says
):
  from momentum_jax import sweep

  folder = tmp_path / "cifar-10-batches-py"
  if remove != "folder":
    write_fake_cifar(folder, rows=2)
    (folder / remove).unlink()
  config = {
    "problem": {"name": "cifar10_cnn", "path": str(folder)},
    "optimizer": {"name": "sgd", "learning_rate": 0.1},
    "train": {"steps": 1, "log_every": 1, "batch_size": 2},
    "seeds": 1,
  }
  with pytest.raises(sweep.ConfigError, match=f"^problem: .*{says}") as info:
    sweep.run(config, tmp_path / "sweep", quiet=True)
  assert info.value.path == "problem" and str(folder) in str(info.value)
  assert not (tmp_path / "sweep").exists()  # refused before writing anything


def test_a_dataset_holds_its_own_copy_with_jax_dtypes():
  x, y = np.arange(12, dtype=np.float64).reshape(4, 3), np.arange(4, dtype=np.int64)
  ds = Dataset("toy", x, y, x_val=jnp.ones((2, 3)), y_val=jnp.zeros(2, jnp.int32))
  assert ds.x_train.dtype == jnp.float32 and ds.y_train.dtype == jnp.int32
  assert isinstance(ds.x_train, jax.Array) and not ds.x_train.weak_type
  x[0, 0], y[0] = 100.0, 3  # the caller's arrays change; the dataset's do not
  assert float(ds.x_train[0, 0]) == 0.0 and int(ds.y_train[0]) == 0
  # A list is converted as jnp.asarray converts it.
  listed = Dataset("toy", [[0.5, 1.0]], [1.5])
  assert listed.x_train.dtype == jnp.asarray([[0.5, 1.0]]).dtype and listed.x_train.shape == (1, 2)
