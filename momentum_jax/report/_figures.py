"""The search's figures: parallel coordinates, and each hyperparameter's permutation importance.

Both show configurations, their seeds pooled as in
:func:`momentum_jax.results.aggregate_over_seeds` (the mean over the seeds
that did not diverge). :func:`plan` says which are worth drawing, for
:func:`momentum_jax.report.plots.plan_figures`, and why the others are not.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure

from momentum_jax import results

# Fewer configurations than this say little about which hyperparameter matters:
# a forest on them fits noise, and permuting one of few columns moves nothing.
MIN_CONFIGS_FOR_IMPORTANCE = 8
_FOREST_SEED = 0


def _configurations(summary: pd.DataFrame, value: str) -> pd.DataFrame:
  pooled = results.aggregate_over_seeds(summary)
  return pooled[np.isfinite(pooled[f"{value}_mean"].to_numpy(dtype=float))]


def _in_log_scale(values: np.ndarray) -> bool:
  finite = values[np.isfinite(values)]
  return bool(len(finite)) and finite.min() > 0 and finite.max() > 10 * finite.min()


def _metric_norm(values: np.ndarray, value: str) -> Normalize:
  positive_loss = not results.higher_is_better(value) and values.min() > 0
  return (
    LogNorm(values.min(), values.max()) if positive_loss else Normalize(values.min(), values.max())
  )


def _to_unit(values: np.ndarray) -> tuple[np.ndarray, bool]:
  """``values`` mapped onto [0, 1] (log scale when they span decades), and whether in log scale."""
  log = _in_log_scale(values)
  scaled = np.log10(values) if log else values.astype(float)
  low, high = np.nanmin(scaled), np.nanmax(scaled)
  return ((scaled - low) / (high - low) if high > low else np.full_like(scaled, 0.5)), log


def plot_parallel_coordinates(summary: pd.DataFrame, value: str | None = None) -> Figure:
  """Each configuration as a line across one axis per swept hyperparameter, coloured by ``value``.

  The last axis is ``value`` itself (the mean over seeds). An axis is in log
  scale when its values span more than a decade; its ends are labelled with
  the smallest and largest value. The line of an optimizer that lacks a
  hyperparameter passes by its axis. The best configurations are drawn last, on top.

  Raises:
    ValueError: if no hyperparameter is swept or no configuration finished.
  """
  value = results.ranking_metric(summary) if value is None else value
  names = results.swept_hyperparameters(summary, finals=False)
  rows = _configurations(summary, value)
  if not names or rows.empty:
    raise ValueError(
      "parallel coordinates need a swept hyperparameter and a configuration that did not diverge"
    )
  metric = rows[f"{value}_mean"].to_numpy(dtype=float)
  order = np.argsort(metric if results.higher_is_better(value) else -metric, kind="stable")
  columns = [*names, f"{value}_mean"]
  scaled, logs = zip(*(_to_unit(rows[c].to_numpy(dtype=float)) for c in columns))
  lines = np.stack(scaled, axis=1)[order]
  norm = _metric_norm(metric, value)
  cmap = matplotlib.colormaps["viridis" if results.higher_is_better(value) else "viridis_r"]

  fig = Figure(figsize=(max(6.4, 1.6 * len(columns) + 2), 4.8), layout="constrained")
  ax = fig.add_subplot()
  positions = np.arange(len(columns))
  for line, score in zip(lines, metric[order]):
    kept = np.isfinite(line)  # an optimizer's line passes by the axes it lacks
    ax.plot(positions[kept], line[kept], color=cmap(norm(score)), linewidth=1, alpha=0.8)
  for position, column in zip(positions, columns):
    ax.axvline(position, color="0.3", linewidth=0.8)
    values = rows[column].to_numpy(dtype=float)
    for y, shown, va in ((0, np.nanmin(values), "top"), (1, np.nanmax(values), "bottom")):
      ax.text(
        position, y + (-0.02 if y == 0 else 0.02), f"{shown:.3g}", ha="center", va=va, fontsize=8
      )
  ax.set_xticks(positions, [c + (" (log)" if log else "") for c, log in zip(columns, logs)])
  ax.set_yticks([])
  ax.set_ylim(-0.1, 1.1)
  for side in ("left", "right", "top"):
    ax.spines[side].set_visible(False)
  colours = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
  scale = " (log scale)" if isinstance(norm, LogNorm) else ""
  fig.colorbar(colours, ax=ax, label=f"{value}, mean over seeds{scale}")
  ax.set_title(f"{len(rows)} configurations, coloured by {value}")
  return fig


def _features(rows: pd.DataFrame, names: list[str]) -> tuple[np.ndarray, list[str]]:
  """The hyperparameters as a forest's features: log10 where all positive; the optimizer as a code."""
  columns, labels = [], []
  for name in names:
    values = rows[name].to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    log = bool(len(finite)) and finite.min() > 0
    columns.append(np.log10(values) if log else values)
    labels.append(f"log10 {name}" if log else name)
  if rows["optimizer"].nunique() > 1:  # which optimizer is a hyperparameter too
    columns.append(pd.factorize(rows["optimizer"])[0].astype(float))
    labels.append("optimizer")
  return np.stack(columns, axis=1), labels


