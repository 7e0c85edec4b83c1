"""Sweep configurations: YAML (or a dict) in, a validated :class:`SweepConfig` out.

Everything is checked here, before anything compiles: names and import paths
(with the closest valid one suggested), unknown keys, types, grids, the
search and its ranges (:mod:`momentum_jax.sweep._space`, whose points are
drawn here), the hyperparameters' valid values (by our optimizers' own
checks, run on the whole grid and on the ends of each range at once), and
that every other optimizer returns a GradientTransformation and takes its
swept values traced (see :mod:`momentum_jax.sweep._optimizers`).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from typing import Any, Callable, Mapping

import numpy as np
import yaml

from momentum_jax import optim, problems
from momentum_jax.sweep._checks import as_mapping as _as_mapping
from momentum_jax.sweep._checks import check_keys as _check_keys
from momentum_jax.sweep._checks import check_name as _check_name
from momentum_jax.sweep._errors import ConfigError
from momentum_jax.sweep._problem_config import (  # noqa: F401  (build_problem re-exported)
    build_problem, parse_problem as _parse_problem)
from momentum_jax.sweep._search import (  # noqa: F401  (re-exported)
    SCHEDULERS, SchedulerSpec, SearchSpec, check_search as _check_search, check_searched,
    parse_search as _parse_search, scheduler_metric, scheduler_metrics, search_points,
    search_record)
from momentum_jax.sweep._grid import grid_values, is_grid_spec
from momentum_jax.sweep._imports import import_object, python_name, recorded_name, suggest
from momentum_jax.sweep._space import RANGE_KINDS, Range, is_range_spec, parse_range
from momentum_jax.sweep._optimizers import (
    OPTIMIZERS, check_arguments, check_factory, keyword_parameters, known_name, resolve_optimizer)
from momentum_jax.train import TrainConfig

SCHEDULES: dict[str, Callable[..., Any]] = {
    "step_decay": optim.step_decay,
    "cosine_annealing": optim.cosine_annealing,
    "polynomial_decay": optim.polynomial_decay,
    "exponential_decay": optim.exponential_decay,
}
SCHEDULE_PREFIX = "schedule."
_TOP_KEYS = ("name", "problem", "optimizer", "optimizers", "train", "seeds", "chunk_size",
             "search", "keep")
_RANGE_NEEDS_SEARCH = ("a range is sampled, and the sweep's search is a grid: add "
                       "'search: {method: quasirandom, samples: N, seed: 0}' (or method: "
                       "random) at the top level, or give a list, linspace or logspace")
_NUMERIC = "a number, a list, linspace, logspace, uniform or loguniform"
_TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig))


@dataclasses.dataclass(frozen=True)
class ScheduleSpec:
  """A learning-rate schedule whose ``init_value`` is the optimizer's learning rate.

  Attributes:
    name: A key of :data:`SCHEDULES`.
    unit: ``"step"`` or ``"epoch"`` (counted with :func:`momentum_jax.per_epoch`).
    static: Non-numeric arguments.
    warmup: Whether a linear warm-up from 0 (``warmup_steps`` in the grid) precedes it.
  """

  name: str
  unit: str = "step"
  static: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  warmup: bool = False


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
  """One optimizer group of a sweep: trained as one vmapped program.

  Attributes:
    name: As the config wrote it: a key of :data:`OPTIMIZERS`,
      ``optax.<alias>`` or ``package.module:function``; for a callable,
      ``momentum``/``optax.<alias>`` if it is one of those, else its
      ``module:qualname``.
    static: Non-numeric options (``ema``, ``nesterov``, ``centered``, …), and
      a numeric one the factory cannot take traced, given one value.
    grid: Numeric hyperparameter -> its values; schedule parameters are
      prefixed ``schedule.``.
    schedule: The learning-rate schedule, if any.
    factory: The function ``name`` stands for (looked up from ``name`` when
      not given): called as ``factory(**hyperparameters, **static)``, it
      returns the ``optax.GradientTransformation``.
    ranges: Hyperparameter -> the :class:`~momentum_jax.sweep._space.Range`
      the search samples it from (prefixed as ``grid``).
    samples: The points drawn from ``ranges``: name -> N values, the point
      ``i`` at index ``i`` of each; they cross with ``grid``.
    trials: With ``search: {method: optuna}``, the trials Optuna is asked
      for (its ranges and the grid's lists are searched, not crossed or
      sampled here); ``None`` otherwise.
    eval_params: ``(opt_state, params) -> params``, the parameters the
      validation metrics are measured at (``optimizer.eval_params``); ``None``:
      the iterate, or a schedule-free optimizer's own (see
      :func:`momentum_jax.train.evaluation_params`).
  """

  name: str
  static: Mapping[str, Any]
  grid: Mapping[str, np.ndarray]
  schedule: ScheduleSpec | None = None
  factory: Callable[..., Any] = None
  ranges: Mapping[str, Range] = dataclasses.field(default_factory=dict)
  samples: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
  trials: int | None = None
  eval_params: Callable[[Any, Any], Any] | None = None

  def __post_init__(self):
    if self.factory is None:
      object.__setattr__(self, "factory", resolve_optimizer("name", self.name)[0])

  @property
  def num_configs(self) -> int:
    """Configurations of one seed: the grid's product times the points sampled (or the trials)."""
    if self.trials is not None:
      return self.trials
    points = len(next(iter(self.samples.values()))) if self.samples else 1
    return int(np.prod([len(v) for v in self.grid.values()])) * points

  @property
  def label(self) -> str:
    """The name, with the static options and schedule that tell groups apart.

    E.g. ``momentum(ema=false)`` and ``momentum(ema=true)``; the results'
    ``optimizer`` column holds this label.
    """
    options = [f"{k}={_shown(v)}" for k, v in self.static.items()]
    if self.schedule is not None:
      options.append(f"schedule={self.schedule.name}")
    return f"{self.name}({', '.join(options)})" if options else self.name


