"""A sweep's strategies, built from its config: the only place that reads ``search:`` for the
engine.

:class:`Searches` checks the metrics the search ranks by against the problem
(before anything compiles), says how many rows each group trains together,
and builds one strategy per group through the registry
(:data:`momentum_jax.sweep.strategies.METHODS`, wrapped by
:func:`~momentum_jax.sweep.strategies.scheduled` under a scheduler).
"""

from __future__ import annotations

import math
from typing import Any


from momentum_jax import problems, results
from momentum_jax.sweep import _plan, strategies
from momentum_jax.sweep._checkpoint import JOURNAL_FILE
from momentum_jax.sweep._config import SweepConfig
from momentum_jax.sweep._errors import ConfigError
from momentum_jax.sweep._search import check_metric, loss_metric, scheduler_metric, search_record


class Searches:
  """The config's search, as strategies.

  Raises:
    ConfigError: at the metric's path for a metric the problem does not log;
      at ``search.method`` for Optuna on several processes.
  """

  def __init__(self, config: SweepConfig, problem: problems.Problem):
    self.config, search = config, config.search
    self.scheduler = search.scheduler
    self.scheduler_metric = (None if self.scheduler is None
                             else scheduler_metric(self.scheduler, problem))
    if search.method == "pbt":
      self.metric = (loss_metric(problem) if search.pbt.metric is None
                     else check_metric("search.metric", search.pbt.metric, problem))
      self.options = search.pbt
    elif search.method == "optuna":
      self.metric = (loss_metric(problem) if search.metric is None
                     else check_metric("search.metric", search.metric, problem))
      self.options = search
      import jax
      if jax.process_count() > 1:
        raise ConfigError("search.method", "optuna runs on one process; this sweep has "
                          f"{jax.process_count()}")
    elif search.strategy is not None:
      self.metric = (loss_metric(problem) if search.metric is None
                     else check_metric("search.options.metric", search.metric, problem))
      self.options = search.options
    else:
      self.metric = self.scheduler_metric or loss_metric(problem)
      self.options = search
    self.path, self.advice = {
        "pbt": ("search.population", "a smaller population, or fewer seeds or list values"),
        "optuna": ("search.batch", "ask fewer trials at once"),
    }.get(search.method, ("search.scheduler", "sample fewer, or drop the scheduler"))
    if search.strategy is not None and self.scheduler is None:
      self.path, self.advice = "search.method", "fewer seeds or list values"

  def rows_at_once(self, group: _plan.Group, chunk: int | None) -> int | None:
    """Rows of ``group`` trained together (``None``: free, the engine's chunk size)."""
    search, k = self.config.search, len(group.seeds)
    seeds = len(self.config.seeds)
    if search.method == "optuna":
      return min(k, search.batch * seeds)
    if search.method == "pbt" or self.scheduler is not None or search.strategy is not None:
      return k  # ranked together (a user's strategy sees its whole group at once)
    return chunk

  def _context(self, group: _plan.Group, index: int, first: int, metric: str, options: Any,
               out_dir) -> strategies.Context:
    spec = group.spec
    return strategies.Context(
        label=group.label, index=index, first=first, values=group.values, seeds=group.seeds,
        seeds_per_setting=len(self.config.seeds), steps=self.config.train.steps,
        log_every=self.config.train.log_every, metric=metric,
        maximize=results.higher_is_better(metric), ranges=spec.ranges, options=options,
        seed=self.config.search.seed or 0, group_spec=spec,
        storage_name=None if out_dir is None else JOURNAL_FILE)

  def strategies(self, groups: list[_plan.Group], out_dir, fresh: bool
                 ) -> list[strategies.Strategy]:
    """One strategy per group; ``fresh``: the output folder holds no earlier run of this sweep."""
    from momentum_jax.sweep import _optuna
    opened = []
    shared = {"optuna_storage": lambda: opened[0] if opened else
              opened.append(_optuna.storage(out_dir, fresh)) or opened[0]}
    found, first = [], 0
    for index, group in enumerate(groups):
      context = self._context(group, index, first, self.metric, self.options, out_dir)
      strategy = (self.config.search.strategy(context) if self.config.search.strategy
                  else strategies.METHODS[self.config.search.method](context, shared))
      if self.scheduler is not None:
        strategy = strategies.scheduled(
            self._context(group, index, first, self.scheduler_metric, self.scheduler, out_dir),
            strategy)
      found.append(strategy)
      first += len(group.seeds)
    return found

  def segment_logs(self, found: list[strategies.Strategy]) -> int:
    """Log intervals per segment: the plain sweep's, cut to divide every strategy's intervals."""
    train = self.config.train
    logs = _plan.logs_per_segment(train.num_logs)
    for strategy in found:
      for interval in strategy.intervals():
        logs = math.gcd(logs, interval // train.log_every)
    return logs

  def record(self) -> dict[str, Any]:
    """The manifest's ``search`` entry before the strategies add theirs."""
    return search_record(self.config)


__all__ = ["Searches"]
