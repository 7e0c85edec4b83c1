"""Argument checks for model constructors, with errors that say what to pass."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

import jax


def did_you_mean(value: Any, choices: Iterable[str]) -> str:
  """``"; did you mean 'relu'?"`` for the closest choice, or ``""``."""
  choices = list(choices)
  # A prefix such as "he" is too short for difflib to match "he_normal".
  close = (
    difflib.get_close_matches(str(value), choices, n=1)
    or [c for c in choices if c.startswith(str(value))][:1]
  )
  return f"; did you mean {close[0]!r}?" if close else ""


def check_choice(name: str, value: Any, choices: Iterable[str]) -> None:
  """Raises ``ValueError`` naming ``name`` unless ``value`` is in ``choices``."""
  choices = list(choices)
  if value in choices:
    return
  allowed = ", ".join(repr(c) for c in choices)
  raise ValueError(f"{name} must be one of {allowed}, got {value!r}{did_you_mean(value, choices)}")


def _is_positive_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_positive_int(name: str, value: Any) -> None:
  if not _is_positive_int(value):
    raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_positive_ints(name: str, values: Any) -> tuple[int, ...]:
  """Checks ``values`` is a sequence of positive ints; returns it as a tuple."""
  if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
    raise ValueError(f"{name} must be a sequence of positive ints, e.g. (64, 64), got {values!r}")
  if not all(_is_positive_int(v) for v in values):
    raise ValueError(f"{name} must hold positive ints only, got {values!r}")
  return tuple(values)


def check_input_shape(model: str, x: jax.Array, feature_shape: tuple[int, ...]) -> None:
  """Raises ``ValueError`` unless ``x`` is a batch of ``feature_shape`` inputs.

  Shapes are static under ``jit``, so this costs nothing at run time and turns
  an opaque ``dot_general`` error into one that names the expected shape.
  """
  if tuple(x.shape[1:]) != tuple(feature_shape):
    expected = ", ".join(["batch", *map(str, feature_shape)])
    raise ValueError(f"{model} expects inputs of shape ({expected}), got {tuple(x.shape)}")
