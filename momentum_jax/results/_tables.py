"""A sweep's tables from what its groups trained: one summary row per run, one curve row per log.

:func:`frames` turns the engine's :class:`GroupOutcome` per optimizer group
into the summary and curves that :mod:`momentum_jax.results` describes
(and re-exports, with the metric vocabulary below).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pandas as pd

# Per-configuration outcomes every sweep may log, in the order tables show
# them; a problem's own metrics follow (see metric_columns).
METRICS = ("final_loss", "best_loss", "val_loss", "val_accuracy")


def is_metric(column: str) -> bool:
  """Whether a summary column is an outcome: one of :data:`METRICS`, ``val_…`` or ``start_…``."""
  return column in METRICS or column.startswith(("val_", "start_"))


def metric_columns(frame: pd.DataFrame) -> list[str]:
  """The metric columns of a summary, in table order: :data:`METRICS`, then the problem's own."""
  fixed = [m for m in METRICS if m in frame.columns]
  return fixed + [c for c in frame.columns if is_metric(c) and c not in METRICS]


@dataclasses.dataclass
class GroupOutcome:
  """What the engine trained for one optimizer group, as host arrays, in configuration order.

  Attributes:
    label: The group's label (the ``optimizer`` column).
    values: Hyperparameter name -> its value per configuration, shape ``[k]``.
    seeds: Shape ``[k]``.
    metrics: Logged metric -> shape ``[k, logs]`` (``grad_norms``: a nested
      dict of them), and the problem's metrics of the initial model,
      ``start_<name>`` -> shape ``[k]``.
    diverged_at_step: Shape ``[k]``, -1 for a run that did not diverge.
    stopped_at_step: Shape ``[k]``: where a scheduler stopped each run (its
      logs after it NaN); ``None``: every run trained to the end, no
      scheduler.
    trial: Shape ``[k]``: each run's Optuna trial number (``search: {method:
      optuna}``); ``None``: another search.
    pbt: With population-based training, ``hyperparameters`` (name ->
      ``[k, logs]``: the value in force during each log interval) and
      ``copied_from`` (``[k, logs]``: the row, within the group, whose state
      each row took after each logged step, -1 for none); else ``None``.
  """

  label: str
  values: dict[str, np.ndarray]
  seeds: np.ndarray
  metrics: dict[str, Any]
  diverged_at_step: np.ndarray
  stopped_at_step: np.ndarray | None = None
  trial: np.ndarray | None = None
  pbt: dict[str, Any] | None = None


