"""Sweep results: the tables a sweep returns and how they are stored.

A sweep over K configurations returns a :class:`SweepResult`:

- ``summary``: one row per configuration: ``config_id``, ``optimizer``, with
  Optuna's search (``search: {method: optuna}``) ``trial`` (the trial's number
  in its group's study: a trial's seeds are its rows), one
  float column per hyperparameter (NaN where the optimizer lacks it), ``seed``,
  ``final_loss``, ``best_loss``, ``val_loss`` and ``val_accuracy`` where the
  problem has them, ``val_<name>`` for each of the problem's own metrics (its
  last logged value) and ``start_<name>`` (its value for the initial model),
  ``diverged`` and ``diverged_at_step`` (nullable ``Int64``); with a
  scheduler (successive halving, Hyperband) also ``stopped_at_step``
  (``Int64``: the rung at which it was dropped, ``train.steps`` if it ran to
  the end), the metrics being those logged at that step; with
  population-based training (``search: {method: pbt}``) also ``member``
  after ``optimizer`` (``config_id // seeds``: a setting and its seeds), its
  hyperparameter columns holding the member's initial values,
  ``final_<name>`` after them (the values it ended with) and ``lineage``
  last (JSON: ``[[step, source member], ...]``, each exploit after which it
  copied another member's state, ``[]`` if none). For a 2-D
  landscape the metrics are ``x``, ``y`` and ``distance_to_minimum`` (to the
  nearest global minimum): ``val_x``, … where the point ended, ``start_x``, …
  where it started (with a ``start_spread`` each seed starts elsewhere).
- ``curves``: one row per configuration and logged step: ``config_id``,
  ``optimizer``, ``step``, ``train_loss``, ``grad_norm`` and the validation
  metrics where the problem has them (``val_loss``, ``val_accuracy``,
  ``val_<name>``: for a landscape ``val_x``, ``val_y`` and
  ``val_distance_to_minimum``, the path), up to ``stopped_at_step``; with
  ``train: {grad_norms: true}`` also one ``grad_norm/<layer path>`` column
  per kernel and bias (e.g. ``grad_norm/layers/0/kernel``); with
  population-based training, one column per hyperparameter, the value that
  trained the steps leading to each logged step (so a value changed by an
  exploit at step ``t`` shows from the first log after ``t``).
- ``models`` (with ``keep: {models: K}``): the K best configurations'
  trained weights, every seed of each (:class:`KeptModel`), written under
  ``models/`` and read back one by one with :func:`load_model`.
- ``manifest``: what is needed to trust and repeat the sweep, a typed record
  (:class:`Manifest`): the resolved ``config``, package ``versions``,
  ``devices``, ``timings``, ``compilations``, ``chunk_size``, ….

:meth:`SweepResult.save` (with the kept models) and :func:`write_results`
store them as ``summary.csv``, ``curves.parquet`` and ``manifest.json``,
each file replaced atomically so that an interrupted write never leaves a
truncated file; :func:`load_results` reads them back with the same dtypes.
The tuning report (``summary.md``) and the figures are written by
:func:`momentum_jax.report.save`, which builds on this package.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from pathlib import Path
from typing import Sequence


import numpy as np
import pandas as pd

from momentum_jax.results._manifest import Manifest
from momentum_jax.results._models import KeptModel, write_models
from momentum_jax.results._tables import METRICS, GroupOutcome, frames, is_metric
from momentum_jax.runtime.files import atomic_write_bytes, atomic_write_text, json_default

SUMMARY_FILE = "summary.csv"
CURVES_FILE = "curves.parquet"
MANIFEST_FILE = "manifest.json"
REPORT_FILE = "summary.md"  # momentum_jax.report.save writes it: not needed to load a result

_SUMMARY_REQUIRED = (
  "config_id",
  "optimizer",
  "seed",
  "final_loss",
  "best_loss",
  "diverged",
  "diverged_at_step",
)
# grad_norm too for a Problem's sweep (a Trainable logs its own metrics, no gradient norm).
_CURVES_REQUIRED = ("config_id", "optimizer", "step", "train_loss")


@dataclasses.dataclass
class SweepResult:
  """The outcome of a sweep (see the module docstring for the columns).

  Attributes:
    summary: One row per configuration.
    curves: One row per configuration and logged step.
    manifest: The :class:`Manifest`: the config, versions, devices,
      timings, compilations, chunk sizes, … (a dict given here is read
      with :meth:`Manifest.from_dict`).
    models: With ``keep: {models: K}``, the K best configurations' trained
      weights, best first (:class:`KeptModel`); ``None`` without ``keep``
      (and as :func:`load_results` reads a result: :func:`load_model` reads
      one model).
  """

  summary: pd.DataFrame
  curves: pd.DataFrame
  manifest: Manifest = dataclasses.field(default_factory=Manifest)
  models: list[KeptModel] | None = None

  def __post_init__(self):
    self.manifest = Manifest.from_dict(self.manifest)

  def save(self, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Writes the result, all that :func:`load_results` reads back: tables, manifest, kept models.

    The tuning report (``summary.md``) and the figures are the report's:
    ``momentum_jax.report.save(result, out_dir)`` writes this and them (the
    command does). On several JAX processes only process 0 writes (each
    holds the whole result); the others return ``{}``.

    Returns:
      The written paths: ``summary``, ``curves``, ``manifest``, and with kept
      models ``models`` (the folder :func:`write_models` fills).
    """
    import jax  # the process index; jax is imported by any sweep anyway

    if jax.process_index() != 0:
      return {}
    paths = write_results(self, out_dir)
    if self.models is not None:
      paths["models"] = write_models(self.models, out_dir)
    return paths


