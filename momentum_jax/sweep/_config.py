"""Sweep configurations: YAML (or a dict) in, a validated :class:`SweepConfig` out.

Everything is checked here, before anything compiles. The file is read as
YAML 1.2 (:mod:`momentum_jax.sweep._yaml`); its sections are typed by the
schema (:mod:`momentum_jax.sweep._schema`, pydantic in strict mode); the
arguments of the functions it names (the optimizer, its schedule, the
problem) are typed from their signatures (a bool default takes only true or
false), after their names are checked with the closest one suggested; the
sizes it asks for are checked before anything is allocated
(:mod:`momentum_jax.sweep._sizes`); then the hyperparameters' valid values
(by our optimizers' own checks, run on the whole grid and on the ends of each
range at once), and that every other optimizer returns a
GradientTransformation and takes its swept values traced (see
:mod:`momentum_jax.sweep._optimizers`).

A config is code where it names code: resolving ``package.module:function``
imports that module, which runs its code, as any tool that imports user code.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from typing import Any, Callable, Mapping

import numpy as np

from momentum_jax import optim, problems
from momentum_jax.sweep import _sizes
from momentum_jax.sweep import _checks
from momentum_jax.sweep._errors import ConfigError
from momentum_jax.sweep._grid import spec_size, spec_values
from momentum_jax.sweep._imports import import_object, recorded_name
from momentum_jax.sweep._options import (
  NUMERIC,
  range_error,
  split_options,
  typed_options,
  with_range_ends,
)
from momentum_jax.sweep._optimizers import (
  OPTIMIZERS,
  check_factory,
  keyword_parameters,
  known_name,
  resolve_optimizer,
)
from momentum_jax.sweep._problem_config import (  # noqa: F401  (build_problem re-exported)
  build_problem,
  parse_problem as _parse_problem,
)
from momentum_jax.sweep._schema import SCHEDULES, OptimizerSection, ScheduleSection, SweepSchema
from momentum_jax.sweep._specs import (  # noqa: F401  (re-exported: the config's types)
  KeepSpec,
  OptimizerSpec,
  ScheduleSpec,
  SweepConfig,
  trainable_hyperparameters,
)
from momentum_jax.sweep._search import (  # noqa: F401  (re-exported)
  SCHEDULERS,
  SchedulerSpec,
  SearchSpec,
  check_search as _check_search,
  check_searched,
  scheduler_metric,
  scheduler_metrics,
  search_points,
  search_record,
)
from momentum_jax.sweep._space import Range, as_range
from momentum_jax.sweep._validation import python_numbers, validate
from momentum_jax.sweep._yaml import read_yaml

SCHEDULE_PREFIX = "schedule."
# warmup_steps is ours, not a schedule's argument: numeric, as one without a default.
_WARMUP = inspect.Parameter("warmup_steps", inspect.Parameter.KEYWORD_ONLY)


@dataclasses.dataclass
class _Written:
  """An optimizer group as written and typed, before any value is computed."""

  path: str
  name: str
  factory: Callable[..., Any]
  grid: dict[str, Any]  # name -> validated grid spec (schedule's prefixed)
  ranges: dict[str, Range]
  static: dict[str, Any]
  schedule: ScheduleSpec | None
  given: Mapping[str, Any]
  eval_params: Callable[[Any, Any], Any] | None = None

  def sizes(self) -> dict[str, int]:
    return {name: spec_size(spec) for name, spec in self.grid.items()}


def _type_schedule(path: str, section: ScheduleSection, search: SearchSpec):
  """``(spec, grid specs, ranges, static)`` of a schedule, its names prefixed ``schedule.``."""
  function = SCHEDULES[section.name]
  parameters = dict(inspect.signature(function).parameters)
  parameters.pop("init_value")
  given = section.arguments
  for key, parameter in parameters.items():
    if parameter.default is inspect.Parameter.empty and key not in given:
      raise ConfigError(f"{path}.{key}", f"required by {section.name}")
  typed = typed_options(path, section.name, {**parameters, "warmup_steps": _WARMUP}, False, given)
  grid, ranges, static = split_options(path, typed, search)
  spec = ScheduleSpec(
    name=section.name,
    unit=section.unit,
    static=static,
    warmup="warmup_steps" in grid or "warmup_steps" in ranges,
  )
  return (
    spec,
    {SCHEDULE_PREFIX + k: v for k, v in grid.items()},
    {SCHEDULE_PREFIX + k: as_range(r) for k, r in ranges.items()},
  )


def _type_optimizer(path: str, section: OptimizerSection, search: SearchSpec) -> _Written:
  factory, name = resolve_optimizer(f"{path}.name", section.name)
  given = section.arguments
  parameters, takes_any = keyword_parameters(factory)
  learning_rate = parameters.get("learning_rate")
  if section.schedule is not None and learning_rate is None and not takes_any:
    raise ConfigError(f"{path}.schedule", f"{name} takes no learning_rate for a schedule to drive")
  if "learning_rate" not in given and (
    section.schedule is not None
    or (learning_rate is not None and learning_rate.default is inspect.Parameter.empty)
  ):
    raise ConfigError(f"{path}.learning_rate", f"required ({NUMERIC})")
  typed = typed_options(path, name, parameters, takes_any, given)
  grid, ranges, static = split_options(path, typed, search)
  if "learning_rate" in given and "learning_rate" not in grid and "learning_rate" not in ranges:
    raise ConfigError(
      f"{path}.learning_rate", f"expected {NUMERIC}, got {given['learning_rate']!r}"
    )
  ranges = {k: as_range(r) for k, r in ranges.items()}
  schedule = None
  if section.schedule is not None:
    spec, schedule_grid, schedule_ranges = _type_schedule(
      f"{path}.schedule", section.schedule, search
    )
    grid.update(schedule_grid)
    ranges.update(schedule_ranges)
    schedule = spec
  return _Written(
    path,
    name,
    factory,
    grid,
    ranges,
    static,
    schedule,
    given,
    _eval_params(f"{path}.eval_params", section.eval_params),
  )


def _type_hyperparameters(name: str, given: Mapping[str, Any], search: SearchSpec) -> _Written:
  """``hyperparameters:``, a Trainable's: each a number, list, space or range, typed as a float."""
  path = "hyperparameters"
  if not given:
    raise ConfigError(path, f"name at least one hyperparameter to sweep ({NUMERIC})")
  for key, value in given.items():
    _checks.check_hyperparameter_name(f"{path}.{key}", key, given if search.method == "pbt" else ())
    _checks.check_written_number(f"{path}.{key}", value)
  # Typed as a float argument is; any name a mapping's key may be (a dash, a dot), not only
  # a Python identifier.
  number = inspect.Parameter("hyperparameter", inspect.Parameter.KEYWORD_ONLY, default=0.0)
  parameters = dict.fromkeys(given, number)
  grid, ranges, static = split_options(
    path, typed_options(path, name, parameters, False, given), search
  )
  if static:
    key = next(iter(static))
    raise ConfigError(
      f"{path}.{key}",
      f"expected {NUMERIC}, got {static[key]!r} (a Trainable's fixed options go to its "
      "factory, under problem:)",
    )
  ranges = {k: as_range(r) for k, r in ranges.items()}
  return _Written(path, name, trainable_hyperparameters, grid, ranges, {}, None, given)


