"""Search spaces beyond a grid: ``{uniform: [lo, hi]}`` and ``{loguniform: [lo, hi]}`` ranges.

A range is not a list of values but an interval that a search samples: a
group's ranges are drawn jointly, ``samples`` points per group, by pseudo-random
numbers (``method: random``, numpy's PCG64) or by scrambled Halton points
(``method: quasirandom``, :class:`scipy.stats.qmc.Halton`, the low-discrepancy
sequence the Deep Learning Tuning Playbook and AlgoPerf recommend for
exploration). A ``loguniform`` range is sampled uniformly in the log of the
value. The points depend only on the group's ranges (in config order), the
sample count and the seed: every group draws from the same seed, so two
optimizers searched over the same ranges are tried at the same points.

Lists, ``linspace`` and ``logspace`` still cross with the samples
(:func:`momentum_jax.sweep._grid.product`).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Mapping

import numpy as np
import pydantic

from momentum_jax.sweep._grid import (
  GRID_KINDS,
  Finite,
  Linspace,
  Logspace,
  Values,
  spec_kind,
  written_as,
)
from momentum_jax.sweep._validation import Section, either, validate

RANGE_KINDS = ("uniform", "loguniform")
SAMPLING_METHODS = ("random", "quasirandom")


@dataclasses.dataclass(frozen=True)
class Range:
  """An interval a search samples a hyperparameter from.

  Attributes:
    kind: ``"uniform"`` or ``"loguniform"`` (uniform in ``log(value)``).
    low: The lower end, > 0 for ``loguniform``.
    high: The upper end, > ``low``.
  """

  kind: str
  low: float
  high: float

  @property
  def log(self) -> bool:
    return self.kind == "loguniform"

  def ends(self) -> np.ndarray:
    """``[low, high]``: what the optimizers' own range checks are run on."""
    return np.array([self.low, self.high], dtype=np.float64)

  def scale(self, unit: np.ndarray) -> np.ndarray:
    """Maps points of ``[0, 1)`` onto the range, in log scale for ``loguniform``."""
    from scipy.stats import qmc  # ~2 s to import scipy.stats: only when points are drawn

    if self.log:
      return np.exp(qmc.scale(unit[:, None], np.log(self.low), np.log(self.high))[:, 0])
    return qmc.scale(unit[:, None], self.low, self.high)[:, 0]

  def position(self, value: float) -> float:
    """Where ``value`` lies in the range, 0 at ``low`` and 1 at ``high``, in the range's scale."""
    if self.log:
      return float((np.log(value) - np.log(self.low)) / (np.log(self.high) - np.log(self.low)))
    return float((value - self.low) / (self.high - self.low))

  def record(self) -> dict[str, list[float]]:
    """The range as a config writes it: ``{"loguniform": [lo, hi]}``."""
    return {self.kind: [self.low, self.high]}


def is_range_spec(value: Any) -> bool:
  """Whether ``value`` is written as a range: a mapping with one key, ``uniform`` or ``loguniform``."""
  return isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in RANGE_KINDS


_Ends = Annotated[tuple[Finite, Finite], pydantic.Strict(False), written_as("low", "high")]


def _ordered(ends: tuple[float, float]) -> tuple[float, float]:
  if ends[0] >= ends[1]:
    raise ValueError(f"low must be < high, got {list(ends)!r}")
  return ends


class Uniform(Section):
  """``{uniform: [low, high]}``."""

  uniform: Annotated[_Ends, pydantic.AfterValidator(_ordered)]


class LogUniform(Section):
  """``{loguniform: [low, high]}``, ``low > 0``."""

  loguniform: Annotated[_Ends, pydantic.AfterValidator(_ordered)]

  @pydantic.field_validator("loguniform")
  @classmethod
  def _positive(cls, ends):
    if ends[0] <= 0:
      raise ValueError(
        f"low must be > 0 for a log scale, got {list(ends)!r} (use uniform "
        "for a range that reaches 0)"
      )
    return ends


NUMERIC_EXPECTED = "a number, a list, linspace, logspace, uniform or loguniform"
RangeSpec = either(
  "{uniform: [low, high]} or {loguniform: [low, high]}",
  lambda value: spec_kind(value, RANGE_KINDS),
  uniform=Uniform,
  loguniform=LogUniform,
)
# What an optimizer's numeric hyperparameter takes: grid values, or (searched) a range.
Hyperparameter = either(
  NUMERIC_EXPECTED,
  lambda value: spec_kind(value, GRID_KINDS + RANGE_KINDS),
  number=Finite,
  list=Values,
  linspace=Linspace,
  logspace=Logspace,
  uniform=Uniform,
  loguniform=LogUniform,
)


def as_range(spec: Uniform | LogUniform) -> Range:
  """The :class:`Range` of a validated range spec."""
  kind = "uniform" if isinstance(spec, Uniform) else "loguniform"
  low, high = getattr(spec, kind)
  return Range(kind, float(low), float(high))


def parse_range(path: str, spec: Mapping[str, Any]) -> Range:
  """The :class:`Range` of ``{uniform: [lo, hi]}`` or ``{loguniform: [lo, hi]}``.

  Raises:
    ConfigError: at ``<path>.<kind>`` unless ``lo < hi`` are two finite
      numbers, with ``lo > 0`` for ``loguniform``.
  """
  return as_range(validate(RangeSpec, spec, path))


def unit_points(method: str, dimensions: int, samples: int, seed: int) -> np.ndarray:
  """``samples`` points of ``[0, 1)^dimensions``, shape ``[samples, dimensions]``.

  ``quasirandom``: ``scipy.stats.qmc.Halton(dimensions, scramble=True,
  seed=seed).random(samples)``; ``random``:
  ``numpy.random.default_rng(seed).random((samples, dimensions))``.
  """
  if method == "quasirandom":
    from scipy.stats import qmc  # ~2 s to import scipy.stats: only when points are drawn

    return qmc.Halton(dimensions, scramble=True, seed=seed).random(samples)
  if method == "random":
    return np.random.default_rng(seed).random((samples, dimensions))
  raise ValueError(f"method must be one of {SAMPLING_METHODS}, got {method!r}")


def sample(
  ranges: Mapping[str, Range], method: str, samples: int, seed: int
) -> dict[str, np.ndarray]:
  """The ranges sampled jointly: name -> ``samples`` values (float64), point ``i`` at index ``i``.

  Dimension ``j`` of :func:`unit_points` is the ``j``-th range, in the
  mapping's order (the config's), scaled by :meth:`Range.scale`.
  """
  if not ranges:
    return {}
  unit = unit_points(method, len(ranges), samples, seed)
  return {name: r.scale(unit[:, j]) for j, (name, r) in enumerate(ranges.items())}
