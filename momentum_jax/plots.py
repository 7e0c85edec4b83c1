"""Figures of a sweep: heatmaps, the best loss curves, the best value per hyperparameter.

Every function returns a ``matplotlib.figure.Figure`` built without pyplot, so
nothing here touches pyplot's global state or needs a display: figures are
drawn by the Agg canvas and never shown. :func:`write_figures` writes the
standard set for a sweep as PNG files.

Seeds are pooled as in :func:`momentum_jax.results.aggregate_over_seeds`:
diverged runs are left out of the means and marked where it matters.
"""

from __future__ import annotations

import io
import logging
import math
import os
from pathlib import Path

import matplotlib.colors
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from momentum_jax import results
from momentum_jax.results import SweepResult

logger = logging.getLogger(__name__)

DPI = 120
# How hyperparameters are written in legends: the literature's short names.
_SHORT_NAMES = {"learning_rate": "lr", "beta": "β", "decay": "d", "b1": "β₁", "b2": "β₂"}
_DIVERGED_COLOUR = "0.55"


def _spans_decades(values: np.ndarray) -> bool:
  values = values[np.isfinite(values)]
  return bool(len(values)) and values.min() > 0 and values.max() / values.min() > 10


def _check_column(frame: pd.DataFrame, name: str, argument: str) -> None:
  if name not in frame.columns:
    raise ValueError(f"{argument} must be a column of the summary "
                     f"({', '.join(frame.columns)}), got {name!r}")


def _pick_best(values: pd.Series, value: str) -> float:
  return values.max() if results.higher_is_better(value) else values.min()


def _cell_table(summary: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
  """Per setting of ``keys``: the best seed-mean ``value`` over the other hyperparameters.

  Returns columns ``keys``, ``value`` (NaN where every run diverged),
  ``all_diverged`` and ``some_diverged`` (the chosen setting lost a seed).
  """
  pooled = results.aggregate_over_seeds(summary)
  mean = f"{value}_mean"
  pooled["all_diverged"] = pooled["diverged"] == pooled["seeds"]
  pooled["some_diverged"] = (pooled["diverged"] > 0) & ~pooled["all_diverged"]
  healthy = pooled[pooled[mean].notna()]
  chosen = (healthy[mean].idxmax() if results.higher_is_better(value) else healthy[mean].idxmin()
            ) if False else None
  del chosen
  order = not results.higher_is_better(value)
  best = healthy.sort_values(mean, ascending=order, kind="stable").drop_duplicates(keys)
  cells = pooled.groupby(keys, sort=True)["all_diverged"].all().rename("all_diverged")
  best = best.set_index(keys)[[mean, "some_diverged"]].rename(columns={mean: value})
  table = pd.concat([cells, best], axis=1).reset_index()
  table["some_diverged"] = table["some_diverged"].fillna(False).astype(bool)
  return table