def _eval_params(path: str, written: Any) -> Callable[[Any, Any], Any] | None:
  """``optimizer.eval_params``: a callable, or the function ``package.module:function`` names."""
  if written is None or callable(written):
    return written
  function = import_object(path, written) if ":" in written else None
  if not callable(function):
    raise ConfigError(
      path,
      "expected 'package.module:function' naming a function "
      f"(opt_state, params) -> params, got {written!r}",
    )
  return function


def _check_values(written: _Written, grid: Mapping[str, np.ndarray]) -> None:
  """The learning rate > 0, and our optimizers' and the schedule's own checks, on every value at once."""
  path = written.path
  checked = with_range_ends(grid, written.ranges)
  own = {n: v for n, v in checked.items() if not n.startswith(SCHEDULE_PREFIX)}
  # An optimizer's; a Trainable's learning_rate means what its code makes of it (0: a baseline).
  mine = written.factory is not trainable_hyperparameters
  if mine and "learning_rate" in own and np.any(own["learning_rate"] <= 0):
    raise ConfigError(f"{path}.learning_rate", f"must be > 0, got {own['learning_rate'].tolist()}")
  if written.factory in OPTIMIZERS.values():
    _call_checked(path, written.factory, own, written.static)
  if written.schedule is not None:
    schedule = written.schedule
    values = {
      n[len(SCHEDULE_PREFIX) :]: v for n, v in checked.items() if n.startswith(SCHEDULE_PREFIX)
    }
    warmup = values.pop("warmup_steps", None)
    _call_checked(
      f"{path}.schedule", lambda **kw: SCHEDULES[schedule.name](1.0, **kw), values, schedule.static
    )
    if warmup is not None:
      _call_checked(
        f"{path}.schedule",
        lambda **kw: optim.linear_warmup(0.0, 1.0, **kw),
        {"warmup_steps": warmup},
        {},
      )


