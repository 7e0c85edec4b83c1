"""Keeping a sweep's best trained models (``keep: {models: K}``): a running top K across chunks.

A configuration (one setting of the hyperparameters) ranks by the mean of
the metric over its seeds, as the report ranks it
(:func:`momentum_jax.results.rank_configurations`). Its seeds are adjacent
rows of its group (``row // seeds`` is the setting) and a chunk may end
between two of them, so a setting's rank is known only once all its seeds
have trained. After each finished chunk the :class:`Keeper`:

1. records each row's value of the metric (the summary's: its last log) and
   whether it diverged: numbers already on the host;
2. pulls from the devices (one gather, replicated) the evaluation
   parameters and model state (:func:`momentum_jax.train.kept_state`: for
   a schedule-free optimizer, or one with ``eval_params``, the parameters
   its validation metrics were measured at) of the chunk's rows whose
   setting is not complete (its other seeds train later), or is complete and
   may be among the K best: no K complete settings rank above it by more
   than the rounding of a mean. Ties are kept: the report orders them by
   their hyperparameter values, which only the final table holds;
3. once that chunk is saved (:meth:`Keeper.prune`), forgets the rows of each
   complete setting that K others beat: once beaten, always beaten, since
   the K best only get better as settings complete.

So it holds the rows of the K best settings and their ties, and the seeds of
the settings a chunk boundary cuts (chunks are runs of consecutive rows: one
setting per boundary), never every configuration's state. At the end the
summary's own ranking picks the K among them (:meth:`Keeper.finish`), and
the manifest names them.

With an output folder each held row is also a file,
``DIR/chunks/kept/g<group>-r<row>.npz``, written atomically (by
:mod:`momentum_jax.runtime.files`) before the chunk's rows are saved, and deleted
only after: a sweep killed anywhere finds on resume every held row of the
chunks it finished, with their metrics in the chunk files (a row of a chunk
it did not finish trains again and is offered again).

Only the rows that trained to the last step are offered, when their batch
ends: a search that stops rows early offers its finished ones, which the
report ranks first.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import numpy as np
import pandas as pd
from jax.sharding import NamedSharding, PartitionSpec

from momentum_jax import problems, results
from momentum_jax.results._models import KeptModel, manifest_record
from momentum_jax.runtime import files as _files
from momentum_jax.sweep._config import KeepSpec
from momentum_jax.sweep._execute import global_array
from momentum_jax.sweep.strategies import metric_at as rung_values
from momentum_jax.sweep._search import check_metric, scheduler_metrics
from momentum_jax.train import Setup

KEPT_DIR = "kept"  # under the checkpoint's chunks/ folder


def keep_metric(spec: KeepSpec, problem: problems.Problem) -> str:
  """The metric ``keep`` ranks by: its own, checked, or the report's (``val_accuracy``, else
  ``final_loss``).

  Raises:
    ConfigError: at ``keep.metric`` if the problem does not log it.
  """
  if spec.metric is None:
    return results.ranking_metric(scheduler_metrics(problem))
  return check_metric("keep.metric", spec.metric, problem)


def _take(run, state: Any, index: jax.Array) -> dict[str, jax.Array]:
  """The kept arrays of the batched ``state``'s rows ``index``, by name (the run's ``kept``).

  The rows are taken first: only theirs is evaluated (and XLA drops the
  optimizer state that the evaluation parameters do not read).
  """
  rows = jax.tree.map(lambda x: x[index], state)
  return jax.vmap(run.kept)(rows)


def puller(run, carry: Any, mesh) -> Callable[[np.ndarray], list[dict[str, np.ndarray]]]:
  """``pull(positions)``: the kept state of the carry's rows ``positions``, one flat dict each.

  ``run`` is the group's :class:`~momentum_jax.train.Setup` (its optimizer
  says which parameters are evaluated) or :class:`~momentum_jax.train.TrainableRun`:
  its ``kept`` names the arrays. The rows are gathered on the
  devices into one replicated array (every process gets them all) and
  copied to the host: only those rows move.
  """

  def pull(positions: np.ndarray) -> list[dict[str, np.ndarray]]:
    replicated = NamedSharding(mesh, PartitionSpec())
    # Cached by function, ``run`` (one per group) and shapes: compiled once per group.
    take = jax.jit(_take, static_argnums=0, out_shardings=replicated)
    index = global_array(np.asarray(positions, np.int32), replicated)
    kept = jax.device_get(take(run, carry[0], index))
    return [
      {name: np.asarray(value[i]) for name, value in kept.items()} for i in range(len(positions))
    ]

  return pull


class Keeper:
  """The running top K of a sweep (see the module docstring).

  Args:
    spec: The config's ``keep``.
    metric: The metric ranked by (:func:`keep_metric`).
    sizes: Rows of each group.
    seeds: Seeds per setting (adjacent rows).
    steps: Training steps: with a scheduler, the rows that trained to the end.
    checkpoint: The output folder's, whose ``chunks/kept/`` holds the held
      rows (read back on resume); ``None``: kept in memory only.
    setups: Each group's :class:`~momentum_jax.train.Setup`, which
      :meth:`offer_carry` evaluates its rows with; built once, so that the
      pull compiles once per group.
    saved: Each group's finished batches, read back from ``checkpoint``
      (:meth:`~momentum_jax.sweep._checkpoint.Checkpoint.batches`): their rows
      count as trained.
  """

  def __init__(
    self,
    spec: KeepSpec,
    metric: str,
    sizes: list[int],
    seeds: int,
    steps: int,
    checkpoint=None,
    setups: Sequence[Setup] = (),
    saved: Sequence[list] = (),
  ):
    self.models, self.metric, self.seeds, self.steps = spec.models, metric, seeds, steps
    self.setups = list(setups)
    self.maximize = results.higher_is_better(metric)
    self.offsets = np.cumsum([0, *sizes])  # each group's first config_id
    self.done = [np.zeros(n, bool) for n in sizes]
    self.value = [np.full(n, np.nan) for n in sizes]
    self.lost = [np.zeros(n, bool) for n in sizes]
    self.held: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    self.folder = None if checkpoint is None else Path(checkpoint.folder) / KEPT_DIR
    self.write = jax.process_index() == 0
    if checkpoint is not None:
      self._resume(saved, sizes)

  def _path(self, group: int, row: int) -> Path:
    return self.folder / f"g{group:03d}-r{row:07d}.npz"

  def _resume(self, saved: Sequence[list], sizes: list[int]) -> None:
    """The finished rows' metrics from the batches read back, the held rows from ``kept/``.

    Only the rows that trained to the last step count, as :meth:`offer` gets them.
    """
    for group, batches in enumerate(saved):
      for batch in batches:
        ended = batch.ended
        to_end = np.asarray(ended["stopped_at_step"]) == self.steps
        if to_end.any():
          metrics = ended["metrics"]
          picked = {n: metrics[n][to_end] for n in ("train_loss", self.metric) if n in metrics}
          self._record(group, ended["rows"][to_end], picked, ended["diverged_at_step"][to_end])
    if self.write:
      self.folder.mkdir(parents=True, exist_ok=True)
      for temporary in self.folder.glob(".*.tmp"):  # what a killed write left
        temporary.unlink(missing_ok=True)
    for path in sorted(self.folder.glob("g*-r*.npz")) if self.folder.is_dir() else []:
      group, row = int(path.name[1:4]), int(path.name[6:13])
      if group < len(sizes) and row < sizes[group] and self.done[group][row]:
        with np.load(path) as arrays:
          self.held[group, row] = {name: arrays[name] for name in arrays.files}
      elif self.write:  # a row of a chunk that did not finish: it trains again
        path.unlink(missing_ok=True)
    self.prune()

  def _record(self, group: int, rows: np.ndarray, metrics: dict, diverged: np.ndarray) -> None:
    losses = metrics["train_loss"]
    self.value[group][rows] = rung_values(metrics, self.metric, losses.shape[1] - 1)
    self.lost[group][rows] = np.asarray(diverged) >= 0
    self.done[group][rows] = True

  def offer(
    self,
    group: int,
    rows: np.ndarray,
    metrics: dict,
    diverged: np.ndarray,
    pull: Callable[[np.ndarray], list[dict[str, np.ndarray]]],
  ) -> None:
    """A chunk's rows of ``group``, trained to the end: holds those that may be kept.

    ``metrics`` and ``diverged`` are the rows' (host arrays, in the order of
    ``rows``); ``pull(positions)`` their kept states (see :func:`puller`).
    Call it before the chunk's rows are saved, and :meth:`prune` after.
    """
    rows = np.asarray(rows, np.int64)
    self._record(group, rows, metrics, diverged)
    complete, competitive = self._standing()
    settings = rows // self.seeds
    wanted = ~complete[group][settings] | competitive[group][settings]
    if not wanted.any():
      return
    for row, state in zip(rows[wanted], pull(np.flatnonzero(wanted))):
      self.held[group, int(row)] = state
      if self.folder is not None and self.write:
        buffer = io.BytesIO()
        np.savez(buffer, **state)
        _files.atomic_write_bytes(self._path(group, int(row)), buffer.getvalue())

  def offer_carry(
    self, group: int, rows: np.ndarray, metrics: dict, diverged: np.ndarray, carry: Any, mesh
  ) -> None:
    """:meth:`offer` of rows held at positions ``0 … len(rows) - 1`` of a device ``carry``.

    What is kept of each is :func:`momentum_jax.train.kept_state` under the
    group's setup: the parameters its validation metrics were measured at.
    """
    self.offer(group, rows, metrics, diverged, puller(self.setups[group], carry, mesh))

  def prune(self) -> None:
    """Forgets the held rows of every complete setting that K others beat (after a save)."""
    complete, competitive = self._standing()
    for group, row in list(self.held):
      setting = row // self.seeds
      if complete[group][setting] and not competitive[group][setting]:
        del self.held[group, row]
        if self.folder is not None and self.write:
          self._path(group, row).unlink(missing_ok=True)

  def _standing(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per group and setting: whether all its seeds are done, and whether it may be kept."""
    complete, lost, nan, badness = [], [], [], []
    for done, value, diverged in zip(self.done, self.value, self.lost):
      done, value, diverged = (a.reshape(-1, self.seeds) for a in (done, value, diverged))
      count = (~diverged).sum(axis=1)
      # As the report's mean: over the seeds that did not diverge, NaN skipped.
      valid = ~diverged & ~np.isnan(value)
      summed = np.where(valid, value, 0.0).sum(axis=1)
      with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid.any(axis=1), summed / valid.sum(axis=1), np.nan)
      # A setting whose every seed diverged is not ranked: never kept.
      complete.append(done.all(axis=1))
      lost.append(np.where(count > 0, diverged.any(axis=1), 2))
      nan.append(np.isnan(mean))
      badness.append(np.nan_to_num(-mean if self.maximize else mean, nan=np.inf))
    flat = [np.concatenate(a) for a in (complete, lost, nan, badness)]
    cuts = np.cumsum([len(c) for c in complete])[:-1]
    ranked = np.flatnonzero(flat[0] & (flat[1] < 2))
    keep = np.zeros(len(flat[0]), bool)
    if len(ranked) <= self.models:
      keep[ranked] = True
    else:
      order = ranked[np.lexsort((flat[3][ranked], flat[2][ranked], flat[1][ranked]))]
      kth = order[self.models - 1]
      lost_k, nan_k, bad_k = flat[1][kth], flat[2][kth], flat[3][kth]
      # pandas and numpy may sum a mean's seeds in another order: each mean
      # of S float64 values is then off by at most S ulps of the largest.
      tolerance = (
        4 * self.seeds * np.finfo(np.float64).eps * (np.abs(bad_k) + np.abs(flat[3][ranked]))
      )
      same = (flat[1][ranked] == lost_k) & (flat[2][ranked] == nan_k)
      before = (flat[1][ranked] < lost_k) | (
        (flat[1][ranked] == lost_k) & (flat[2][ranked] < nan_k)
      )
      keep[ranked] = before | (same & (nan_k | (flat[3][ranked] <= bad_k + tolerance)))
    return complete, np.split(keep & flat[0], cuts)

  def finish(self, result: results.SweepResult) -> results.SweepResult:
    """``result`` with its :attr:`~momentum_jax.results.SweepResult.models` and the manifest's.

    The models are the K best configurations by the summary's ranking (the
    finished ones, with a scheduler); the manifest's ``models`` names their
    runs (:func:`momentum_jax._models.manifest_record`).
    """
    models = self._best(result.summary)
    return dataclasses.replace(
      result,
      models=models,
      manifest=dataclasses.replace(result.manifest, models=manifest_record(models)),
    )

  def _best(self, summary: pd.DataFrame) -> list[KeptModel]:
    """The K best configurations of ``summary``, with their held states."""
    frame = summary
    if "stopped_at_step" in frame.columns:
      frame = frame[frame["stopped_at_step"] == self.steps]
    if frame.empty:
      return []
    ranked = results.rank_configurations(frame, n=self.models, by=self.metric)
    keys = results.setting_columns(frame)
    matched = frame.merge(ranked[keys].assign(_rank=np.arange(len(ranked))), on=keys)
    hyper = results.hyperparameter_columns(frame)
    metrics = results.metric_columns(frame)
    kept = []
    for rank, best in ranked.iterrows():
      runs = matched[matched["_rank"] == rank].sort_values("config_id")
      states = [self._state(int(config_id)) for config_id in runs["config_id"]]
      first = runs.iloc[0]
      kept.append(
        KeptModel(
          rank=int(rank),
          optimizer=str(first["optimizer"]),
          hyperparameters={c: float(first[c]) for c in hyper if pd.notna(first[c])},
          metric=self.metric,
          mean=float(best[f"{self.metric}_mean"]),
          runs=[
            {
              "config_id": int(run["config_id"]),
              "seed": int(run["seed"]),
              "diverged": bool(run["diverged"]),
              "metrics": {m: float(run[m]) for m in metrics},
            }
            for _, run in runs.iterrows()
          ],
          states=states,
        )
      )
    return kept

  def _state(self, config_id: int) -> dict[str, np.ndarray]:
    group = int(np.searchsorted(self.offsets, config_id, side="right")) - 1
    row = config_id - int(self.offsets[group])
    if (group, row) not in self.held:
      raise RuntimeError(
        f"internal error: configuration {config_id} is among the kept but "
        "its trained state was not held"
      )
    return self.held[group, row]