@dataclasses.dataclass(frozen=True)
class KeepSpec:
  """``keep:``: the trained models of the ``models`` best configurations are kept.

  Attributes:
    models: How many configurations (each with every seed).
    metric: The metric they are ranked by (the mean over seeds, as the
      report ranks); ``None``: the report's (``val_accuracy``, else
      ``final_loss``). Checked against the problem by the engine.
  """

  models: int
  metric: str | None = None


def _parse_keep(raw: Any) -> KeepSpec | None:
  if raw is None:
    return None
  raw = _as_mapping("keep", raw)
  _check_keys("keep", raw, ("models", "metric"))
  models = raw.get("models")
  if isinstance(models, bool) or not isinstance(models, int) or models < 1:
    raise ConfigError("keep.models", f"expected a positive integer (how many of the best "
                      f"configurations to keep), got {models!r}")
  metric = raw.get("metric")
  if metric is not None and not isinstance(metric, str):
    raise ConfigError("keep.metric", f"expected a metric's name, e.g. val_loss, got {metric!r}")
  return KeepSpec(models, metric)


def _shown(value: Any) -> str:
  if isinstance(value, bool):
    return str(value).lower()
  return python_name(value) if callable(value) else str(value)


@dataclasses.dataclass(frozen=True)
class SweepConfig:
  """A validated sweep.

  Attributes:
    name: A label for the sweep (default: the file name).
    problem: A key of :data:`momentum_jax.problems.PROBLEMS`, an import path
      ``package.module:function``, or the name of a given Problem.
    problem_options: Its keyword arguments.
    optimizers: The optimizer groups.
    train: The training configuration shared by all runs.
    seeds: The seeds every configuration is run with.
    chunk_size: Configurations per compiled chunk, or ``None`` to choose.
    raw: The configuration as given, for the manifest (JSON-serialisable:
      a Python object of a dict config is replaced by the string naming
      it, see :func:`_recorded`).
    problem_source: What :func:`build_problem` builds the problem with: the
      function ``problem`` names, or the given Problem; ``None``: the
      built-in ``problem``.
    search: How the configurations are proposed (``search:``; a grid by
      default).
    keep: Which trained models are kept (``keep:``); ``None``: none.
  """

  name: str
  problem: str
  problem_options: Mapping[str, Any]
  optimizers: tuple[OptimizerSpec, ...]
  train: TrainConfig
  seeds: tuple[int, ...]
  chunk_size: int | None
  raw: Mapping[str, Any]
  problem_source: Callable[..., problems.Problem] | problems.Problem | None = None
  search: SearchSpec = dataclasses.field(default_factory=SearchSpec)
  keep: KeepSpec | None = None

  @property
  def num_configs(self) -> int:
    return sum(o.num_configs for o in self.optimizers) * len(self.seeds)


