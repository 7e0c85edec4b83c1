"""A sweep's search: how configurations are proposed, and what stops them early.

The config's top-level ``search:``: a grid (the default), random or
quasi-random points of the ranges (:mod:`momentum_jax.sweep._space`), Optuna's
samplers asked in batches (:mod:`momentum_jax.sweep.strategies._optuna_study`), and a
scheduler (successive halving, Hyperband; :mod:`momentum_jax.sweep.strategies.halving`)
that decides between segments which configurations continue; or
population-based training (:mod:`momentum_jax.sweep._pbt`), which decides
between segments which configurations copy which.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any, Mapping

import numpy as np
import pydantic

from momentum_jax import problems, results
from momentum_jax.sweep._errors import ConfigError
from momentum_jax.sweep._imports import suggest
from momentum_jax.sweep._pbt import PBTSpec, check_pbt
from momentum_jax.sweep._space import Range, sample
from momentum_jax.train import TrainableRun, TrainConfig

if TYPE_CHECKING:
  from momentum_jax.sweep._config import SweepConfig

# Optuna's samplers by the config's name, and a package each needs beyond optuna.
OPTUNA_SAMPLERS = {"tpe": None, "gp": "torch", "cmaes": "cmaes", "qmc": None}
OPTUNA_EXTRA = "pip install 'momentum_jax[optuna]'"
# Trials asked at once when the config gives no batch.
DEFAULT_BATCH = 8
SCHEDULERS = ("successive_halving", "hyperband")
Positive = Annotated[int, pydantic.Field(ge=1)]
Seed = Annotated[int, pydantic.Field(ge=0)]


@dataclasses.dataclass(frozen=True)
class SchedulerSpec:
  """What stops configurations early: ``search: {scheduler: {...}}``.

  Attributes:
    name: ``"successive_halving"`` or ``"hyperband"`` (see
      :mod:`momentum_jax.sweep.strategies.halving`).
    eta: The reduction factor: the best ``1/eta`` continue at each rung, >= 2.
    min_steps: The first rung, a positive multiple of ``train.log_every``,
      at most ``train.steps``.
    metric: The summary metric ranked at each rung (``final_loss``,
      ``best_loss``, ``val_loss``, ``val_accuracy``, ``val_<name>``), its
      direction :func:`momentum_jax.results.higher_is_better`; ``None``: the
      report's (``val_accuracy`` where the problem logs it, else
      ``final_loss``). Checked against the problem by the engine.
  """

  name: str
  eta: int
  min_steps: int
  metric: str | None = None

  def record(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class SearchSpec:
  """How a sweep's configurations are proposed: the config's top-level ``search:``.

  Attributes:
    method: ``"grid"`` (the default: the product of every hyperparameter's
      values), ``"random"`` or ``"quasirandom"`` (``samples`` points of each
      group's ranges, see :mod:`momentum_jax.sweep._space`), or ``"optuna"``
      (an Optuna study per group, asked ``batch`` trials at a time, see
      :mod:`momentum_jax.sweep.strategies._optuna_study`), or ``"pbt"`` (population-based
      training of ``population`` points drawn as ``quasirandom`` draws them,
      see :mod:`momentum_jax.sweep._pbt`).
    samples: Points drawn per optimizer group (``None`` for a grid or
      optuna; pbt's ``population``).
    seed: The seed of the draw or of Optuna's sampler (default 0; ``None``
      for a grid); the same seed draws the same points.
    scheduler: What decides between segments which configurations continue
      (successive halving, Hyperband); ``None``: all train to the end.
    sampler: Optuna's sampler, one of :data:`OPTUNA_SAMPLERS` (optuna only).
    trials: Trials per optimizer group (optuna only).
    batch: Trials asked at once and trained by one program (optuna only).
    metric: The summary metric each trial's value is, the mean over its
      seeds (optuna only; ``None``: ``val_loss`` where the problem logs it,
      else ``final_loss``). Checked against the problem by the engine.
    pbt: Population-based training's spec (pbt only; its own ``metric``).
    strategy: A user's :class:`~momentum_jax.sweep.strategies.Strategy`
      subclass, named by ``method: package.module:Class``.
    options: Its keyword options (``search.options``), read from its
      ``context.options``; ``options.metric`` picks the metric it ranks by.
  """

  method: str = "grid"
  samples: int | None = None
  seed: int | None = None
  scheduler: SchedulerSpec | None = None
  sampler: str | None = None
  trials: int | None = None
  batch: int | None = None
  metric: str | None = None
  pbt: PBTSpec | None = None
  strategy: Any = None  # a user's Strategy class (method ``package.module:Class``)
  options: Mapping[str, Any] | None = None  # its ``search.options``

  @property
  def samples_ranges(self) -> bool:
    """Whether ranges may be given: every method but a grid (or a user's strategy, which
    decides over the grid's rows) samples or searches them."""
    return self.method != "grid" and self.strategy is None


def check_search(search: SearchSpec, train: TrainConfig) -> None:
  """The search's steps (a scheduler's ``min_steps``, pbt's ``interval``) against ``train``."""
  if search.pbt is not None:
    check_pbt(search.pbt, train.steps, train.log_every)
  check_scheduler(search.scheduler, train)


def check_scheduler(scheduler: SchedulerSpec | None, train: TrainConfig) -> None:
  if scheduler is None:
    return
  path = "search.scheduler.min_steps"
  if scheduler.min_steps % train.log_every:
    raise ConfigError(
      path,
      f"must be a multiple of train.log_every ({train.log_every}): "
      f"a configuration is ranked at a logged step; got {scheduler.min_steps}",
    )
  if scheduler.min_steps > train.steps:
    raise ConfigError(
      path, f"must be at most train.steps ({train.steps}), got {scheduler.min_steps}"
    )


def scheduler_metrics(problem: problems.Problem | TrainableRun) -> tuple[str, ...]:
  """The metrics a scheduler may rank ``problem``'s configurations by."""
  if isinstance(problem, TrainableRun):
    return problem.metric_names()
  if problem.data.x_val is None:
    return ("final_loss", "best_loss")
  own = (f"val_{name}" for name in problem.metric_names()) if problem.metrics else ()
  return (
    "final_loss",
    "best_loss",
    "val_loss",
    *(("val_accuracy",) if problem.is_classification else ()),
    *own,
  )


def logged_curves(problem: problems.Problem | TrainableRun) -> tuple[str, ...]:
  """The curves ``problem`` logs at each logged step that the summary holds no column of:
  ``train_loss`` and ``grad_norm``, or a Trainable's ``train_<name>``."""
  if isinstance(problem, TrainableRun):
    logged = problem.traced().metrics
    return ("train_loss", *(f"train_{name}" for name in logged if name != "loss"))
  return ("train_loss", "grad_norm")


def loss_metric(problem: problems.Problem) -> str:
  """``val_loss`` where ``problem`` logs it, else ``final_loss``: Optuna's and PBT's default.

  A loss rather than an accuracy: it tells apart the configurations that a
  small validation split scores alike, which a sampler or an exploit needs.
  """
  return "val_loss" if "val_loss" in scheduler_metrics(problem) else "final_loss"


def scheduler_metric(scheduler: SchedulerSpec, problem: problems.Problem) -> str:
  """The metric ``scheduler`` ranks by for ``problem``: its own, checked, or the report's default.

  Raises:
    ConfigError: at ``search.scheduler.metric`` if the problem does not log it.
  """
  known = scheduler_metrics(problem)
  if scheduler.metric is None:
    return results.ranking_metric(known)
  return check_metric("search.scheduler.metric", scheduler.metric, problem)


def check_metric(path: str, metric: str, problem: problems.Problem) -> str:
  """``metric`` if ``problem`` logs it (see :func:`scheduler_metrics`).

  Raises:
    ConfigError: at ``path`` if it does not, listing those it does.
  """
  known = scheduler_metrics(problem)
  if metric not in known and metric in logged_curves(problem):
    raise ConfigError(
      path,
      f"{problem.name} logs {metric!r} as a curve (a value per logged step), which cannot "
      f"rank configurations: rank by one of {', '.join(known)} (final_loss is train_loss's "
      "last logged value, best_loss its least)",
    )
  if metric not in known:
    raise ConfigError(
      path, f"{problem.name} logs no {metric!r}{suggest(metric, known)} (one of {', '.join(known)})"
    )
  return metric


def search_points(
  ranges: Mapping[str, Range], search: SearchSpec
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
  """A group's drawn points, and the values its factory is checked with.

  ``(samples, checked)``: the points of ``ranges`` drawn by a random or
  quasi-random search, both the same; for optuna, which asks its values
  while the sweep trains, no samples and each range's two ends.
  """
  if not ranges:
    return {}, {}
  if search.method == "optuna":
    return {}, {name: r.ends() for name, r in ranges.items()}
  # pbt draws its initial population as quasirandom draws its points.
  method = "quasirandom" if search.method == "pbt" else search.method
  samples = sample(ranges, method, search.samples, search.seed)
  return samples, samples


def check_searched(search: SearchSpec, optimizers) -> None:
  """A search that samples ranges has one to sample; optuna something in each group.

  Raises:
    ConfigError: at ``search.method`` when no hyperparameter is a range, or
      (optuna) at an optimizer with neither a range nor a list to search.
  """
  if search.method == "optuna":
    for index, spec in enumerate(optimizers):
      if not spec.ranges and all(len(v) == 1 for v in spec.grid.values()):
        path = "optimizer" if len(optimizers) == 1 else f"optimizers[{index}]"
        raise ConfigError(
          path,
          f"optuna has nothing to search in {spec.label}: give a "
          "hyperparameter a range ({loguniform: [lo, hi]}, {uniform: [lo, "
          "hi]}) or a list of values",
        )
  elif search.samples_ranges and not any(o.ranges for o in optimizers):
    raise ConfigError(
      "search.method",
      f"{search.method} samples ranges, and no hyperparameter "
      "is one: give one {uniform: [lo, hi]} or {loguniform: [lo, hi]}, or drop "
      "'search' for a grid",
    )


def search_record(config: SweepConfig) -> dict[str, Any]:
  """The search for the manifest: method, samples, seed, and per group its ranges and drawn points.

  JSON-serialisable: ``{"method": ..., "samples": ..., "seed": ..., "groups":
  {label: {"ranges": {name: {kind: [lo, hi]}}, "points": {name: [N values]}}}}``
  (groups without ranges left out); with optuna also ``sampler``, ``trials``
  and ``batch`` (the engine adds each group's trials, see
  :meth:`momentum_jax.sweep.strategies._optuna_study.OptunaSearch.record`).
  """
  search = config.search
  optuna = (
    {"sampler": search.sampler, "trials": search.trials, "batch": search.batch}
    if search.method == "optuna"
    else {}
  )
  return {
    "method": search.method,
    "samples": search.samples,
    "seed": search.seed,
    **optuna,
    "scheduler": None if search.scheduler is None else search.scheduler.record(),
    **({} if search.pbt is None else {"pbt": search.pbt.record()}),
    "groups": {
      o.label: {
        "ranges": {n: r.record() for n, r in o.ranges.items()},
        "points": {n: v.tolist() for n, v in o.samples.items()},
      }
      for o in config.optimizers
      if o.ranges
    },
  }
