"""How far a loader's float32 standardised values may lie from the float64 formula."""

from __future__ import annotations

import numpy as np

from _tolerances import U32, U64


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
