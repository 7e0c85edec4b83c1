"""What a validated sweep configuration is: :class:`SweepConfig` and the specs it holds.

:func:`momentum_jax.sweep.load_config` (:mod:`momentum_jax.sweep._config`)
builds them from YAML or a dict, checking everything before anything
compiles; the engine reads them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import numpy as np

from momentum_jax import problems
from momentum_jax.sweep._imports import python_name
from momentum_jax.sweep._optimizers import resolve_optimizer
from momentum_jax.sweep._search import SearchSpec
from momentum_jax.sweep._space import Range
from momentum_jax.train import TrainConfig


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


def trainable_hyperparameters(**hyperparameters: Any) -> dict[str, Any]:
  """The factory of a Trainable's group: no optimizer, its hyperparameters go to the Trainable."""
  return hyperparameters


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


def _shown(value: Any) -> str:
  if isinstance(value, bool):
    return str(value).lower()
  return python_name(value) if callable(value) else str(value)


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
