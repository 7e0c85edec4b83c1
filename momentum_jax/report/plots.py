"""Figures of a sweep: heatmaps, the best loss curves, the best value per hyperparameter.

Every ``plot_`` function returns a ``matplotlib.figure.Figure`` built without
pyplot, so nothing here touches pyplot's global state or needs a display: the
Agg canvas draws the figures and nothing is ever shown (:func:`draw_landscape`
draws a landscape's contours onto axes of your own, :func:`draw_paths` paths over
them). :func:`write_figures` writes the standard set for a sweep as PNG files:
:func:`plan_figures` decides once, from the result, which figures and with
what (a :class:`FigurePlan`), then each is drawn.

Seeds are pooled as in :func:`momentum_jax.results.aggregate_over_seeds`:
diverged runs are left out of the means, and the figures mark them.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from momentum_jax.report import _figure_plan as _plan
from momentum_jax import results
from momentum_jax.runtime import files as _files
from momentum_jax.report import _figures as _report_figures
from momentum_jax.report._figure_plan import FigurePlan, plan_figures  # noqa: F401  (re-exported)
from momentum_jax.report._landscape_plots import (  # noqa: F401  (re-exported)
    draw_landscape, draw_landscape_paths, draw_paths)
from momentum_jax.results import SweepResult

logger = logging.getLogger(__name__)

DPI = 120
_DIVERGED_COLOUR = "0.6"
# Beyond this many cells the numbers printed in a heatmap's cells overlap.
_MAX_ANNOTATED_CELLS = 150


def _check_column(summary: pd.DataFrame, name: str, argument: str) -> None:
  if name not in summary.columns:
    raise ValueError(f"{argument} must be a column of the summary "
                     f"({', '.join(summary.columns)}), got {name!r}")


def _check_metric(summary: pd.DataFrame, value: str) -> None:
  present = results.metric_columns(summary)
  if value not in present:
    raise ValueError(f"value must be one of the summary's metrics {present}, got {value!r}")


def _spans_decades(values: np.ndarray) -> bool:
  values = values[np.isfinite(values)]
  return bool(len(values)) and values.min() > 0 and values.max() > 10 * values.min()


def _best_per_setting(summary: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
  """Per setting of ``keys``: the best seed mean of ``value`` over the other hyperparameters.

  Returns:
    Columns ``keys``, ``value`` (NaN where every run diverged),
    ``all_diverged``, and ``some_diverged`` (the chosen setting lost a seed,
    so ``value`` is the mean of the others). Sorted by ``keys``.
  """
  pooled = results.aggregate_over_seeds(summary).rename(columns={f"{value}_mean": value})
  # Best first, then the first row of each setting is its best; NaN sorts last.
  ranked = pooled.sort_values(value, ascending=not results.higher_is_better(value),
                              na_position="last", kind="stable")
  best = ranked.drop_duplicates(keys).sort_values(keys).reset_index(drop=True)
  best["all_diverged"] = best[value].isna() & (best["diverged"] == best["seeds"])
  best["some_diverged"] = best[value].notna() & (best["diverged"] > 0)
  return best[[*keys, value, "all_diverged", "some_diverged"]]


def _one_optimizer(summary: pd.DataFrame, optimizer: str | None) -> str:
  names = sorted(summary["optimizer"].unique())
  if optimizer is None and len(names) == 1:
    return names[0]
  if optimizer not in names:
    raise ValueError(f"optimizer must be one of {names}"
                     + (" when the summary holds several" if optimizer is None else "")
                     + f", got {optimizer!r}")
  return optimizer


def _log_scaled(values: np.ndarray, value: str) -> bool:
  # Losses spread over decades; on a linear scale all but the worst look alike.
  finite = values[np.isfinite(values)]
  return not results.higher_is_better(value) and bool(len(finite)) and finite.min() > 0


def _tick_labels(values: np.ndarray) -> list[str]:
  return [f"{v:.3g}" for v in values]


def plot_heatmap(summary: pd.DataFrame, x: str = "learning_rate", y: str = "beta",
                 value: str = "final_loss", optimizer: str | None = None) -> Figure:
  """A heatmap of ``value`` over two hyperparameters of one optimizer.

  Each cell is the mean over seeds; if other hyperparameters of the optimizer
  take several values, each cell shows the best of them (named in the title).
  Both axes are categorical, one equal cell per value in ascending order,
  labelled ``%.3g``: a log-spaced grid then reads as a log axis, and
  β ∈ {0.9, 0.99} gets cells as wide as β = 0. Losses are coloured on a log
  scale. Cells where every run diverged are grey and cross-hatched; cells where
  some seeds diverged are hatched and show the mean of the others; cells with
  no run are blank. The legend below the axes explains the marks.

  Args:
    summary: The sweep's summary table.
    x: Hyperparameter along the x axis.
    y: Hyperparameter along the y axis.
    value: Metric to show: ``final_loss``, ``best_loss``, ``val_loss`` or
      ``val_accuracy`` (those present).
    optimizer: Optimizer to show; may be left out when there is only one.

  Returns:
    The figure, with one heatmap axes and its colourbar.

  Raises:
    ValueError: If a column is missing, the optimizer is unknown (or not named
      while there are several), or it has no run with both ``x`` and ``y``.
  """
  _check_column(summary, x, "x")
  _check_column(summary, y, "y")
  _check_metric(summary, value)
  optimizer = _one_optimizer(summary, optimizer)
  rows = summary[(summary["optimizer"] == optimizer) & summary[x].notna() & summary[y].notna()]
  if rows.empty:
    raise ValueError(f"{optimizer} has no run with both {x} and {y}; "
                     f"pick hyperparameters it has")
  xs, ys = np.sort(rows[x].unique()), np.sort(rows[y].unique())
  cells = _best_per_setting(rows, [x, y], value)
  column, row = np.searchsorted(xs, cells[x]), np.searchsorted(ys, cells[y])
  grid = np.full((len(ys), len(xs)), np.nan)
  grid[row, column] = cells[value]
  all_diverged, some_diverged = np.zeros((2, *grid.shape), dtype=bool)
  all_diverged[row, column] = cells["all_diverged"]
  some_diverged[row, column] = cells["some_diverged"]
  others = [name for name in results.swept_hyperparameters(rows, finals=False)
            if name not in (x, y)]

  fig = Figure(figsize=(max(6.4, 0.8 * len(xs) + 3), max(4.8, 0.5 * len(ys) + 3)),
               layout="constrained")
  ax = fig.add_subplot()
  norm = LogNorm() if _log_scaled(grid, value) else Normalize()
  cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
  image = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap=cmap,
                    norm=norm)
  scale = " (log scale)" if isinstance(norm, LogNorm) else ""
  fig.colorbar(image, ax=ax, label=f"{value}, mean over seeds{scale}")
  ax.set_xticks(range(len(xs)), _tick_labels(xs))
  ax.set_yticks(range(len(ys)), _tick_labels(ys))
  ax.set_xlabel(x)
  ax.set_ylabel(y)
  title = f"{optimizer}: {value}, mean over seeds"
  ax.set_title(title + (f"\n(best over {', '.join(others)})" if others else ""))

  if grid.size <= _MAX_ANNOTATED_CELLS:
    for (j, i), cell in np.ndenumerate(grid):
      if np.isfinite(cell):
        red, green, blue, _ = cmap(norm(cell))
        dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
        # A hatched cell's number needs a backdrop to stay legible.
        backdrop = dict(facecolor="white", linewidth=0) if some_diverged[j, i] else None
        ax.text(i, j, f"{cell:.3g}", ha="center", va="center", fontsize=8,
                color="white" if dark and backdrop is None else "black", bbox=backdrop)

  handles = []
  for marked, patch in (
      (all_diverged, dict(facecolor=_DIVERGED_COLOUR, edgecolor="white", hatch="xx",
                          label="diverged (every seed)")),
      (some_diverged, dict(facecolor="none", edgecolor="black", hatch="//",
                           label="some seeds diverged (mean of the others)"))):
    for j, i in np.argwhere(marked):
      ax.add_patch(Rectangle((i - 0.5, j - 0.5), 1, 1, linewidth=0, **patch))
    if marked.any():
      handles.append(Patch(**patch))
  if (np.isnan(grid) & ~all_diverged).any():
    handles.append(Patch(facecolor="white", edgecolor="0.7", label="not run"))
  if handles:
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
  return fig


def plot_best_curves(curves: pd.DataFrame, summary: pd.DataFrame, n: int = 5) -> Figure:
  """Training-loss curves of the ``n`` best runs (see ``best_configs``).

  Log scale, unless a loss shown is zero or negative (a landscape's may be).

  Args:
    curves: The sweep's curves table.
    summary: The sweep's summary table.
    n: How many runs to show, > 0.

  Returns:
    The figure: one axes, one line per run, labelled with the optimizer and the
    hyperparameters swept for it (and the seed when there are several).

  Raises:
    ValueError: If every run diverged.
  """
  best = results.best_configs(summary, n=n)
  if best.empty:
    raise ValueError("every run diverged: there are no curves worth plotting")
  return _draw_best_curves(curves, best, _plan.legend_labels(best, summary),
                           _plan.best_title(best, results.ranking_metric(summary)))


def _draw_best_curves(curves: pd.DataFrame, best: pd.DataFrame, labels: dict[int, str],
                      title: str) -> Figure:
  fig = Figure(figsize=(7.5, 4.8), layout="constrained")
  ax = fig.add_subplot()
  shown = curves[curves["config_id"].isin(best["config_id"])]
  for config_id in best["config_id"]:
    curve = shown[shown["config_id"] == config_id].sort_values("step")
    ax.plot(curve["step"], curve["train_loss"], label=labels[config_id])
  if _log_scaled(shown["train_loss"].to_numpy(dtype=float), "train_loss"):
    ax.set_yscale("log")  # (a landscape's values may be negative: then linear)
  ax.set_xlabel("step")
  ax.set_ylabel("train loss")
  ax.set_title(title[0].upper() + title[1:])
  ax.legend(fontsize=8)
  return fig


def plot_best_vs_hyperparameter(summary: pd.DataFrame, hyperparameter: str,
                                value: str = "final_loss") -> Figure:
  """Per optimizer, the best ``value`` reached at each value of one hyperparameter.

  At each value of ``hyperparameter`` the runs are pooled over seeds and the
  best setting of the other hyperparameters is taken: the curve shows how
  sensitive the optimizer is to this one. The x axis is logarithmic when the
  values span more than a decade, the y axis when ``value`` is a positive loss.
  Values at which every run diverged are marked ``x`` on the top edge.

  Args:
    summary: The sweep's summary table.
    hyperparameter: The hyperparameter along the x axis.
    value: Metric to show: ``final_loss``, ``best_loss``, ``val_loss`` or
      ``val_accuracy`` (those present).

  Returns:
    The figure: one axes, one line per optimizer that has the hyperparameter.

  Raises:
    ValueError: If a column is missing or no optimizer has the hyperparameter.
  """
  _check_column(summary, hyperparameter, "hyperparameter")
  _check_metric(summary, value)
  rows = summary[summary[hyperparameter].notna()]
  if rows.empty:
    raise ValueError(f"no optimizer in the summary has {hyperparameter}")
  fig = Figure(figsize=(7, 4.8), layout="constrained")
  ax = fig.add_subplot()
  any_diverged = False
  for optimizer, own in rows.groupby("optimizer", sort=True):
    best = _best_per_setting(own, [hyperparameter], value)
    (line,) = ax.plot(best[hyperparameter], best[value], marker="o", label=optimizer)
    lost = best[best["all_diverged"]]
    # Blended transform: data x, axes y, so the marks sit on the top edge at any scale.
    ax.plot(lost[hyperparameter], np.ones(len(lost)), linestyle="none", marker="x",
            color=line.get_color(), transform=ax.get_xaxis_transform(), clip_on=False)
    any_diverged |= bool(len(lost))
  if _spans_decades(rows[hyperparameter].to_numpy(dtype=float)):
    ax.set_xscale("log")
  if _log_scaled(rows[value].to_numpy(dtype=float), value):
    ax.set_yscale("log")
  ax.set_xlabel(hyperparameter)
  ax.set_ylabel(f"best {value}, mean over seeds")
  ax.set_title(f"Best {value} at each {hyperparameter}\n"
               "(mean over seeds, best over the other hyperparameters)")
  handles, _ = ax.get_legend_handles_labels()
  if any_diverged:
    handles.append(Line2D([], [], linestyle="none", marker="x", color="0.3",
                          label="every run diverged"))
  ax.legend(handles=handles, fontsize=8)
  return fig


def plot_landscape_paths(curves: pd.DataFrame, summary: pd.DataFrame, landscape,
                         n: int = 5) -> Figure:
  """The paths of the ``n`` best runs of a landscape sweep, on the landscape's contours.

  A path runs from the start (``start_x``, ``start_y`` in the summary; a
  circle) through the point as logged (``val_x`` and ``val_y`` in the curves, every
  ``log_every`` steps: log every step for the whole path) to its end (a
  dot). Global minima are gold stars, local minima red circles.

  Args:
    curves: The sweep's curves table, with ``val_x`` and ``val_y``.
    summary: The sweep's summary table.
    landscape: The :class:`momentum_jax.data.Landscape` swept.
    n: How many runs to show, > 0.

  Raises:
    ValueError: If the curves have no ``val_x``/``val_y`` or every run diverged.
  """
  for column in ("val_x", "val_y"):
    _check_column(curves, column, "curves")
  best = results.best_configs(summary, n=n)
  if best.empty:
    raise ValueError("every run diverged: there are no paths worth plotting")
  title = _plan.best_title(best, results.ranking_metric(summary))
  return draw_landscape_paths(curves, best, _plan.legend_labels(best, summary), landscape,
                               f"{landscape.name}: {title}")


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
  """Writes ``fig`` as a PNG (dpi 120) to ``path``, atomically."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=DPI)
  return _files.atomic_write_bytes(path, buffer.getvalue())


def draw(plan: FigurePlan, name: str, result: SweepResult) -> Figure:
  """The figure ``name`` (one of ``plan.files``) of ``result``, as ``plan`` says.

  Raises:
    ValueError: if ``name`` is none of ``plan.files``.
  """
  if name not in plan.files:
    raise ValueError(f"{name} is none of the plan's figures {plan.files}")
  summary = result.summary
  if name in plan.heatmaps:
    optimizer, x, y = plan.heatmaps[name]
    return plot_heatmap(summary[summary["optimizer"] == optimizer], x, y, plan.value, optimizer)
  if name == "best_curves.png":
    return _draw_best_curves(result.curves, plan.best, plan.labels, plan.titles[name])
  if name == "paths.png":
    return draw_landscape_paths(result.curves, plan.best, plan.labels, plan.landscape,
                                 plan.titles[name])
  for hyperparameter in plan.hyperparameters:
    if name == f"best_vs_{_plan.file_stem(hyperparameter)}.png":
      return plot_best_vs_hyperparameter(summary, hyperparameter, plan.value)
  return _report_figures.DRAW[name](summary, plan.value)


def write_figures(result_or_dir: SweepResult | str | os.PathLike,
                  out_dir: str | os.PathLike | None = None) -> list[Path]:
  """Writes a sweep's standard figures as PNG files (dpi 120, each atomically).

  The figures are those of :func:`plan_figures`; each skipped one is logged
  with the reason. In file names, runs of characters other than letters,
  digits, ``.``, ``_`` and ``-`` become ``_`` (``momentum(ema=false)`` →
  ``momentum_ema_false``).

  Args:
    result_or_dir: A :class:`SweepResult`, or a folder written by
      ``write_results``.
    out_dir: Folder for the figures, created if missing; defaults to the
      result folder (required when passing a ``SweepResult``).

  Returns:
    The written paths.
  """
  if isinstance(result_or_dir, SweepResult):
    if out_dir is None:
      raise ValueError("out_dir is required when result_or_dir is a SweepResult "
                       "(only a result folder doubles as the figure folder)")
    result = result_or_dir
  else:
    result = results.load_results(result_or_dir)
    out_dir = result_or_dir if out_dir is None else out_dir
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  plan = plan_figures(result)
  for reason in plan.skipped:
    logger.info("%s", reason)
  return [save_figure(draw(plan, name, result), out_dir / name) for name in plan.files]
