"""Grid values: a number, a list, ``{linspace: [a, b, n]}`` or ``{logspace: [a, b, n]}``.

Ranges (``uniform``, ``loguniform``) are sampled, not gridded: see
:mod:`momentum_jax.sweep._space`.
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping

import numpy as np

from momentum_jax.sweep._errors import ConfigError


def is_grid_spec(value: Any) -> bool:
  """Whether ``value`` is a numeric hyperparameter (swept or fixed) rather than a static option."""
  if isinstance(value, bool) or value is None or isinstance(value, str):
    return False
  if isinstance(value, (int, float)):
    return True
  if isinstance(value, (list, tuple)):
    return True
  return isinstance(value, Mapping) and set(value) <= {"linspace", "logspace"} and bool(value)


def grid_values(path: str, spec: Any) -> np.ndarray:
  """The values a grid spec stands for, as a float64 array.

  ``logspace: [a, b, n]`` takes the end points themselves (not exponents):
  ``n`` values from ``a`` to ``b`` evenly spaced in log scale, like
  ``np.geomspace``.

  Raises:
    ConfigError: naming ``path`` for a malformed or empty spec.
  """
  if isinstance(spec, bool):
    raise ConfigError(path, f"expected a number, a list or linspace/logspace, got {spec!r}")
  if isinstance(spec, (int, float)):
    values = np.array([spec], dtype=np.float64)
  elif isinstance(spec, (list, tuple)):
    if not spec:
      raise ConfigError(path, "the list of values is empty")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec):
      raise ConfigError(path, f"every value must be a number, got {list(spec)!r}")
    values = np.array(spec, dtype=np.float64)
  elif isinstance(spec, Mapping) and len(spec) == 1 and next(iter(spec)) in ("linspace", "logspace"):
    kind, args = next(iter(spec.items()))
    if (not isinstance(args, (list, tuple)) or len(args) != 3
        or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)):
      raise ConfigError(f"{path}.{kind}", f"expected [start, stop, count], got {args!r}")
    start, stop, count = args
    if count != int(count) or count < 1:
      raise ConfigError(f"{path}.{kind}", f"count must be a positive integer, got {count!r}")
    if kind == "logspace":
      if start <= 0 or stop <= 0:
        raise ConfigError(f"{path}.logspace",
                          f"start and stop must be > 0 (they are the end values, not "
                          f"exponents), got {start!r} and {stop!r}")
      values = np.geomspace(start, stop, int(count))
    else:
      values = np.linspace(start, stop, int(count))
  else:
    raise ConfigError(
        path, f"expected a number, a list, {{linspace: [a, b, n]}} or {{logspace: [a, b, n]}}, "
        f"got {spec!r}")
  if not np.all(np.isfinite(values)):
    raise ConfigError(path, f"values must be finite, got {values.tolist()}")
  return values


def product(grid: Mapping[str, np.ndarray], seeds: tuple[int, ...],
            samples: Mapping[str, np.ndarray] | None = None):
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