def _parameters(function: Callable[..., Any]) -> dict[str, inspect.Parameter]:
  return dict(inspect.signature(function).parameters)


def _split_options(path: str, raw: Mapping[str, Any], parameters, search: SearchSpec, skip=()):
  """Splits options into numeric grids, ranges and static values, checking static types."""
  grid, ranges, static = {}, {}, {}
  for key, value in raw.items():
    if key in skip:
      continue
    parameter = parameters.get(key)  # None: a parameter of ours with no signature (warmup_steps)
    default = parameter.default if parameter is not None else inspect.Parameter.empty
    if isinstance(default, bool) and not isinstance(value, bool):
      raise ConfigError(f"{path}.{key}", f"expected true or false, got {value!r}")
    if isinstance(default, bool):
      static[key] = value
    elif is_range_spec(value):
      ranges[key] = parse_range(f"{path}.{key}", value)
      if not search.samples_ranges:
        raise ConfigError(f"{path}.{key}", _RANGE_NEEDS_SEARCH)
    elif is_grid_spec(value):
      grid[key] = grid_values(f"{path}.{key}", value)
    else:
      _check_misspelt_spec(f"{path}.{key}", value)
      static[key] = value
  return grid, ranges, static


def _check_misspelt_spec(path: str, value: Any) -> None:
  # A one-key mapping that is almost a grid or range spec would otherwise
  # reach the factory as a static option, to fail there with a murkier message.
  if isinstance(value, Mapping) and len(value) == 1:
    kinds = ("linspace", "logspace", *RANGE_KINDS)
    hint = suggest(next(iter(value)), kinds)
    if hint:
      raise ConfigError(path, f"unknown kind of values {next(iter(value))!r}{hint} "
                        f"(one of {', '.join(kinds)})")


def _with_range_ends(grid: Mapping[str, np.ndarray], ranges: Mapping[str, Range]):
  """The grid and the ends of each range: the values the range checks are run on."""
  return {**grid, **{name: r.ends() for name, r in ranges.items()}}


def _range_error(path: str, error: ValueError) -> ConfigError:
  # The optimizers' own messages start with the argument's name.
  argument = str(error).split(" ", 1)[0]
  return ConfigError(f"{path}.{argument}", str(error))


def _parse_schedule(path: str, raw: Any, search: SearchSpec
                    ) -> tuple[ScheduleSpec, dict[str, np.ndarray], dict[str, Range]]:
  raw = dict(_as_mapping(path, raw))
  name = _check_name(f"{path}.name", raw.pop("name", None), SCHEDULES)
  parameters = _parameters(SCHEDULES[name])
  parameters.pop("init_value")
  allowed = ("unit", "warmup_steps", *parameters)
  _check_keys(path, raw, allowed)
  unit = raw.pop("unit", "step")
  if unit not in ("step", "epoch"):
    raise ConfigError(f"{path}.unit", f"must be 'step' or 'epoch', got {unit!r}")
  for key, parameter in parameters.items():
    if parameter.default is inspect.Parameter.empty and key not in raw:
      raise ConfigError(f"{path}.{key}", f"required by {name}")
  grid, ranges, static = _split_options(path, raw, {**parameters, "warmup_steps": None}, search)
  checked = _with_range_ends(grid, ranges)
  try:
    SCHEDULES[name](1.0, **{k: v for k, v in checked.items() if k != "warmup_steps"}, **static)
    if "warmup_steps" in checked:
      optim.linear_warmup(0.0, 1.0, checked["warmup_steps"])
  except ValueError as error:
    raise _range_error(path, error) from None
  except TypeError as error:
    raise ConfigError(path, str(error)) from None
  spec = ScheduleSpec(name=name, unit=unit, static=static, warmup="warmup_steps" in checked)
  return (spec, {SCHEDULE_PREFIX + k: v for k, v in grid.items()},
          {SCHEDULE_PREFIX + k: r for k, r in ranges.items()})