def _lineage(
  copied_from: np.ndarray, first: int, seeds: int, logged_steps: np.ndarray
) -> list[str]:
  """Each row's ``[[step, source member], ...]`` as JSON, members numbered from ``first // seeds``."""
  return [
    json.dumps(
      [[int(logged_steps[at]), (first + int(row[at])) // seeds] for at in np.flatnonzero(row >= 0)]
    )
    for row in copied_from
  ]


def _flat_paths(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
  if not isinstance(tree, dict):
    return {prefix: tree}
  flat = {}
  for key, value in tree.items():
    flat.update(_flat_paths(value, f"{prefix}/{key}" if prefix else str(key)))
  return flat


def _group_curves(
  group: GroupOutcome,
  ids: np.ndarray,
  logged: list[str],
  logged_steps: np.ndarray,
  stopped: np.ndarray,
) -> pd.DataFrame:
  """One group's curves: a row per run and logged step, up to the step it stopped at."""
  metrics = group.metrics
  curve = {
    "config_id": np.repeat(ids, len(logged_steps)),
    "optimizer": group.label,
    "step": np.tile(logged_steps, len(ids)),
  }
  for name in ("train_loss", *(["grad_norm"] if "grad_norm" in metrics else []), *logged):
    curve[name] = metrics[name].reshape(-1).astype(np.float64)
  if "grad_norms" in metrics:  # train.grad_norms: a column per kernel and bias
    for path, norms in _flat_paths(metrics["grad_norms"]).items():
      curve[f"grad_norm/{path}"] = np.asarray(norms).reshape(-1).astype(np.float64)
  if group.pbt is not None:  # the hyperparameters in force at each logged step
    curve.update(
      {
        name: np.asarray(values).reshape(-1).astype(np.float64)
        for name, values in group.pbt["hyperparameters"].items()
      }
    )
  # A stopped run's curves end where it stopped.
  ran = curve["step"] <= np.repeat(stopped, len(logged_steps))
  return pd.DataFrame(curve)[ran].reset_index(drop=True)


def _group_summary(
  group: GroupOutcome,
  ids: np.ndarray,
  logged_steps: np.ndarray,
  stopped: np.ndarray,
  scheduled: bool,
) -> pd.DataFrame:
  """One group's rows of the summary: its values, seeds, final metrics and fates."""
  k, metrics, diverged_at = len(group.seeds), group.metrics, group.diverged_at_step
  last = (np.arange(k), np.searchsorted(logged_steps, stopped))  # each run's last log
  losses = metrics["train_loss"]
  row = {
    "config_id": ids,
    "optimizer": group.label,
    **({} if group.trial is None else {"trial": np.asarray(group.trial, np.int64)}),
    **group.values,
    "seed": group.seeds,
    "final_loss": losses[last].astype(np.float64),
  }
  with np.errstate(invalid="ignore"):
    row["best_loss"] = np.where(
      np.all(np.isnan(losses), axis=1),
      np.nan,
      np.nanmin(np.where(np.isnan(losses), np.inf, losses), axis=1),
    ).astype(np.float64)
  row.update(
    {name: metrics[name][last].astype(np.float64) for name in metrics if name.startswith("val_")}
  )
  row.update(
    {name: value.astype(np.float64) for name, value in metrics.items() if name.startswith("start_")}
  )
  row["diverged"] = diverged_at >= 0
  row["diverged_at_step"] = pd.array(np.where(diverged_at >= 0, diverged_at, 0), dtype="Int64")
  if scheduled:
    row["stopped_at_step"] = pd.array(stopped, dtype="Int64")
  if group.pbt is not None:
    seeds = len(np.unique(group.seeds))
    row["member"] = ids // seeds
    row.update(
      {
        f"final_{name}": values[:, -1].astype(np.float64)
        for name, values in group.pbt["hyperparameters"].items()
      }
    )
    row["lineage"] = _lineage(group.pbt["copied_from"], int(ids[0]), seeds, logged_steps)
  summary = pd.DataFrame(row)
  summary.loc[~summary["diverged"], "diverged_at_step"] = pd.NA
  return summary


def _ordered(summary: pd.DataFrame, scheduled: bool, pbt: bool) -> pd.DataFrame:
  """The summary's columns in their order: ids, hyperparameters, seed, metrics, fates."""
  front = [
    "config_id",
    "optimizer",
    *(["trial"] if "trial" in summary.columns else []),
    *(["member"] if pbt else []),
  ]
  hyper = [
    c
    for c in summary.columns
    if c not in front
    and c not in ("seed", "diverged", "diverged_at_step", "stopped_at_step", "lineage")
    and not is_metric(c)
  ]
  hyper = [c for c in hyper if not c.startswith("final_")] + [
    c for c in hyper if c.startswith("final_")
  ]  # pbt's final values last
  rest = [
    "seed",
    *metric_columns(summary),
    "diverged",
    "diverged_at_step",
    *(["stopped_at_step"] if scheduled else []),
    *(["lineage"] if pbt else []),
  ]
  return summary[front + hyper + rest]


def frames(
  groups: list[GroupOutcome], logged_steps: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
  """The ``(summary, curves)`` of a sweep's groups (see :mod:`momentum_jax.results`)."""
  summaries, curves = [], []
  next_id = 0
  scheduled = any(g.stopped_at_step is not None for g in groups)
  pbt = any(g.pbt is not None for g in groups)
  for group in groups:
    k = len(group.seeds)
    ids = np.arange(next_id, next_id + k)
    next_id += k
    stopped = (
      np.full(k, logged_steps[-1])
      if group.stopped_at_step is None
      else np.asarray(group.stopped_at_step)
    )
    summaries.append(_group_summary(group, ids, logged_steps, stopped, scheduled))
    # A Trainable's other training metrics (train_<name>) are curves only, as grad_norm.
    logged = [
      name
      for name in group.metrics
      if name.startswith("val_") or (name.startswith("train_") and name != "train_loss")
    ]
    curves.append(_group_curves(group, ids, logged, logged_steps, stopped))
  summary = _ordered(pd.concat(summaries, ignore_index=True), scheduled, pbt)
  return summary, pd.concat(curves, ignore_index=True)
