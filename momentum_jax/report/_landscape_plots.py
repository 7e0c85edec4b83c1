"""Landscape figures: a 2-D landscape's contours and minima, and paths drawn over them.

Kept apart from :mod:`momentum_jax.report.plots`, which re-exports
:func:`draw_landscape` and :func:`draw_paths` (the experiments draw with
them) and draws a landscape sweep's ``paths.png`` with
:func:`draw_landscape_paths`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def draw_landscape(ax, landscape) -> None:
  """Draws ``landscape`` on ``ax``: its contours over its window, its minima, axes ``x``, ``y``.

  Global minima are gold stars, local minima red circles (both labelled for a
  legend, drawn above what is plotted later); the limits are the window's.

  Args:
    ax: A ``matplotlib`` axes.
    landscape: A :class:`momentum_jax.data.Landscape`.
  """
  (x0, x1), (y0, y1) = landscape.window
  xs, ys = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 200))
  values = np.asarray(landscape.value(np.stack([xs, ys], axis=-1)))
  ax.contour(xs, ys, values, levels=30, cmap="Greys", linewidths=0.6)
  ax.scatter(
    *landscape.global_minima.T,
    marker="*",
    s=150,
    color="gold",
    edgecolor="black",
    zorder=5,
    label="global minimum",
  )
  if len(landscape.local_minima):
    ax.scatter(
      *landscape.local_minima.T,
      marker="o",
      s=60,
      facecolor="none",
      edgecolor="red",
      zorder=5,
      label="local minimum",
    )
  ax.set_xlim(x0, x1)
  ax.set_ylim(y0, y1)
  ax.set_xlabel("x")
  ax.set_ylabel("y")


def draw_paths(ax, landscape, paths) -> None:
  """Draws ``landscape`` (:func:`draw_landscape`) with each path over it, and a legend.

  Each path is a line through its points with a small dot at every one, so
  the step lengths show (a zig-zag, a stall).

  Args:
    ax: A ``matplotlib`` axes.
    landscape: A :class:`momentum_jax.data.Landscape`.
    paths: Label -> points of shape ``(steps + 1, 2)``, e.g. from
      :func:`momentum_jax.data.run_on_landscape`.
  """
  draw_landscape(ax, landscape)
  for label, path in paths.items():
    path = np.asarray(path)
    ax.plot(path[:, 0], path[:, 1], marker=".", markersize=2, linewidth=1, label=label)
  ax.legend(fontsize=7, loc="best")


def draw_landscape_paths(
  curves: pd.DataFrame, best: pd.DataFrame, labels: dict[int, str], landscape, title: str
) -> Figure:
  """The paths of the ``best`` rows' runs (labelled by config id) over ``landscape``."""
  fig = Figure(figsize=(7, 5.6), layout="constrained")
  ax = fig.add_subplot()
  draw_landscape(ax, landscape)
  for _, row in best.iterrows():
    path = curves[curves["config_id"] == row["config_id"]].sort_values("step")
    xs = np.concatenate([[row.get("start_x", np.nan)], path["val_x"]])
    ys = np.concatenate([[row.get("start_y", np.nan)], path["val_y"]])
    (line,) = ax.plot(xs, ys, linewidth=1, label=labels[row["config_id"]])
    ax.plot(xs[0], ys[0], marker="o", markerfacecolor="none", color=line.get_color())
    ax.plot(xs[-1], ys[-1], marker=".", color=line.get_color())
  ax.set_title(title)
  ax.legend(fontsize=7, loc="best")
  return fig
