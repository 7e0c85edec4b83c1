"""Sweep results: the tables a sweep returns, how they are stored and ranked, its kept models.

The tables, their files and their ranking: :mod:`momentum_jax.results._result`
(its docstring lists the columns); ranking over seeds and what the
studies measure (steps to a target): :mod:`~momentum_jax.results._analysis`;
the manifest: :class:`Manifest`; kept models: :func:`load_model`. This layer
writes tables; the tuning report and the figures are
:func:`momentum_jax.report.save`'s.
"""

from momentum_jax.results._manifest import Manifest
from momentum_jax.results._models import KeptModel, load_model, write_models
from momentum_jax.results._analysis import (
  aggregate_over_seeds,
  rank_configurations,
  setting_columns,
  stability_edge,
  steps_to_target,
)
from momentum_jax.results._result import (
  CURVES_FILE,
  MANIFEST_FILE,
  REPORT_FILE,
  SUMMARY_FILE,
  SweepResult,
  best_configs,
  higher_is_better,
  hyperparameter_columns,
  load_results,
  ranking_metric,
  result_paths,
  swept_hyperparameters,
  tables,
  write_results,
)
from momentum_jax.results._tables import METRICS, GroupOutcome, frames, is_metric, metric_columns

__all__ = [
  "CURVES_FILE",
  "MANIFEST_FILE",
  "METRICS",
  "REPORT_FILE",
  "SUMMARY_FILE",
  "GroupOutcome",
  "KeptModel",
  "Manifest",
  "SweepResult",
  "aggregate_over_seeds",
  "best_configs",
  "frames",
  "higher_is_better",
  "hyperparameter_columns",
  "is_metric",
  "load_model",
  "load_results",
  "metric_columns",
  "rank_configurations",
  "ranking_metric",
  "result_paths",
  "setting_columns",
  "stability_edge",
  "steps_to_target",
  "swept_hyperparameters",
  "tables",
  "write_models",
  "write_results",
]
