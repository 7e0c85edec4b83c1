"""Every sweep as Optuna studies in ``DIR/optuna.journal``, whatever its search: optuna-dashboard reads it.

:func:`write_journal` records a :class:`~momentum_jax.results.SweepResult`
after the fact, through Optuna's public API (``optuna.trial.create_trial``,
``Study.add_trials``) into a ``JournalStorage`` on a ``JournalFileBackend``:

- one study per optimizer group (the summary's ``optimizer``), its direction
  the report's ranking metric's (:func:`momentum_jax.results.ranking_metric`:
  ``val_accuracy`` maximized where the problem logs it, else ``final_loss``
  minimized), so the dashboard's best trial is ``summary.md``'s best;
- one trial per configuration, its seeds pooled as the report pools them
  (:func:`momentum_jax.results.aggregate_over_seeds`): its params the group's
  swept hyperparameters, each with the distribution it was drawn from (the
  manifest's searched range: ``FloatDistribution``, ``log=True`` for
  ``loguniform``; a list, ``linspace`` or ``logspace``: a
  ``CategoricalDistribution`` of the values the group took); its value the
  mean of the metric over the seeds; its intermediate values the metric's
  curve (``train_loss`` for ``final_loss``), the mean over the seeds at each
  logged step where finite;
- ``FAIL`` where a seed diverged (as Optuna's own search tells it),
  ``PRUNED`` where a scheduler stopped it (``stopped_at_step`` < the sweep's
  steps); user attributes ``config_ids``, ``seeds``, and ``trial`` (the
  search's own trial number) or ``member`` (population-based training) where
  the summary has them.

A sweep with ``search: {method: optuna}`` keeps its own studies, named by the
group's label, in the same file (:mod:`momentum_jax.sweep.strategies._optuna_study`); they are
never touched. A record study is named by the label where no other study has
that name, else ``<label> (record)``; each carries the study user attribute
``momentum_jax: "record"``, and saving a result again replaces the record
studies (and only them) of the folder's journal.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from momentum_jax import results
from momentum_jax.report._markdown import _searched_range
from momentum_jax.results import SweepResult
from momentum_jax.sweep.strategies._optuna_study import JOURNAL_FILE

RECORD_ATTR = "momentum_jax"  # study user attribute marking a record study: value "record"
RECORD_SUFFIX = " (record)"


def curve_metric(metric: str) -> str:
  """The curves' column that logs ``metric`` over the steps: ``train_loss`` for ``final_loss``."""
  return "train_loss" if metric == "final_loss" else metric


def _distributions(result: SweepResult, label: str, rows: pd.DataFrame) -> dict[str, Any]:
  """A group's swept hyperparameters as Optuna distributions, in table order."""
  from optuna import distributions as d

  found = {}
  for name in results.swept_hyperparameters(rows, finals=False):
    searched = _searched_range(result.manifest, label, name)
    taken = rows[name].astype("float64")
    if searched is None:
      found[name] = d.CategoricalDistribution(tuple(sorted(float(v) for v in taken.unique())))
    else:
      # A point drawn in log scale may round an ulp past an end: Optuna refuses a param
      # outside its distribution, so the ends stretch to the points.
      found[name] = d.FloatDistribution(
        min(searched.low, taken.min()),
        max(searched.high, taken.max()),
        log=searched.kind == "loguniform",
      )
  return found


def mean_curve(curves: pd.DataFrame, seeds: pd.DataFrame, column: str) -> dict[int, float]:
  """A configuration's curve of ``column``: per logged step, the mean over its seeds where finite.

  The seeds that did not diverge, as the summary's means (all of them when
  every one diverged, to show how they did); ``{}`` where the curves lack
  the column.
  """
  if column not in curves.columns:
    return {}
  healthy = seeds[~seeds["diverged"].astype(bool)]
  rows = curves[curves["config_id"].isin((healthy if len(healthy) else seeds)["config_id"])]
  values = rows[column].astype("float64")
  means = values.where(np.isfinite(values)).groupby(rows["step"]).mean().dropna()
  return {int(step): float(value) for step, value in means.items()}