def _call_checked(path: str, function: Callable[..., Any], values, static) -> None:
  try:
    function(**values, **static)
  except ValueError as error:
    raise range_error(path, error) from None
  except TypeError as error:
    raise ConfigError(path, str(error)) from None


def _parse_optimizer(written: _Written, search: SearchSpec) -> OptimizerSpec:
  """The group's values computed (its sizes checked before) and its factory tried traced."""
  path, name, factory = written.path, written.name, written.factory
  values = {n: spec_values(spec) for n, spec in written.grid.items()}
  _check_values(written, values)
  samples, checked = search_points(written.ranges, search)
  own = {n: v for n, v in checked.items() if not n.startswith(SCHEDULE_PREFIX)}
  own_grid = {n: v for n, v in values.items() if not n.startswith(SCHEDULE_PREFIX)}
  if factory is trainable_hyperparameters:  # a Trainable's: checked when it is built
    swept, static = set(own_grid) | set(own), {}
  else:
    swept, static = check_factory(
      path, name, factory, {**own_grid, **own}, written.static, written.given
    )
    _checks.check_argument_names(path, name, swept)
  # An argument the factory needs concrete, given one value, became static.
  grid = {n: v for n, v in values.items() if n in swept or n.startswith(SCHEDULE_PREFIX)}
  kept = {n for n in checked if n in swept or n.startswith(SCHEDULE_PREFIX)}
  samples = {n: v for n, v in samples.items() if n in kept}
  ranges = {n: r for n, r in written.ranges.items() if n in kept}
  return OptimizerSpec(
    name=name,
    static=static,
    grid=grid,
    schedule=written.schedule,
    factory=factory,
    ranges=ranges,
    samples=samples,
    trials=search.trials,
    eval_params=written.eval_params,
  )


def _check_groups(schema: SweepSchema) -> None:
  """Exactly one of ``optimizer``, ``optimizers`` (a Problem's) or ``hyperparameters`` (a
  Trainable's)."""
  given = [
    k for k in ("optimizer", "optimizers", "hyperparameters") if getattr(schema, k) is not None
  ]
  if len(given) != 1:
    raise ConfigError(
      given[-1] if given else "optimizer",
      "give exactly one of 'optimizer' (a mapping) or 'optimizers' (a list of mappings) for a "
      "Problem, or 'hyperparameters' (a mapping) for a Trainable"
      + (f"; got {' and '.join(given)}" if given else ""),
    )


def _seeds(seeds: int | list[int]) -> tuple[int, ...]:
  return tuple(range(seeds)) if isinstance(seeds, int) else tuple(seeds)