def plot_importance(summary: pd.DataFrame, value: str | None = None) -> Figure:
  """Each hyperparameter's permutation importance for ``value`` in a random forest.

  A ``sklearn.ensemble.RandomForestRegressor`` is fitted on the
  configurations that finished (their mean over seeds of ``value``, in log
  scale for a positive loss) against their hyperparameters, each in log10
  when all its values are positive (a hyperparameter an optimizer lacks is
  missing for it; the optimizer is a feature too when there are several).
  ``sklearn.inspection.permutation_importance`` then measures how much the
  forest's R² drops when one column is shuffled (5 repeats, on the fitted
  configurations: it says what the forest relies on, not how it generalises).

  Raises:
    ValueError: if no hyperparameter is swept or fewer than
      :data:`MIN_CONFIGS_FOR_IMPORTANCE` configurations finished.
  """
  from sklearn.ensemble import RandomForestRegressor  # ~1 s to import: only when drawn
  from sklearn.inspection import permutation_importance

  value = results.ranking_metric(summary) if value is None else value
  names = results.swept_hyperparameters(summary, finals=False)
  rows = _configurations(summary, value)
  if not names or len(rows) < MIN_CONFIGS_FOR_IMPORTANCE:
    raise ValueError(
      f"importance needs a swept hyperparameter and at least "
      f"{MIN_CONFIGS_FOR_IMPORTANCE} configurations that did not diverge, "
      f"got {len(names)} and {len(rows)}"
    )
  features, labels = _features(rows, names)
  target = rows[f"{value}_mean"].to_numpy(dtype=float)
  logged = not results.higher_is_better(value) and target.min() > 0
  target = np.log10(target) if logged else target
  # 100 trees and 5 repeats: the ranking of a few hyperparameters is as
  # stable as with 200 and 10 (checked on the quickstart's sweep) at 0.4 s
  # instead of 1.4 s of a command that takes seconds.
  forest = RandomForestRegressor(n_estimators=100, random_state=_FOREST_SEED).fit(features, target)
  found = permutation_importance(forest, features, target, n_repeats=5, random_state=_FOREST_SEED)
  order = np.argsort(found.importances_mean)

  fig = Figure(figsize=(6.4, max(3.0, 0.5 * len(labels) + 1.8)), layout="constrained")
  ax = fig.add_subplot()
  ax.barh(
    np.arange(len(labels)),
    found.importances_mean[order],
    xerr=found.importances_std[order],
    color="tab:blue",
  )
  ax.set_yticks(np.arange(len(labels)), [labels[i] for i in order])
  ax.set_xlabel("drop in the forest's R² when the column is shuffled")
  target_name = f"log10 {value}" if logged else value
  ax.set_title(
    f"Permutation importance for {target_name}\n(random forest on {len(rows)} "
    "configurations, mean over seeds)"
  )
  return fig


DRAW = {"parallel_coordinates.png": plot_parallel_coordinates, "importance.png": plot_importance}


def _is_full_grid(rows: pd.DataFrame, names: Sequence[str]) -> bool:
  """Whether ``rows`` hold every combination of the values each of ``names`` takes."""
  combinations = rows[list(names)].drop_duplicates()
  return len(combinations) == int(np.prod([combinations[n].nunique() for n in names]))


def beyond_heatmaps(
  summary: pd.DataFrame, swept_by_optimizer: Mapping[str, Sequence[str]], heatmapped: Sequence[str]
) -> list[str]:
  """The optimizers whose sweep the heatmaps and ``best_vs_<name>.png`` figures do not show whole.

  One swept hyperparameter is a curve of ``best_vs_<name>.png``; two on a
  full grid with a heatmap (``heatmapped`` names those optimizers) are every
  cell of it. Three or more, two without a heatmap, or two sampled rather
  than gridded (a search's points) are more than those figures show: what
  parallel coordinates and importances are for.
  """
  beyond = []
  for optimizer, names in swept_by_optimizer.items():
    rows = summary[summary["optimizer"] == optimizer]
    if len(names) > 2 or (
      len(names) == 2 and (optimizer not in heatmapped or not _is_full_grid(rows, names))
    ):
      beyond.append(optimizer)
  return beyond


def plan(
  summary: pd.DataFrame,
  value: str,
  swept_by_optimizer: Mapping[str, Sequence[str]],
  heatmapped: Sequence[str],
) -> tuple[list[str], list[str]]:
  """Which of ``parallel_coordinates.png`` and ``importance.png`` to draw, and why not the others.

  Both are drawn only for a sweep that the heatmaps and ``best_vs_<name>.png``
  figures do not already show whole (:func:`beyond_heatmaps`: a search's
  sampled points, or three swept hyperparameters or more): on a full 2-D grid
  they would repeat the heatmap, and cost the command seconds (scikit-learn's
  import and its forest). Then parallel coordinates are drawn when a
  configuration finished, and importance when :func:`plot_importance` has
  enough configurations.

  Args:
    summary: The sweep's summary table.
    value: The metric shown.
    swept_by_optimizer: Optimizer -> the hyperparameters it sweeps.
    heatmapped: The optimizers that have a heatmap.

  Returns:
    The file names to draw (see :data:`DRAW`), and a reason for each left out.
  """
  beyond = beyond_heatmaps(summary, swept_by_optimizer, heatmapped)
  if not beyond:
    return [], [
      "no parallel_coordinates.png or importance.png: the heatmaps and "
      "best_vs_<hyperparameter> figures show every configuration (no optimizer "
      "sweeps three hyperparameters or more, or two off a full grid)"
    ]
  drawn, reasons = [], []
  count = len(_configurations(summary, value))
  if not count:  # an optimizer of ``beyond`` sweeps two hyperparameters or more
    reasons.append("no parallel_coordinates.png: every configuration diverged")
  else:
    drawn.append("parallel_coordinates.png")
  if count < MIN_CONFIGS_FOR_IMPORTANCE:
    reasons.append(
      "no importance.png: a random forest needs at "
      f"least {MIN_CONFIGS_FOR_IMPORTANCE} configurations that did not diverge, "
      f"got {count}"
    )
  else:
    drawn.append("importance.png")
  return drawn, reasons
