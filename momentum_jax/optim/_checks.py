"""Range checks for hyperparameters that may be numbers, arrays or tracers.

Hyperparameters are data in momentum_jax: a sweep builds its optimizers inside
``jax.jit``/``jax.vmap`` with traced hyperparameters. A tracer has no value to
check, so every check here runs on concrete values only (Python numbers, NumPy
arrays, concrete jax arrays, element-wise for batches of values) and is skipped
for tracers. Nothing here ever branches the *computation* on a value.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def concrete_value(value: Any) -> np.ndarray | None:
  """``value`` as a NumPy array, or ``None`` when it is a tracer or a callable."""
  if isinstance(value, jax.core.Tracer) or callable(value):
    return None
  try:
    return np.asarray(value, dtype=np.float64)
  except (TypeError, ValueError) as error:
    raise TypeError(f"expected a number or an array of numbers, got {value!r}") from error


def _fail(name: str, allowed: str, value: np.ndarray) -> None:
  shown = value.item() if value.ndim == 0 else value.tolist()
  raise ValueError(f"{name} must be {allowed}, got {shown}")


def check_range(
  name: str,
  value: Any,
  *,
  low: float | None = None,
  high: float | None = None,
  low_inclusive: bool = True,
  high_inclusive: bool = False,
) -> None:
  """Raises ``ValueError`` naming ``name`` if a concrete ``value`` is out of range.

  The allowed range is written in interval notation in the message, e.g.
  ``beta must be in [0, 1), got 1.2``. NaN is always out of range.
  """
  array = concrete_value(value)
  if array is None:
    return
  ok = ~np.isnan(array)
  if low is not None:
    ok &= (array >= low) if low_inclusive else (array > low)
  if high is not None:
    ok &= (array <= high) if high_inclusive else (array < high)
  if np.all(ok):
    return
  if high is None:
    allowed = f"{'>=' if low_inclusive else '>'} {low:g}"
  elif low is None:
    allowed = f"{'<=' if high_inclusive else '<'} {high:g}"
  else:
    allowed = f"in {'[' if low_inclusive else '('}{low:g}, {high:g}{']' if high_inclusive else ')'}"
  _fail(name, allowed, array)


def check_learning_rate(value: Any) -> None:
  """A learning rate is a non-negative number, array, tracer or schedule."""
  check_range("learning_rate", value, low=0.0)


def check_unit_interval(name: str, value: Any) -> None:
  """Decay factors (beta, b1, b2, decay) live in [0, 1)."""
  check_range(name, value, low=0.0, high=1.0)


def check_positive(name: str, value: Any) -> None:
  check_range(name, value, low=0.0, low_inclusive=False)


def check_non_negative(name: str, value: Any) -> None:
  check_range(name, value, low=0.0)