# --------------------------------------------------------------------------- files


def result_paths(out_dir: str | os.PathLike) -> dict[str, Path]:
  """The files a sweep result consists of, keyed ``summary``, ``curves``, ``manifest``."""
  out_dir = Path(out_dir)
  return {
    "summary": out_dir / SUMMARY_FILE,
    "curves": out_dir / CURVES_FILE,
    "manifest": out_dir / MANIFEST_FILE,
  }


def _check_columns(frame: pd.DataFrame, name: str, required: tuple[str, ...]) -> None:
  missing = [column for column in required if column not in frame.columns]
  if missing:
    raise ValueError(
      f"{name} lacks the columns {missing}; it needs {list(required)}, has {list(frame.columns)}"
    )


def write_results(result: SweepResult, out_dir: str | os.PathLike) -> dict[str, Path]:
  """Writes ``summary.csv``, ``curves.parquet`` and ``manifest.json`` into ``out_dir``.

  Each file is
  replaced atomically, so none is ever left half-written; they are replaced
  one after the other, the manifest last, so a manifest at least as new as
  the tables marks a folder that holds one complete result.

  Args:
    result: The sweep result.
    out_dir: Folder to write into, created with its parents if missing.

  Returns:
    The written paths, keyed ``summary``, ``curves``, ``manifest``.

  Raises:
    ValueError: If a table lacks a required column or ``config_id`` repeats.
    TypeError: If the manifest holds a value JSON cannot represent.
  """
  _check_columns(result.summary, "summary", _SUMMARY_REQUIRED)
  _check_columns(result.curves, "curves", _CURVES_REQUIRED)
  repeated = result.summary["config_id"][result.summary["config_id"].duplicated()]
  if len(repeated):
    raise ValueError(f"summary config_id must be unique, got repeats {sorted(set(repeated))}")
  # Serialise everything before touching the folder: a bad manifest writes nothing.
  summary_text = result.summary.to_csv(index=False)
  curves_buffer = io.BytesIO()
  result.curves.to_parquet(curves_buffer, engine="pyarrow", index=False)
  manifest_text = (
    json.dumps(result.manifest.to_dict(), indent=2, sort_keys=True, default=json_default) + "\n"
  )

  paths = result_paths(out_dir)
  Path(out_dir).mkdir(parents=True, exist_ok=True)
  atomic_write_text(paths["summary"], summary_text)
  atomic_write_bytes(paths["curves"], curves_buffer.getvalue())
  atomic_write_text(paths["manifest"], manifest_text)
  return paths


def _summary_dtypes(summary: pd.DataFrame) -> pd.DataFrame:
  # CSV keeps no dtypes: restore the contract's (an all-NaN or all-NA column
  # would otherwise come back as float64 or object).
  dtypes = {
    "config_id": "int64",
    "optimizer": "str",
    "seed": "int64",
    "diverged": "bool",
    "diverged_at_step": "Int64",
    "stopped_at_step": "Int64",
    "trial": "int64",
    "member": "int64",
    "lineage": "str",
  }
  for optional in ("stopped_at_step", "trial", "member", "lineage"):  # a scheduler's, …
    if optional not in summary.columns:
      del dtypes[optional]
  dtypes.update({column: "float64" for column in summary.columns if column not in dtypes})
  return summary.astype(dtypes)


def load_results(out_dir: str | os.PathLike) -> SweepResult:
  """Reads a sweep result written by :func:`write_results`.

  Args:
    out_dir: The folder holding ``summary.csv``, ``curves.parquet`` and
      ``manifest.json``.

  Returns:
    The :class:`SweepResult`, with the dtypes it was written with.

  Raises:
    FileNotFoundError: If the folder or one of the three files is missing.
  """
  out_dir = Path(out_dir)
  if not out_dir.is_dir():
    raise FileNotFoundError(f"no sweep result folder {out_dir}")
  paths = result_paths(out_dir)
  missing = [path.name for path in paths.values() if not path.is_file()]
  if missing:
    raise FileNotFoundError(
      f"{out_dir} is not a complete sweep result: {', '.join(missing)} missing "
      f"(a result is {SUMMARY_FILE}, {CURVES_FILE} and {MANIFEST_FILE})"
    )
  # Only empty fields are missing values: an optimizer named "nan" or "NA" stays a name.
  summary = pd.read_csv(
    paths["summary"], keep_default_na=False, na_values=[""], dtype={"optimizer": "str"}
  )
  curves = pd.read_parquet(paths["curves"], engine="pyarrow")
  manifest = json.loads(paths["manifest"].read_text(encoding="utf-8"))
  return SweepResult(_summary_dtypes(summary), curves, manifest)


