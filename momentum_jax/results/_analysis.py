"""A result pooled over seeds and measured: configurations ranked by their means over
seeds, steps to a target, the edge of stability.

Plain pandas over a :class:`~momentum_jax.results.SweepResult`'s ``summary``
and ``curves`` (see :mod:`momentum_jax.results._result` for the columns and
the ranking these build on); the report and the experiments read them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from momentum_jax.results._result import higher_is_better, hyperparameter_columns, ranking_metric
from momentum_jax.results._tables import metric_columns


def setting_columns(summary: pd.DataFrame) -> list[str]:
  """The columns whose values make one configuration (:func:`aggregate_over_seeds` pools its seeds)."""
  return [
    "optimizer",
    *(["trial"] if "trial" in summary.columns else []),
    *hyperparameter_columns(summary),
    *(["stopped_at_step"] if "stopped_at_step" in summary.columns else []),
  ]


def aggregate_over_seeds(summary: pd.DataFrame) -> pd.DataFrame:
  """One row per optimizer and hyperparameter setting, its seeds pooled.

  Diverged runs are counted but left out of the means and standard
  deviations: their losses are NaN or infinite by definition, so including
  them would say nothing the ``diverged`` count does not, and would hide the
  healthy seeds' values.

  Args:
    summary: The sweep's summary table.

  Returns:
    Columns ``optimizer``, the hyperparameters, ``seeds`` (runs in the group),
    ``diverged`` (how many of them diverged), then ``<metric>_mean`` and
    ``<metric>_std`` (sample standard deviation, NaN for one seed) for each of
    ``final_loss``, ``best_loss``, ``val_loss``, ``val_accuracy`` present;
    with a scheduler, ``stopped_at_step`` after the hyperparameters (the seeds
    of a setting stop together); with Optuna's search, ``trial`` after
    ``optimizer`` (two trials of the same values stay apart). A group whose
    runs all diverged has NaN statistics. Sorted by the keys; NaN hyperparameters (an optimizer without
    that hyperparameter) form groups too.
  """
  keys = setting_columns(summary)
  metrics = metric_columns(summary)
  diverged = summary["diverged"].astype(bool)
  values = summary[metrics].astype("float64")
  values.loc[diverged.to_numpy(), :] = np.nan
  grouped = pd.concat([summary[keys], values, diverged], axis=1).groupby(
    keys, dropna=False, sort=True
  )
  counts = grouped.agg(seeds=("diverged", "size"), diverged=("diverged", "sum"))
  stats = grouped[metrics].agg(["mean", "std"])
  stats.columns = [f"{metric}_{statistic}" for metric, statistic in stats.columns]
  return pd.concat([counts, stats], axis=1).reset_index()


def steps_to_target(
  curves: pd.DataFrame, metric: str, target: float, by: str = "config_id"
) -> pd.Series:
  """Per run, the first logged step at which ``metric`` reaches ``target``.

  Reaching means at least the target for a metric where higher is better
  (:func:`higher_is_better`: accuracies), at most it otherwise (losses).

  Args:
    curves: A curves table: ``step``, ``metric`` and the column ``by``.
    metric: The column to watch, e.g. ``train_loss`` or ``val_accuracy``.
    target: The value to reach.
    by: The column naming a run.

  Returns:
    The step, indexed by ``by``; a run that never reaches the target is
    missing (map the index to get NaN for it).
  """
  values = curves[metric]
  hit = curves[values >= target] if higher_is_better(metric) else curves[values <= target]
  return hit.groupby(by).step.min()


def stability_edge(
  summary: pd.DataFrame, by: list[str], value: str, hyperparameter: str = "learning_rate"
) -> pd.DataFrame:
  """Per setting of ``by``: the largest ``hyperparameter`` no seed diverged at, and the best.

  Seeds are pooled per value of ``hyperparameter``: a value is stable if none
  of its runs diverged, and its ``value`` is the mean over its seeds.

  Args:
    summary: A summary table with ``diverged``, the columns ``by``,
      ``hyperparameter`` and ``value``.
    by: The columns of a setting, e.g. ``["optimizer", "beta"]``.
    value: The column ranking the stable values (see :func:`higher_is_better`),
      e.g. a number of steps to a target.
    hyperparameter: The column whose stable range is measured.

  Returns:
    One row per setting, sorted: the ``by`` columns, ``largest_stable``,
    ``best`` (the stable value of ``hyperparameter`` with the best mean
    ``value``) and ``at_best`` (that mean); NaN where none qualifies.
  """
  rows = []
  for key, group in summary.groupby(by):
    per_value = group.groupby(hyperparameter).agg(
      diverged=("diverged", "any"), value=(value, "mean")
    )
    stable = per_value[~per_value.diverged].value
    higher = higher_is_better(value)
    best = (stable.idxmax() if higher else stable.idxmin()) if stable.notna().any() else np.nan
    rows.append(
      {
        **dict(zip(by, key)),
        "largest_stable": stable.index.max() if len(stable) else np.nan,
        "best": best,
        "at_best": stable.max() if higher else stable.min(),
      }
    )
  return pd.DataFrame(rows)


def rank_configurations(
  summary: pd.DataFrame, n: int | None = None, by: str | None = None
) -> pd.DataFrame:
  """Configurations ranked by the mean of ``by`` over their seeds, best first: the report's ranking.

  Args:
    summary: The sweep's summary table.
    n: How many to return (``None``: all ranked).
    by: The metric (default :func:`ranking_metric`);
      accuracies rank descending, anything else ascending.

  Returns:
    The rows of :func:`aggregate_over_seeds` with a
    run that finished, plus ``count`` (the seeds the means are over). Those
    with no diverged seed come first, then (with a scheduler) those that
    trained longest, whose metrics are the later steps'; ties keep the
    aggregate's order.

  Raises:
    ValueError: if ``n`` is not positive or ``by`` is not a metric of the summary.
  """
  if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
    raise ValueError(f"n must be a positive integer, got {n!r}")
  by = ranking_metric(summary) if by is None else by
  metrics = metric_columns(summary)
  if by not in metrics:
    raise ValueError(f"by must be one of the summary's metrics {metrics}, got {by!r}")
  pooled = aggregate_over_seeds(summary)
  pooled["count"] = pooled["seeds"] - pooled["diverged"]
  pooled = pooled[pooled["count"] > 0].assign(_lost=lambda f: f["diverged"] > 0)
  stopped = ["stopped_at_step"] if "stopped_at_step" in pooled.columns else []
  ranked = pooled.sort_values(
    ["_lost", *stopped, f"{by}_mean"],
    ascending=[True, *[False] * len(stopped), not higher_is_better(by)],
    na_position="last",
    kind="stable",
  ).drop(columns="_lost")
  ranked = ranked.reset_index(drop=True)
  return ranked if n is None else ranked.head(n)
