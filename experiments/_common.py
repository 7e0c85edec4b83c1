"""What the experiments share: their files, seeded runs, sweeps and figure parts.

Every study writes its tables (CSV), a ``summary.md`` of Markdown tables
(:func:`momentum_jax.report.markdown_table`) and its figures (PNG) into its
``--out`` folder, each file atomically; trains either one configuration over
vmapped seeds (:func:`over_seeds`) or a sweep (:func:`run_sweep`); and draws
panels of curves with their spread over seeds, and heatmaps.
"""

from __future__ import annotations

import os
from typing import Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from momentum_jax import report, sweep
from momentum_jax.runtime.files import atomic_path, atomic_write_text
from momentum_jax.report.plots import save_figure
from momentum_jax.report import markdown_table  # noqa: F401  (re-exported for the studies)
from momentum_jax.train import TrainConfig, TrainResult, build_train


def write_tables(out_dir: str, frames: Mapping[str, pd.DataFrame]) -> None:
  """Writes each frame as the CSV file its name gives (no index), atomically."""
  for name, frame in frames.items():
    with atomic_path(os.path.join(out_dir, name)) as path:
      frame.to_csv(path, index=False)


def write_summary(out_dir: str, lines: Iterable[str]) -> None:
  """Writes ``lines`` as the study's ``summary.md``, atomically."""
  atomic_write_text(os.path.join(out_dir, "summary.md"), "\n".join(lines) + "\n")


def write_figure(fig: Figure, out_dir: str, name: str) -> str:
  """Writes ``fig`` as the PNG ``name`` in ``out_dir`` (:func:`momentum_jax.report.plots.save_figure`)."""
  return str(save_figure(fig, os.path.join(out_dir, name)))


def run_sweep(config: sweep.SweepConfig, folder: str):
  """Runs a study's sweep into ``folder`` and saves its tables and figures there.

  ``overwrite``: a study resumes its own sweep, and replaces one of an earlier size.
  """
  result = sweep.run(config, folder, quiet=True, overwrite=True)
  report.save(result, folder)
  return result


def seed_keys(count: int) -> jax.Array:
  """The keys of seeds ``0 .. count - 1``: split from key 0."""
  return jax.random.split(jax.random.key(0), count)


def over_seeds(problem, make_optimizer, config: TrainConfig, hyperparameters: Mapping[str, float]):
  """One configuration's training run over seeds: ``run(keys) -> TrainResult``.

  ``build_train`` vmapped over the keys (all seeds in one program) and jitted;
  the hyperparameters are float32 scalars shared by the seeds.
  """
  train = jax.jit(jax.vmap(build_train(problem, make_optimizer, config), in_axes=(None, 0)))
  values = {name: jnp.float32(value) for name, value in hyperparameters.items()}

  def run(keys: jax.Array) -> TrainResult:
    return train(values, keys)

  return run


def panels(count: int, width: float, height: float, columns: int | None = None):
  """A figure of ``count`` panels of ``width`` x ``height`` inches, and their axes.

  ``columns`` per row (default: all in one row); the unused axes of the last
  row are hidden.
  """
  columns = min(columns or count, count)
  rows = -(-count // columns)
  fig = Figure(figsize=(width * columns, height * rows), layout="constrained")
  axes = fig.subplots(rows, columns, squeeze=False).ravel()
  for axis in axes[count:]:
    axis.set_visible(False)
  return fig, axes[:count]


def band(axis, values, centre: str = "mean", alpha: float = 0.2, **line):
  """Plots grouped ``values`` at their ``centre`` over each group, shading min to max.

  Args:
    axis: The axes to draw on.
    values: A ``SeriesGroupBy`` by the x value (e.g. a curve's seeds grouped by step).
    centre: The aggregation of the line: ``"mean"`` or ``"median"``.
    alpha: The opacity of the shaded range.
    **line: Passed to ``axis.plot`` (``label``, ``color``).

  Returns:
    The line.
  """
  middle = values.agg(centre)
  (drawn,) = axis.plot(middle.index, middle, **line)
  axis.fill_between(middle.index, values.min(), values.max(), color=drawn.get_color(), alpha=alpha)
  return drawn


def grid_image(
  axis, values, columns: list[str], rows: list[str], cells: str | None = None, **image
):
  """``values`` (shape ``[rows, columns]``) as a heatmap, one cell per tick label.

  ``image`` goes to ``axis.imshow`` (``cmap``, ``norm``, ``vmin``, ...); the
  x tick labels are rotated 45°. ``cells``: a format (e.g. ``".2f"``) to print
  each value in its cell, white on the lower half of the colour scale. Returns
  the image.
  """
  drawn = axis.imshow(values, origin="lower", aspect="auto", **image)
  axis.set_xticks(range(len(columns)), columns, rotation=45)
  axis.set_yticks(range(len(rows)), rows)
  if cells is not None:
    for (i, j), value in np.ndenumerate(values):
      axis.text(
        j,
        i,
        format(value, cells),
        ha="center",
        va="center",
        fontsize=7,
        color="white" if drawn.norm(value) < 0.5 else "black",
      )
  return drawn


def beta_lr_heatmaps(summary: pd.DataFrame, value: str, title: str) -> Figure:
  """One heatmap per optimizer of ``value`` (mean over seeds) over β x learning rate.

  A cell where any seed diverged is blank and marked with a red ×; positive
  values are coloured on a log scale (reversed viridis: dark is high).
  """
  optimizers = list(dict.fromkeys(summary.optimizer))
  fig, axes = panels(len(optimizers), 6.5, 5)
  for axis, optimizer in zip(axes, optimizers):
    cells = summary[summary.optimizer == optimizer].groupby(["beta", "learning_rate"])
    grid = cells[value].mean().unstack()
    diverged = cells.diverged.any().unstack()
    shown = grid.where(~diverged).to_numpy()
    positive = shown[np.isfinite(shown)]
    norm = LogNorm(positive.min(), positive.max()) if positive.size and positive.min() > 0 else None
    image = grid_image(
      axis,
      shown,
      [f"{v:.2g}" for v in grid.columns],
      [f"{v:g}" for v in grid.index],
      norm=norm,
      cmap="viridis_r",
    )
    for i, j in np.argwhere(diverged.to_numpy()):
      axis.text(j, i, "×", ha="center", va="center", color="red", fontsize=9)
    axis.set(xlabel="learning rate", ylabel="β")
    axis.set_title(optimizer, fontsize=10)
    fig.colorbar(image, ax=axis, label=f"{value} (mean over seeds; × diverged)")
  fig.suptitle(title)
  return fig