# --------------------------------------------------------------------------- tables


def tables(groups: list[GroupOutcome], logged_steps: np.ndarray, manifest) -> SweepResult:
  """The summary and curves of a sweep's groups (see the module docstring for the columns)."""
  return SweepResult(*frames(groups, logged_steps), manifest)


# Every other summary column that is no metric is a hyperparameter.
_NOT_HYPERPARAMETERS = frozenset(
  (
    "config_id",
    "optimizer",
    "trial",
    "member",
    "seed",
    "diverged",
    "diverged_at_step",
    "stopped_at_step",
    "lineage",
    *METRICS,
  )
)


def names_a_column(name: str) -> bool:
  """Whether the tables give ``name`` a meaning of their own: a hyperparameter so named would
  overwrite that column, or be read as a metric (``val_…``, ``start_…``, a Trainable's
  ``train_…``)."""
  return (
    name in _NOT_HYPERPARAMETERS
    or name in ("step", "grad_norm")
    or is_metric(name)
    or name.startswith(("train_", "grad_norm/"))
  )


def hyperparameter_columns(summary: pd.DataFrame) -> list[str]:
  """The summary's hyperparameter columns, in table order.

  Every column that is not ``config_id``, ``optimizer``, ``seed``, a metric or
  a divergence flag is a hyperparameter.
  """
  return [
    column
    for column in summary.columns
    if column not in _NOT_HYPERPARAMETERS and not is_metric(column)
  ]


def swept_hyperparameters(summary: pd.DataFrame, finals: bool = True) -> list[str]:
  """The hyperparameter columns that take more than one value (NaN not counted).

  ``finals=False`` leaves out population-based training's ``final_<name>``
  columns (the values members ended with, an outcome of the training rather
  than a setting; the figures plot them against nothing).
  """
  pbt = not finals and "lineage" in summary.columns
  return [
    column
    for column in hyperparameter_columns(summary)
    if summary[column].nunique(dropna=True) > 1
    and not (
      pbt and column.startswith("final_") and column.removeprefix("final_") in summary.columns
    )
  ]


def ranking_metric(summary: pd.DataFrame | Sequence[str]) -> str:
  """The metric configurations are ranked by: ``val_accuracy`` if present, else a Trainable's
  first evaluated return or reward (``val_return``, …), else ``final_loss``.

  ``summary``: the summary, or the names of the metrics a sweep logs.
  """
  columns = list(getattr(summary, "columns", summary))
  if "val_accuracy" in columns:
    return "val_accuracy"
  rewarded = [c for c in columns if c.startswith("val_") and any(w in c for w in _REWARDS)]
  return rewarded[0] if rewarded else "final_loss"


# Names of metrics where more is better: accuracies, and a Trainable's returns and rewards.
_REWARDS = ("return", "reward")
_HIGHER_IS_BETTER = ("accuracy", *_REWARDS)


def higher_is_better(metric: str) -> bool:
  """Whether a larger value of ``metric`` is better (accuracies, returns, rewards) or worse
  (losses, norms, anything else)."""
  return any(word in metric for word in _HIGHER_IS_BETTER)


def best_configs(summary: pd.DataFrame, n: int = 5, by: str | None = None) -> pd.DataFrame:
  """The ``n`` best configurations that did not diverge, best first.

  Args:
    summary: The sweep's summary table.
    n: How many rows to return, > 0.
    by: Column to rank by; accuracies rank descending, anything else
      ascending. Defaults to :func:`ranking_metric`.

  Returns:
    Up to ``n`` rows of ``summary`` (fresh index); ties keep ``config_id``
    order, and rows whose ranking value is NaN come last.

  Raises:
    ValueError: If ``n`` is not positive or ``by`` is not a column.

  Example:
    >>> import pandas as pd
    >>> summary = pd.DataFrame({"config_id": [0, 1, 2], "final_loss": [0.5, 0.1, float("inf")],
    ...                         "diverged": [False, False, True]})
    >>> best_configs(summary, n=2)["config_id"].tolist()
    [1, 0]
  """
  if isinstance(n, bool) or not isinstance(n, int) or n < 1:
    raise ValueError(f"n must be a positive integer, got {n!r}")
  by = ranking_metric(summary) if by is None else by
  if by not in summary.columns:
    raise ValueError(
      f"by must be a column of the summary ({', '.join(summary.columns)}), got {by!r}"
    )
  healthy = summary[~summary["diverged"].astype(bool)]
  ranked = healthy.sort_values(
    [by, "config_id"], ascending=[not higher_is_better(by), True], na_position="last", kind="stable"
  )
  return ranked.head(n).reset_index(drop=True)
