"""Grid values: a number, a list, ``{linspace: [a, b, n]}`` or ``{logspace: [a, b, n]}``.

Ranges (``uniform``, ``loguniform``) are sampled, not gridded: see
:mod:`momentum_jax.sweep._space`.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Mapping

import numpy as np
import pydantic
from pydantic_core import PydanticCustomError

from momentum_jax.sweep._imports import closest
from momentum_jax.sweep._validation import Section, either, number_kind, validate

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_FLOAT32_TINY = float(np.finfo(np.float32).smallest_normal)


def _in_float32(value: float) -> float:
  # The values train as float32: 1e308 would be inf there, 1e-320 zero.
  if abs(value) > _FLOAT32_MAX or 0 < abs(value) < _FLOAT32_TINY:
    raise ValueError(
      f"must be 0 or of magnitude {_FLOAT32_TINY:.3g} to {_FLOAT32_MAX:.3g} "
      f"(the values train as float32), got {value!r}"
    )
  return value


def _whole_in_float32(value: Any) -> Any:
  # An integer as written: beyond 2**24 float32 holds every other one, and the run would train
  # with its neighbour while the summary showed the value written (a float rounds as floats do).
  if isinstance(value, int) and not isinstance(value, bool) and int(np.float32(value)) != value:
    raise ValueError(
      f"must be a whole number float32 holds (the values train as float32), got {value}, "
      f"which would train as {int(np.float32(value))}"
    )
  return value


Finite = Annotated[
  float,
  pydantic.Field(allow_inf_nan=False),
  pydantic.AfterValidator(_in_float32),
  pydantic.BeforeValidator(_whole_in_float32),
]
Count = Annotated[int, pydantic.Field(ge=1)]
Values = Annotated[list[Finite], pydantic.Strict(False), pydantic.Field(min_length=1)]
GRID_KINDS = ("linspace", "logspace")


def written_as(*names: str) -> pydantic.BeforeValidator:
  """Refuses a value that is not a list of ``len(names)`` items, saying ``[name, ...]``."""

  def check(value: Any) -> Any:
    if not isinstance(value, (list, tuple)) or len(value) != len(names):
      raise PydanticCustomError("expected", f"expected [{', '.join(names)}]")
    return value

  return pydantic.BeforeValidator(check)


_Linear = Annotated[
  tuple[Finite, Finite, Count], pydantic.Strict(False), written_as("start", "stop", "count")
]


class Linspace(Section):
  """``{linspace: [start, stop, count]}``: ``count`` evenly spaced values, ends included."""

  linspace: _Linear


class Logspace(Section):
  """``{logspace: [start, stop, count]}``: from ``start`` to ``stop`` (values, not exponents), evenly in log scale."""

  logspace: _Linear

  @pydantic.field_validator("logspace")
  @classmethod
  def _positive(cls, value):
    if value[0] <= 0 or value[1] <= 0:
      raise ValueError(
        f"start and stop must be > 0 (they are the end values, not exponents), "
        f"got {value[0]!r} and {value[1]!r}"
      )
    return value


def spec_kind(value: Any, kinds=GRID_KINDS) -> str | None:
  """The form a numeric spec is written in: number, list, or one of ``kinds`` (its closest, misspelt)."""
  if isinstance(value, (list, tuple)):
    return "list"
  if isinstance(value, Mapping) and len(value) == 1:
    return closest(next(iter(value)), kinds)
  return number_kind(value)


GRID_EXPECTED = "a number, a list, {linspace: [a, b, n]} or {logspace: [a, b, n]}"
GridSpec = either(
  GRID_EXPECTED, spec_kind, number=Finite, list=Values, linspace=Linspace, logspace=Logspace
)


def spec_size(spec: Any) -> int:
  """How many values a validated grid spec stands for, before any is computed."""
  if isinstance(spec, (Linspace, Logspace)):
    return int(getattr(spec, type(spec).__name__.lower())[2])
  return len(spec) if isinstance(spec, list) else 1


def spec_values(spec: Any) -> np.ndarray:
  """The values of a validated grid spec, as a float64 array."""
  if isinstance(spec, Linspace):
    return np.linspace(*spec.linspace)
  if isinstance(spec, Logspace):
    return np.geomspace(*spec.logspace)
  return np.array(spec if isinstance(spec, list) else [spec], dtype=np.float64)


def grid_values(path: str, spec: Any) -> np.ndarray:
  """The values a grid spec stands for, as a float64 array.

  ``logspace: [a, b, n]`` takes the end points themselves (not exponents):
  ``n`` values from ``a`` to ``b`` evenly spaced in log scale, like
  ``np.geomspace``.

  Raises:
    ConfigError: naming ``path`` for a malformed or empty spec.
  """
  return spec_values(validate(GridSpec, spec, path))


def product(
  grid: Mapping[str, np.ndarray],
  seeds: tuple[int, ...],
  samples: Mapping[str, np.ndarray] | None = None,
):
  """The configurations of a group: the grid times its sampled points times the seeds.

  Flat arrays of length K = (product of the grid's lengths) x N x len(seeds),
  where ``samples`` holds N points (name -> [N], drawn jointly: the point
  ``i`` is index ``i`` of every array; none: N = 1). The grid varies slowest,
  the seed fastest, so the runs of one configuration are adjacent.

  Returns:
    ``(values, seed_array)``: a dict name -> float array [K], and int array [K].
  """
  samples = dict(samples or {})
  points = len(next(iter(samples.values()))) if samples else 1
  names = list(grid)
  rows = list(itertools.product(*(grid[n] for n in names), range(points), seeds))
  values = {n: np.array([row[i] for row in rows], dtype=np.float64) for i, n in enumerate(names)}
  point = np.array([row[-2] for row in rows], dtype=np.int64)
  values.update({n: np.asarray(v, dtype=np.float64)[point] for n, v in samples.items()})
  return values, np.array([row[-1] for row in rows], dtype=np.int64)
