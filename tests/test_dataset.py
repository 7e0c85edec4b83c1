"""The Dataset (its checks, its copy, its dtypes) and the synthetic regression sets."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import _tolerances

from momentum_jax.data import Dataset
from momentum_jax.data import least_squares
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


# LAPACK's least squares (NumPy's lstsq, SVD by Householder bidiagonalisation)
# is backward stable: the solution of a problem perturbed by ε relative, with
# ε = c·m·n·U32 (Higham, Accuracy and Stability, Thm 19.4 and §20.3: his
# "small integer constant" c taken as 4).
LSTSQ_CONSTANT = 4


def _least_squares_bounds(x, y, coef) -> tuple[float, float]:
  """How far float32 ``least_squares`` may lie from the exact ``coef`` and their mse.

  The coefficients: Golub & Van Loan's Thm 5.3.1, first order,
  ``‖δc‖ ≤ ε·(2κ/cos θ + κ²·tan θ)·‖c‖`` (κ the design's condition number,
  ``sin θ = ‖r‖/‖y‖``). The mse ``‖ŕ‖²/m``: the residuals recomputed from the
  rounded coefficients, ``ŕ = r + A·δc + e`` with ``|e_i| ≤ 3·U32·(|x_i·w| +
  |b| + |y_i|)`` (a product, two sums), and ``Aᵀr = 0``, so ``‖ŕ‖² − ‖r‖²``
  is within ``2·Σ|r_i|·|e_i| + (‖e‖ + ‖A‖·‖δc‖)²``; the squares and the
  mean's sums round ``(m + 1)·U32`` of the mse more.
  """
  design = np.stack([x, np.ones_like(x)], axis=1)
  m, n = design.shape
  residual = y - design @ coef
  sin = np.linalg.norm(residual) / np.linalg.norm(y)
  cos, kappa = np.sqrt(1 - sin**2), np.linalg.cond(design)
  epsilon = LSTSQ_CONSTANT * m * n * _tolerances.U32
  coef_error = epsilon * (2 * kappa / cos + kappa**2 * sin / cos) * np.linalg.norm(coef)
  rounding = 3 * _tolerances.U32 * (np.abs(x * coef[0]) + abs(coef[1]) + np.abs(y))
  reach = np.linalg.norm(rounding) + np.linalg.norm(design, 2) * coef_error
  mse = np.mean(residual**2)
  mse_error = (2 * np.abs(residual) @ rounding + reach**2) / m + (m + 1) * _tolerances.U32 * mse
  return coef_error, mse_error


def test_least_squares_is_the_closed_form_line():
  # x = 0, 1, 2 and y = 1, 2, 4: w = 3/2, b = 5/6, residuals 1/6, -1/3, 1/6;
  # and an exact line through 9 points. All exact in float32, the data's dtype.
  for x, y, coef, mse in (
    ([0.0, 1.0, 2.0], [1.0, 2.0, 4.0], [1.5, 5 / 6], 1 / 18),
    (np.linspace(-1, 1, 9), 3 * np.linspace(-1, 1, 9) - 2, [3.0, -2.0], 0.0),
  ):
    x, y, coef = np.asarray(x), np.asarray(y), np.asarray(coef)
    w_, b_, mse_ = least_squares(Dataset("line", x[:, None], y))
    coef_error, mse_error = _least_squares_bounds(x, y, coef)
    assert np.linalg.norm([w_ - coef[0], b_ - coef[1]]) <= coef_error, (w_, b_, coef_error)
    assert abs(mse_ - mse) <= mse_error, (mse_, mse_error)


def test_regression_rejects_bad_arguments():
  with pytest.raises(ValueError, match="num_samples must be a positive integer"):
    regression_normal(num_samples=0)
  with pytest.raises(ValueError, match="seed must be a non-negative integer"):
    regression_uniform(seed=-1)