def _trial(result: SweepResult, seeds: pd.DataFrame, distributions: dict[str, Any], metric: str):
  """One configuration (its seeds' rows) as a finished Optuna trial."""
  import optuna
  from optuna.trial import TrialState

  config_ids = [int(c) for c in seeds["config_id"]]
  first = seeds.iloc[0]
  params = {name: float(first[name]) for name in distributions}
  diverged = bool(seeds["diverged"].astype(bool).any())
  stopped = (
    "stopped_at_step" in seeds.columns
    and result.manifest.steps is not None
    and pd.notna(first["stopped_at_step"])
    and int(first["stopped_at_step"]) < result.manifest.steps
  )
  value = float(seeds[metric].astype("float64").mean())
  state = (
    TrialState.FAIL
    if diverged or not np.isfinite(value)
    else TrialState.PRUNED
    if stopped
    else TrialState.COMPLETE
  )
  attrs: dict[str, Any] = {"config_ids": config_ids, "seeds": [int(s) for s in seeds["seed"]]}
  for column in ("trial", "member"):
    if column in seeds.columns:
      attrs[column] = int(first[column])
  attrs.update(
    {
      f"final_{name}": float(first[f"final_{name}"])
      for name in distributions
      if f"final_{name}" in seeds.columns
    }
  )  # PBT: the values a member ended with
  return optuna.trial.create_trial(
    state=state,
    value=value if state == TrialState.COMPLETE else None,
    params=params,
    distributions=distributions,
    user_attrs=attrs,
    intermediate_values=mean_curve(result.curves, seeds, curve_metric(metric)),
  )


def _configurations(rows: pd.DataFrame) -> list[pd.DataFrame]:
  """A group's rows split into configurations (seeds pooled), in ``config_id`` order."""
  keys = results.setting_columns(rows)
  grouped = rows.groupby(keys, dropna=False, sort=False)
  return sorted((seeds for _, seeds in grouped), key=lambda seeds: seeds["config_id"].min())


def _clear_records(storage) -> set[str]:
  """Deletes the journal's record studies; returns the names of the studies left (the search's)."""
  import optuna

  kept = set()
  for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
    if summary.user_attrs.get(RECORD_ATTR) == "record":
      optuna.delete_study(study_name=summary.study_name, storage=storage)
    else:
      kept.add(summary.study_name)
  return kept


def write_journal(result: SweepResult, out_dir: str | os.PathLike) -> Path:
  """Records ``result`` as Optuna studies in ``out_dir/optuna.journal`` (see the module docstring).

  Returns:
    The journal's path.

  Raises:
    ImportError: Without Optuna (the ``dashboard`` extra installs it).
  """
  import optuna
  from optuna.storages.journal import JournalFileBackend

  path = Path(out_dir) / JOURNAL_FILE
  storage = optuna.storages.JournalStorage(JournalFileBackend(str(path)))
  metric = results.ranking_metric(result.summary)
  direction = "maximize" if results.higher_is_better(metric) else "minimize"
  before = optuna.logging.get_verbosity()
  optuna.logging.set_verbosity(optuna.logging.WARNING)  # one INFO line per study otherwise
  try:
    taken = _clear_records(storage)
    for label, rows in result.summary.groupby("optimizer", sort=False):
      distributions = _distributions(result, label, rows)
      study = optuna.create_study(
        storage=storage,
        direction=direction,
        study_name=label + RECORD_SUFFIX if label in taken else label,
      )
      study.set_user_attr(RECORD_ATTR, "record")
      study.set_user_attr("metric", metric)
      if result.manifest.name:
        study.set_user_attr("sweep", result.manifest.name)
      study.add_trials(
        [_trial(result, seeds, distributions, metric) for seeds in _configurations(rows)]
      )
  finally:
    optuna.logging.set_verbosity(before)
  return path
