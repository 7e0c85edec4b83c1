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
from momentum_jax.sweep._config import SweepConfig
from momentum_jax.sweep._errors import ConfigError
from momentum_jax.sweep._search import check_metric, loss_metric, scheduler_metric, search_record


class Searches:
  """The config's search, as strategies.

  Raises:
    ConfigError: at the metric's path for a metric the problem does not log;
      at ``search.method`` for a method that runs on one process, on several.
  """

  def __init__(self, config: SweepConfig, problem: problems.Problem):
    self.config, search = config, config.search
    self.method = strategies.method(search)
    self.scheduler = search.scheduler
    self.scheduler_metric = (
      None if self.scheduler is None else scheduler_metric(self.scheduler, problem)
    )
    own = self.method.metric(search)
    self.metric = (
      check_metric(self.method.metric_path, own, problem)
      if own is not None
      else self.scheduler_metric or loss_metric(problem)
    )
    self.options = self.method.options(search)
    self.path, self.advice = self.method.held
    self.reseeds = self.method.reseeds and self.scheduler is None
    if self.method.one_process:
      import jax

      if jax.process_count() > 1:
        raise ConfigError(
          "search.method",
          f"{search.method} runs on one process; this sweep has {jax.process_count()}",
        )

  def rows_at_once(self, group: _plan.Group, chunk: int | None) -> int | None:
    """Rows of ``group`` trained together (``None``: free, the engine's chunk size)."""
    rows, seeds = len(group.seeds), len(self.config.seeds)
    together = self.method.together(self.config.search, rows, seeds)
    if together is None and self.scheduler is not None:
      return rows  # a scheduler ranks a grid's whole group together
    return chunk if together is None else together

  def _context(
    self, group: _plan.Group, index: int, first: int, metric: str, options: Any, out_dir
  ) -> strategies.Context:
    spec = group.spec
    return strategies.Context(
      label=group.label,
      index=index,
      first=first,
      values=group.values,
      seeds=group.seeds,
      seeds_per_setting=len(self.config.seeds),
      steps=self.config.train.steps,
      log_every=self.config.train.log_every,
      metric=metric,
      maximize=results.higher_is_better(metric),
      ranges=spec.ranges,
      options=options,
      seed=self.config.search.seed or 0,
      group_spec=spec,
      out_dir=out_dir,
    )

  def strategies(
    self, groups: list[_plan.Group], out_dir, fresh: bool
  ) -> list[strategies.Strategy]:
    """One strategy per group; ``fresh``: the output folder holds no earlier run of this sweep."""
    shared = {"fresh": fresh}
    found, first = [], 0
    for index, group in enumerate(groups):
      context = self._context(group, index, first, self.metric, self.options, out_dir)
      strategy = self.method.build(context, shared)
      if self.scheduler is not None:
        strategy = strategies.scheduled(
          self._context(group, index, first, self.scheduler_metric, self.scheduler, out_dir),
          strategy,
        )
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
