"""Checks and helpers the sweep's figures share (the heatmap's and the others')."""

from __future__ import annotations

import numpy as np
import pandas as pd

from momentum_jax import results

DIVERGED_COLOUR = "0.6"


def check_column(summary: pd.DataFrame, name: str, argument: str) -> None:
  if name not in summary.columns:
    raise ValueError(
      f"{argument} must be a column of the summary ({', '.join(summary.columns)}), got {name!r}"
    )


def check_metric(summary: pd.DataFrame, value: str) -> None:
  present = results.metric_columns(summary)
  if value not in present:
    raise ValueError(f"value must be one of the summary's metrics {present}, got {value!r}")


def spans_decades(values: np.ndarray) -> bool:
  values = values[np.isfinite(values)]
  return bool(len(values)) and values.min() > 0 and values.max() > 10 * values.min()


def best_per_setting(summary: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
  """Per setting of ``keys``: the best seed mean of ``value`` over the other hyperparameters.

  Returns:
    Columns ``keys``, ``value`` (NaN where every run diverged),
    ``all_diverged``, and ``some_diverged`` (the chosen setting lost a seed,
    so ``value`` is the mean of the others). Sorted by ``keys``.
  """
  pooled = results.aggregate_over_seeds(summary).rename(columns={f"{value}_mean": value})
  # Best first, then the first row of each setting is its best; NaN sorts last.
  ranked = pooled.sort_values(
    value, ascending=not results.higher_is_better(value), na_position="last", kind="stable"
  )
  best = ranked.drop_duplicates(keys).sort_values(keys).reset_index(drop=True)
  best["all_diverged"] = best[value].isna() & (best["diverged"] == best["seeds"])
  best["some_diverged"] = best[value].notna() & (best["diverged"] > 0)
  return best[[*keys, value, "all_diverged", "some_diverged"]]


def one_optimizer(summary: pd.DataFrame, optimizer: str | None) -> str:
  names = sorted(summary["optimizer"].unique())
  if optimizer is None and len(names) == 1:
    return names[0]
  if optimizer not in names:
    raise ValueError(
      f"optimizer must be one of {names}"
      + (" when the summary holds several" if optimizer is None else "")
      + f", got {optimizer!r}"
    )
  return optimizer


def log_scaled(values: np.ndarray, value: str) -> bool:
  # Losses spread over decades; on a linear scale all but the worst look alike.
  finite = values[np.isfinite(values)]
  return not results.higher_is_better(value) and bool(len(finite)) and finite.min() > 0


def tick_labels(values: np.ndarray) -> list[str]:
  return [f"{v:.3g}" for v in values]