def _parse_eval_params(path: str, raw: Any) -> Callable[[Any, Any], Any] | None:
  """``optimizer.eval_params``: a callable, or ``package.module:function`` naming one."""
  if raw is None or callable(raw):
    return raw
  if isinstance(raw, str) and ":" in raw:
    function = import_object(path, raw)
    if callable(function):
      return function
  raise ConfigError(path, f"expected 'package.module:function' naming a function "
                    f"(opt_state, params) -> params, got {raw!r}")


def _parse_optimizer(path: str, raw: Any, search: SearchSpec) -> OptimizerSpec:
  raw = dict(_as_mapping(path, raw))
  factory, name = resolve_optimizer(f"{path}.name", raw.pop("name", None))
  eval_params = _parse_eval_params(f"{path}.eval_params", raw.pop("eval_params", None))
  parameters, takes_any = keyword_parameters(factory)
  if not takes_any:
    check_arguments(path, name, raw, (*parameters, "schedule"))
  learning_rate = parameters.get("learning_rate")
  if "schedule" in raw and learning_rate is None and not takes_any:
    raise ConfigError(f"{path}.schedule", f"{name} takes no learning_rate for a schedule to drive")
  if "learning_rate" not in raw and ("schedule" in raw or (
      learning_rate is not None and learning_rate.default is inspect.Parameter.empty)):
    raise ConfigError(f"{path}.learning_rate", f"required ({_NUMERIC})")
  grid, ranges, static = _split_options(path, raw, parameters, search, skip=("schedule",))
  checked = _with_range_ends(grid, ranges)
  if "learning_rate" in raw and "learning_rate" not in checked:
    raise ConfigError(f"{path}.learning_rate",
                      f"expected {_NUMERIC}, got {raw['learning_rate']!r}")
  if "learning_rate" in checked and np.any(checked["learning_rate"] <= 0):
    raise ConfigError(f"{path}.learning_rate",
                      f"must be > 0, got {checked['learning_rate'].tolist()}")
  if factory in OPTIMIZERS.values():  # ours check the grid and the ranges' ends at once
    try:
      factory(**checked, **static)
    except ValueError as error:
      raise _range_error(path, error) from None
    except TypeError as error:
      raise ConfigError(path, str(error)) from None
  schedule, schedule_grid, schedule_ranges = None, {}, {}
  if "schedule" in raw:
    schedule, schedule_grid, schedule_ranges = _parse_schedule(
        f"{path}.schedule", raw["schedule"], search)
  ranges.update(schedule_ranges)
  samples, checked = search_points(ranges, search)
  own = {n: v for n, v in checked.items() if not n.startswith(SCHEDULE_PREFIX)}
  swept, static = check_factory(path, name, factory, {**grid, **own}, static, raw)
  # An argument the factory needs concrete, given one value, became static.
  grid = {**{n: v for n, v in swept.items() if n in grid}, **schedule_grid}
  kept = {n for n in checked if n in swept or n.startswith(SCHEDULE_PREFIX)}
  samples = {n: v for n, v in samples.items() if n in kept}
  ranges = {n: r for n, r in ranges.items() if n in kept}
  return OptimizerSpec(name=name, static=static, grid=grid, schedule=schedule, factory=factory,
                       ranges=ranges, samples=samples, trials=search.trials,
                       eval_params=eval_params)


def _parse_seeds(raw: Any) -> tuple[int, ...]:
  if isinstance(raw, int) and not isinstance(raw, bool):
    if raw < 1:
      raise ConfigError("seeds", f"a count must be >= 1, got {raw}")
    return tuple(range(raw))
  if (isinstance(raw, list) and raw
      and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in raw)):
    if len(set(raw)) != len(raw):
      raise ConfigError("seeds", f"seeds must be distinct, got {raw}")
    return tuple(raw)
  raise ConfigError("seeds", f"expected a count >= 1 or a list of distinct seeds >= 0, got {raw!r}")


def _parse_train(raw: Any) -> TrainConfig:
  raw = _as_mapping("train", raw)
  _check_keys("train", raw, _TRAIN_KEYS)
  if "steps" not in raw:
    raise ConfigError("train.steps", "required: the number of optimizer steps")
  try:
    return TrainConfig(**raw)
  except ValueError as error:
    raise _range_error("train", error) from None