def _recorded(value: Any) -> Any:
  """``value`` with each Python object replaced by the string naming it, for the manifest.

  A Problem is ``problem:<name>``; a function the name a YAML file would give
  it (``momentum``, ``optax.adamw``, ``package.module:function``) where it
  has one, else ``python:module:qualname``
  (:func:`~momentum_jax.sweep._imports.recorded_name`).
  """
  if isinstance(value, (problems.Problem, problems.Trainable)):
    return f"problem:{value.name}"
  if callable(value):
    return known_name(value) or recorded_name(value)
  if isinstance(value, Mapping):
    return {k: _recorded(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return type(value)(_recorded(v) for v in value)
  return value


def _read(source: str | os.PathLike | Mapping[str, Any]) -> tuple[Any, str, str]:
  """``(raw, default name, where)``: the config's plain data, its name, and what to call the source."""
  if isinstance(source, Mapping):
    # The problem's options are its builder's to read (an array may be its data).
    numbers = {k: v if k == "problem" else python_numbers(v) for k, v in source.items()}
    return numbers, "sweep", ""
  name = os.fspath(source)
  return read_yaml(name), os.path.splitext(os.path.basename(name))[0], name


def load_config(
  source: str | os.PathLike | Mapping[str, Any], *, force: bool = False
) -> SweepConfig:
  """Reads and validates a sweep configuration from a YAML file or a dict.

  An optimizer's ``name`` is one of :data:`OPTIMIZERS`, ``optax.<alias>``,
  ``package.module:function`` or (in a dict) a callable returning an
  ``optax.GradientTransformation``; a numeric hyperparameter a number, a
  list, ``linspace``, ``logspace``, or (with a top-level ``search:`` of
  method ``random`` or ``quasirandom``) ``uniform``/``loguniform`` range,
  whose points are drawn here (method ``optuna``: asked while the sweep
  trains, lists searched too, see :mod:`momentum_jax.sweep.strategies._optuna_study`); ``problem.name`` one of
  :data:`momentum_jax.problems.PROBLEMS`, ``package.module:function`` or
  (in a dict) a callable returning a Problem; a dict's ``problem`` may be a
  Problem itself. Nothing is built or compiled here: import paths are
  resolved (importing a module runs its code), and each optimizer is called
  once and traced abstractly.

  Args:
    source: A YAML file's path, or the config as a dict.
    force: Go on with sizes beyond :mod:`momentum_jax.sweep._sizes`' limits
      (the CLI's ``--force``).

  Raises:
    ConfigError: (a ``ValueError``) naming the field, as a path in the YAML
      (or the file, for what is wrong with the file itself).
    FileNotFoundError: if the file does not exist.
  """
  raw, default_name, where = _read(source)
  try:
    schema = validate(SweepSchema, raw)
  except ConfigError as error:
    if error.path or not where:
      raise
    raise ConfigError(where, str(error)) from None
  if isinstance(raw, Mapping) and "hyperparameters" in raw and raw["hyperparameters"] is None:
    raise ConfigError("hyperparameters", f"name at least one hyperparameter to sweep ({NUMERIC})")
  _check_groups(schema)
  search = SearchSpec() if schema.search is None else schema.search.spec()
  problem, problem_options, problem_source = _parse_problem(schema.problem)
  if schema.hyperparameters is not None:
    written = [_type_hyperparameters(problem, schema.hyperparameters, search)]
  else:
    sections = (
      [("optimizer", schema.optimizer)]
      if schema.optimizer is not None
      else [(f"optimizers[{i}]", o) for i, o in enumerate(schema.optimizers)]
    )
    written = [_type_optimizer(path, section, search) for path, section in sections]
  train = schema.train.config()
  seeds = _seeds(schema.seeds)
  if not force:
    _sizes.check_config_sizes(written, search, len(seeds))
  optimizers = tuple(_parse_optimizer(w, search) for w in written)
  labels = [o.label for o in optimizers]
  for index, label in enumerate(labels):
    if label in labels[:index]:
      raise ConfigError(
        f"optimizers[{index}]",
        f"repeats optimizers[{labels.index(label)}] ({label}); merge their grids into one entry",
      )
  check_searched(search, optimizers)
  _check_search(search, train)
  return SweepConfig(
    name=default_name if schema.name is None else schema.name,
    problem=problem,
    problem_options=problem_options,
    optimizers=optimizers,
    train=train,
    seeds=seeds,
    chunk_size=None if schema.chunk_size in (None, "auto") else schema.chunk_size,
    raw=_recorded(raw),
    problem_source=problem_source,
    search=search,
    keep=None if schema.keep is None else KeepSpec(schema.keep.models, schema.keep.metric),
  )
