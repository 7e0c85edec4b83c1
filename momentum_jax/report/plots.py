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

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from momentum_jax.report import _figure_plan as _plan
from momentum_jax import results
from momentum_jax.runtime import files as _files
from momentum_jax.report import _figures as _report_figures
from momentum_jax.report._figure_plan import FigurePlan, plan_figures  # noqa: F401  (re-exported)
from momentum_jax.report._landscape_plots import (  # noqa: F401  (re-exported)
  draw_landscape,
  draw_landscape_paths,
  draw_paths,
)
from momentum_jax.results import SweepResult
from momentum_jax.report._heatmap import plot_heatmap  # noqa: F401  (part of this module)
from momentum_jax.report._plot_checks import (
  best_per_setting as _best_per_setting,
  check_column as _check_column,
  check_metric as _check_metric,
  log_scaled as _log_scaled,
  spans_decades as _spans_decades,
)

logger = logging.getLogger(__name__)

DPI = 120


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
  return _draw_best_curves(
    curves,
    best,
    _plan.legend_labels(best, summary),
    _plan.best_title(best, results.ranking_metric(summary)),
  )


def _draw_best_curves(
  curves: pd.DataFrame, best: pd.DataFrame, labels: dict[int, str], title: str
) -> Figure:
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


def plot_best_vs_hyperparameter(
  summary: pd.DataFrame, hyperparameter: str, value: str = "final_loss"
) -> Figure:
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
    ax.plot(
      lost[hyperparameter],
      np.ones(len(lost)),
      linestyle="none",
      marker="x",
      color=line.get_color(),
      transform=ax.get_xaxis_transform(),
      clip_on=False,
    )
    any_diverged |= bool(len(lost))
  if _spans_decades(rows[hyperparameter].to_numpy(dtype=float)):
    ax.set_xscale("log")
  if _log_scaled(rows[value].to_numpy(dtype=float), value):
    ax.set_yscale("log")
  ax.set_xlabel(hyperparameter)
  ax.set_ylabel(f"best {value}, mean over seeds")
  ax.set_title(
    f"Best {value} at each {hyperparameter}\n(mean over seeds, best over the other hyperparameters)"
  )
  handles, _ = ax.get_legend_handles_labels()
  if any_diverged:
    handles.append(
      Line2D([], [], linestyle="none", marker="x", color="0.3", label="every run diverged")
    )
  ax.legend(handles=handles, fontsize=8)
  return fig


def plot_landscape_paths(
  curves: pd.DataFrame, summary: pd.DataFrame, landscape, n: int = 5
) -> Figure:
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
  return draw_landscape_paths(
    curves, best, _plan.legend_labels(best, summary), landscape, f"{landscape.name}: {title}"
  )


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
    return draw_landscape_paths(
      result.curves, plan.best, plan.labels, plan.landscape, plan.titles[name]
    )
  for hyperparameter in plan.hyperparameters:
    if name == f"best_vs_{_plan.file_stem(hyperparameter)}.png":
      return plot_best_vs_hyperparameter(summary, hyperparameter, plan.value)
  return _report_figures.DRAW[name](summary, plan.value)


def write_figures(
  result_or_dir: SweepResult | str | os.PathLike, out_dir: str | os.PathLike | None = None
) -> list[Path]:
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
      raise ValueError(
        "out_dir is required when result_or_dir is a SweepResult "
        "(only a result folder doubles as the figure folder)"
      )
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
