"""The two synthetic linear-regression sets of the literature's worked examples.

Both return ``x`` of shape ``(n, 1)`` and ``y`` of shape ``(n,)``, float32. The
shapes are deliberate: one published version of the uniform example compares
``y`` of shape ``(100, 1)`` with predictions of shape ``(100,)``, which
broadcasts to a ``(100, 100)`` error matrix instead of 100 residuals.

The noise is drawn with NumPy's ``Generator`` (``np.random.default_rng(seed)``,
PCG64) rather than ``jax.random``: its stream does not depend on JAX's PRNG
configuration (``jax_threefry_partitionable``, ``jax_default_prng_impl``, whose
defaults have changed between JAX releases) or on the device, so a seed names
the same data wherever the study runs.
"""

from __future__ import annotations

import numpy as np

from momentum_jax.data._dataset import Dataset


def _rng(num_samples: int, seed: int) -> np.random.Generator:
  if (
    isinstance(num_samples, bool)
    or not isinstance(num_samples, (int, np.integer))
    or num_samples < 1
  ):
    raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
  return np.random.default_rng(seed)


def _dataset(name: str, x: np.ndarray, y: np.ndarray) -> Dataset:
  return Dataset(
    name=name,
    x_train=x.astype(np.float32).reshape(-1, 1),
    y_train=y.astype(np.float32),
  )


def regression_normal(num_samples: int = 1000, seed: int = 0) -> Dataset:
  r"""Gaussian inputs, as in the literature's PyTorch demo.

  ::

    x ~ N(0, 1),    y = 3·x + 2 + 0.5·ε,    ε ~ N(0, 1)

  The least-squares fit recovers slope 3 and intercept 2 to within a standard
  error of about ``0.5 / √num_samples`` each.

  Args:
    num_samples: Number of examples, >= 1.
    seed: Seed of the NumPy generator, >= 0. ``x`` is drawn first, then ε.

  Returns:
    A :class:`Dataset` named ``"regression_normal"`` with ``x_train`` of shape
    ``(num_samples, 1)``, ``y_train`` of shape ``(num_samples,)``, float32,
    no validation split and ``num_classes=None``.

  Example:
    >>> from momentum_jax.data import regression_normal
    >>> ds = regression_normal(num_samples=5)
    >>> ds.x_train.shape, ds.y_train.shape, ds.y_train.dtype
    ((5, 1), (5,), dtype('float32'))
  """
  rng = _rng(num_samples, seed)
  x = rng.standard_normal(num_samples)
  noise = rng.standard_normal(num_samples)
  return _dataset("regression_normal", x, 3.0 * x + 2.0 + 0.5 * noise)


def regression_uniform(num_samples: int = 100, seed: int = 0) -> Dataset:
  r"""Uniform inputs, as in the literature's NumPy momentum example.

  ::

    x ~ U[0, 1),    y = 2 + 3·x + ε,    ε ~ N(0, 1)

  The noise is large against the range of ``x`` (the slope's standard error
  is about ``√12 / √num_samples ≈ 0.35`` at 100 samples), so a fit recovers the
  coefficients only roughly; a model needs an intercept to fit it at all.

  Args:
    num_samples: Number of examples, >= 1.
    seed: Seed of the NumPy generator, >= 0. ``x`` is drawn first, then ε.

  Returns:
    A :class:`Dataset` named ``"regression_uniform"`` with ``x_train`` of shape
    ``(num_samples, 1)``, ``y_train`` of shape ``(num_samples,)``, float32,
    no validation split and ``num_classes=None``.
  """
  rng = _rng(num_samples, seed)
  x = rng.random(num_samples)
  noise = rng.standard_normal(num_samples)
  return _dataset("regression_uniform", x, 2.0 + 3.0 * x + noise)


def least_squares(data: Dataset) -> tuple[float, float, float]:
  """The closed-form least-squares line ``y ≈ w·x + b`` of a one-feature training set.

  The optimum every optimizer on the regression should reach: no
  ``w, b`` has a lower mean squared error. Solved in float32, the data's dtype.

  Args:
    data: A :class:`Dataset` with ``x_train`` of shape ``(n, 1)``, e.g.
      :func:`regression_normal`.

  Returns:
    ``(w, b, mse)``: slope, intercept and their mean squared error on the
    training set.

  Example:
    >>> from momentum_jax.data import least_squares, regression_normal
    >>> w, b, mse = least_squares(regression_normal())
    >>> round(w, 1), round(b, 1), round(mse, 2)
    (3.0, 2.0, 0.26)
  """
  x, y = np.asarray(data.x_train)[:, 0], np.asarray(data.y_train)
  design = np.stack([x, np.ones_like(x)], axis=1)
  coef = np.linalg.lstsq(design, y, rcond=None)[0]
  return float(coef[0]), float(coef[1]), float(np.mean((design @ coef - y) ** 2))
