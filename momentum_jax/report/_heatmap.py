"""The heatmap of a metric over two hyperparameters of one optimizer."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from momentum_jax import results
from momentum_jax.report._plot_checks import (
  DIVERGED_COLOUR,
  best_per_setting,
  check_column,
  check_metric,
  log_scaled,
  one_optimizer,
  tick_labels,
)

# Cells beyond which the numbers are left out (they would not fit).
_MAX_ANNOTATED_CELLS = 150


def plot_heatmap(
  summary: pd.DataFrame,
  x: str = "learning_rate",
  y: str = "beta",
  value: str = "final_loss",
  optimizer: str | None = None,
) -> Figure:
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
  check_column(summary, x, "x")
  check_column(summary, y, "y")
  check_metric(summary, value)
  optimizer = one_optimizer(summary, optimizer)
  rows = summary[(summary["optimizer"] == optimizer) & summary[x].notna() & summary[y].notna()]
  if rows.empty:
    raise ValueError(f"{optimizer} has no run with both {x} and {y}; pick hyperparameters it has")
  xs, ys, grid, all_diverged, some_diverged = _cells(rows, x, y, value)
  others = [
    name for name in results.swept_hyperparameters(rows, finals=False) if name not in (x, y)
  ]

  fig = Figure(
    figsize=(max(6.4, 0.8 * len(xs) + 3), max(4.8, 0.5 * len(ys) + 3)), layout="constrained"
  )
  ax = fig.add_subplot()
  norm = LogNorm() if log_scaled(grid, value) else Normalize()
  cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
  image = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap=cmap, norm=norm)
  scale = " (log scale)" if isinstance(norm, LogNorm) else ""
  fig.colorbar(image, ax=ax, label=f"{value}, mean over seeds{scale}")
  ax.set_xticks(range(len(xs)), tick_labels(xs))
  ax.set_yticks(range(len(ys)), tick_labels(ys))
  ax.set_xlabel(x)
  ax.set_ylabel(y)
  title = f"{optimizer}: {value}, mean over seeds"
  ax.set_title(title + (f"\n(best over {', '.join(others)})" if others else ""))

  _annotate(ax, grid, cmap, norm, some_diverged)
  _mark_diverged(fig, ax, grid, all_diverged, some_diverged)
  return fig


def _cells(rows: pd.DataFrame, x: str, y: str, value: str):
  """``(xs, ys, grid, all_diverged, some_diverged)``: each cell's best mean over seeds."""
  xs, ys = np.sort(rows[x].unique()), np.sort(rows[y].unique())
  cells = best_per_setting(rows, [x, y], value)
  column, row = np.searchsorted(xs, cells[x]), np.searchsorted(ys, cells[y])
  grid = np.full((len(ys), len(xs)), np.nan)
  grid[row, column] = cells[value]
  all_diverged, some_diverged = np.zeros((2, *grid.shape), dtype=bool)
  all_diverged[row, column] = cells["all_diverged"]
  some_diverged[row, column] = cells["some_diverged"]
  return xs, ys, grid, all_diverged, some_diverged


def _annotate(ax, grid: np.ndarray, cmap, norm, some_diverged: np.ndarray) -> None:
  """Each cell's number, in a colour it reads against (small grids only)."""
  if grid.size <= _MAX_ANNOTATED_CELLS:
    for (j, i), cell in np.ndenumerate(grid):
      if np.isfinite(cell):
        red, green, blue, _ = cmap(norm(cell))
        dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
        # A hatched cell's number needs a backdrop to stay legible.
        backdrop = dict(facecolor="white", linewidth=0) if some_diverged[j, i] else None
        ax.text(
          i,
          j,
          f"{cell:.3g}",
          ha="center",
          va="center",
          fontsize=8,
          color="white" if dark and backdrop is None else "black",
          bbox=backdrop,
        )


def _mark_diverged(
  fig: Figure, ax, grid: np.ndarray, all_diverged: np.ndarray, some_diverged: np.ndarray
) -> None:
  """Hatches the cells where runs diverged, and says what the marks mean below the axes."""
  handles = []
  for marked, patch in (
    (
      all_diverged,
      dict(facecolor=DIVERGED_COLOUR, edgecolor="white", hatch="xx", label="diverged (every seed)"),
    ),
    (
      some_diverged,
      dict(
        facecolor="none",
        edgecolor="black",
        hatch="//",
        label="some seeds diverged (mean of the others)",
      ),
    ),
  ):
    for j, i in np.argwhere(marked):
      ax.add_patch(Rectangle((i - 0.5, j - 0.5), 1, 1, linewidth=0, **patch))
    if marked.any():
      handles.append(Patch(**patch))
  if (np.isnan(grid) & ~all_diverged).any():
    handles.append(Patch(facecolor="white", edgecolor="0.7", label="not run"))
  if handles:
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
