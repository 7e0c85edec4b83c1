"""A function's options in a config: typed from its signature, split into grid, ranges and
static values (the optimizer's, its schedule's)."""

from __future__ import annotations

import inspect
from typing import Any, Mapping

import numpy as np

from momentum_jax.sweep._errors import ConfigError
from momentum_jax.sweep._grid import GRID_KINDS, Linspace, Logspace, spec_kind
from momentum_jax.sweep._optimizers import check_arguments
from momentum_jax.sweep._search import SearchSpec
from momentum_jax.sweep._space import RANGE_KINDS, Hyperparameter, LogUniform, Range, Uniform
from momentum_jax.sweep._validation import arguments_adapter, validate

RANGE_NEEDS_SEARCH = (
  "a range is sampled, and the sweep's search is a grid: add "
  "'search: {method: quasirandom, samples: N, seed: 0}' (or method: "
  "random) at the top level, or give a list, linspace or logspace"
)
NUMERIC = "a number, a list, linspace, logspace, uniform or loguniform"


def numeric_spec(path: str, value: Any) -> Any:
  """The validated numeric spec ``value`` is, or ``None`` for a static option.

  A value the signature typed is already validated; one of an argument it
  says nothing of (a ``None`` default) is numeric if written as one.
  """
  if isinstance(value, (Linspace, Logspace, Uniform, LogUniform)):
    return value
  if value is None or isinstance(value, (bool, str)) or callable(value):
    return None
  if spec_kind(value, GRID_KINDS + RANGE_KINDS) is None:
    return None
  return validate(Hyperparameter, value, path)


def typed_options(
  path: str,
  owner: str,
  parameters: Mapping[str, inspect.Parameter],
  takes_any: bool,
  given: Mapping[str, Any],
) -> dict[str, Any]:
  """``given``, the arguments of a function of ``parameters``, checked and typed.

  A name it does not take is refused with the closest (unless it takes
  ``**kwargs``); each value is validated as
  :func:`~momentum_jax.sweep._validation.default_type` says.
  """
  if not takes_any:
    check_arguments(path, owner, given, parameters)
  return {**given, **validate(arguments_adapter(parameters, Hyperparameter), given, path)}


def split_options(path: str, typed: Mapping[str, Any], search: SearchSpec):
  """Splits typed options into grid specs, ranges and static values."""
  grid, ranges, static = {}, {}, {}
  for key, value in typed.items():
    spec = numeric_spec(f"{path}.{key}", value)
    if spec is None:
      static[key] = value
    elif isinstance(spec, (Uniform, LogUniform)):
      if not search.samples_ranges:
        raise ConfigError(
          f"{path}.{key}",
          RANGE_NEEDS_SEARCH
          if search.strategy is None
          else f"search.method {search.method} decides over the grid's rows, and "
          "a range has none: give a list, linspace or logspace",
        )
      ranges[key] = spec
    else:
      grid[key] = spec
  return grid, ranges, static


def with_range_ends(grid: Mapping[str, np.ndarray], ranges: Mapping[str, Range]):
  """The grid and the ends of each range: the values the range checks are run on."""
  return {**grid, **{name: r.ends() for name, r in ranges.items()}}


def range_error(path: str, error: ValueError) -> ConfigError:
  # The optimizers' own messages start with the argument's name.
  argument = str(error).split(" ", 1)[0]
  return ConfigError(f"{path}.{argument}", str(error))