def _recorded(value: Any) -> Any:
  """``value`` with each Python object replaced by the string naming it, for the manifest.

  A Problem is ``problem:<name>``; a function the name a YAML file would give
  it (``momentum``, ``optax.adamw``, ``package.module:function``) where it
  has one, else ``python:module:qualname``
  (:func:`~momentum_jax.sweep._imports.recorded_name`).
  """
  if isinstance(value, problems.Problem):
    return f"problem:{value.name}"
  if callable(value):
    return known_name(value) or recorded_name(value)
  if isinstance(value, Mapping):
    return {k: _recorded(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return type(value)(_recorded(v) for v in value)
  return value


def load_config(source: str | os.PathLike | Mapping[str, Any]) -> SweepConfig:
  """Reads and validates a sweep configuration from a YAML file or a dict.

  An optimizer's ``name`` is one of :data:`OPTIMIZERS`, ``optax.<alias>``,
  ``package.module:function`` or (in a dict) a callable returning an
  ``optax.GradientTransformation``; a numeric hyperparameter a number, a
  list, ``linspace``, ``logspace``, or (with a top-level ``search:`` of
  method ``random`` or ``quasirandom``) ``uniform``/``loguniform`` range,
  whose points are drawn here (method ``optuna``: asked while the sweep
  trains, lists searched too, see :mod:`momentum_jax.sweep._optuna`); ``problem.name`` one of
  :data:`momentum_jax.problems.PROBLEMS`, ``package.module:function`` or
  (in a dict) a callable returning a Problem; a dict's ``problem`` may be a
  Problem itself. Nothing is built or compiled here: import paths are
  resolved, and each optimizer is called once and traced abstractly.

  Raises:
    ConfigError: (a ``ValueError``) naming the field, as a path in the YAML.
    FileNotFoundError: if the file does not exist.
  """
  if isinstance(source, Mapping):
    raw, default_name = dict(source), "sweep"
  else:
    with open(source, encoding="utf-8") as file:
      try:
        raw = yaml.safe_load(file)
      except yaml.YAMLError as error:
        raise ConfigError("", f"{os.fspath(source)} is not valid YAML: {error}") from None
    default_name = os.path.splitext(os.path.basename(os.fspath(source)))[0]
  raw = _as_mapping("", raw)
  _check_keys("", raw, _TOP_KEYS)
  for required in ("problem", "train"):
    if required not in raw:
      raise ConfigError(required, "required")
  problem, problem_options, problem_source = _parse_problem(raw["problem"])
  search = _parse_search(raw.get("search"))
  if ("optimizer" in raw) == ("optimizers" in raw):
    raise ConfigError("optimizer", "give exactly one of 'optimizer' (a mapping) or "
                      "'optimizers' (a list of mappings)")
  if "optimizer" in raw:
    optimizers = (_parse_optimizer("optimizer", raw["optimizer"], search),)
  else:
    listed = raw["optimizers"]
    if not isinstance(listed, list) or not listed:
      raise ConfigError("optimizers", f"expected a non-empty list, got {listed!r}")
    optimizers = tuple(_parse_optimizer(f"optimizers[{i}]", o, search)
                       for i, o in enumerate(listed))
    labels = [o.label for o in optimizers]
    for index, label in enumerate(labels):
      if label in labels[:index]:
        raise ConfigError(f"optimizers[{index}]",
                          f"repeats optimizers[{labels.index(label)}] ({label}); merge their "
                          "grids into one entry")
  check_searched(search, optimizers)
  train = _parse_train(raw["train"])
  _check_search(search, train)
  chunk_size = raw.get("chunk_size")
  if chunk_size == "auto":
    chunk_size = None
  if chunk_size is not None and (
      isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
    raise ConfigError("chunk_size", f"expected a positive integer or 'auto', got {chunk_size!r}")
  return SweepConfig(
      name=str(raw.get("name", default_name)),
      problem=problem,
      problem_options=problem_options,
      optimizers=optimizers,
      train=train,
      seeds=_parse_seeds(raw.get("seeds", 1)),
      chunk_size=chunk_size,
      raw=_recorded(raw),
      problem_source=problem_source,
      search=search,
      keep=_parse_keep(raw.get("keep")),
  )
