"""A sweep where users watch their runs: TensorBoard, MLflow, Weights & Biases.

:func:`export` writes a finished sweep's folder to a tracker
(``momentum-jax export DIR --to tensorboard|mlflow|wandb``); :class:`LiveLog`
logs a running sweep's configurations as they train
(``momentum-jax sweep CONFIG --log-to tensorboard,mlflow``): their curves so
far at each segment boundary, through :func:`momentum_jax.sweep.run`'s
``on_segment``, and the rest as their batch ends, through its ``on_rows``;
each step once. Each tracker is an optional
extra of the package (``pip install 'momentum_jax[tensorboard]'``, ``[mlflow]``,
``[wandb]``); without it, a :class:`MissingExtraError` names the extra.

A tracker is a :class:`~momentum_jax.report.exports._common.Tracker` taking
``(out_dir, sweep_name, uri, live)``, with ``log(result, ended)`` (the new steps of
every configuration of a :class:`~momentum_jax.results.SweepResult`; their
runs ended if ``ended``), ``close(out_dir)`` (what belongs to the whole sweep:
MLflow's figures) and ``where()`` (a line saying where to look): see each
module.
"""

from __future__ import annotations

import difflib
import os
from typing import Sequence

from momentum_jax.report.exports._common import Configuration, MissingExtraError, configurations
from momentum_jax.report.exports._mlflow import MLflow
from momentum_jax.report.exports._tensorboard import TensorBoard
from momentum_jax.report.exports._wandb import WandB
from momentum_jax.results import SweepResult, load_results

TRACKERS = {"tensorboard": TensorBoard, "mlflow": MLflow, "wandb": WandB}

__all__ = [
  "TRACKERS",
  "Configuration",
  "LiveLog",
  "MLflow",
  "MissingExtraError",
  "TensorBoard",
  "WandB",
  "configurations",
  "export",
  "tracker_names",
]


def tracker_names(text: str | Sequence[str]) -> list[str]:
  """Tracker names from ``"tensorboard,mlflow"`` or a list, checked, repeats dropped.

  Raises:
    ValueError: For a name that is no tracker (with the closest one).
  """
  names = text.split(",") if isinstance(text, str) else list(text)
  found = []
  for name in (n.strip().lower() for n in names):
    if name not in TRACKERS:
      close = difflib.get_close_matches(name, TRACKERS, n=1)
      hint = f"; did you mean {close[0]!r}?" if close else ""
      raise ValueError(f"unknown tracker {name!r}: one of {', '.join(TRACKERS)}{hint}")
    if name not in found:
      found.append(name)
  return found


def _open(names: list[str], out_dir, sweep_name: str, uri: str | None, live=False) -> list:
  if uri is not None and "mlflow" not in names:
    raise ValueError(
      "--uri is MLflow's tracking URI: TensorBoard writes under "
      f"{os.path.join(out_dir, 'tensorboard')}, W&B under "
      f"{os.path.join(out_dir, 'wandb')}"
    )
  return [
    TRACKERS[name](out_dir, sweep_name, uri if name == "mlflow" else None, live) for name in names
  ]


def export(out_dir: str | os.PathLike, to: str, uri: str | None = None) -> str:
  """Writes the finished sweep in ``out_dir`` to the tracker ``to``; a line saying where.

  Args:
    out_dir: The sweep's output folder (what :func:`~momentum_jax.results.load_results`
      reads; MLflow's artifacts are its figures and report).
    to: ``"tensorboard"``, ``"mlflow"`` or ``"wandb"``.
    uri: MLflow's tracking URI (default: ``out_dir/mlflow.db``).

  Raises:
    FileNotFoundError: If ``out_dir`` holds no complete sweep result.
    MissingExtraError: If the tracker's package is not installed.
    ValueError: For an unknown tracker, or ``uri`` given to another tracker.
  """
  (name,) = tracker_names([to])
  result = load_results(out_dir)
  (tracker,) = _open([name], out_dir, result.manifest.name or os.path.basename(out_dir), uri)
  tracker.log(result)
  tracker.close(out_dir)
  return tracker.where()


class LiveLog:
  """Logs a running sweep's configurations to trackers as they train.

  Pass it as :func:`momentum_jax.sweep.run`'s ``on_rows`` and its
  :meth:`segment` as ``on_segment``; call :meth:`close` once the sweep's
  figures are written (MLflow attaches them). A resumed sweep's unfinished
  batch logs again from its first step: TensorBoard replaces the steps the
  killed run wrote; MLflow and W&B start new runs (the killed run's stay
  unfinished).

  Args:
    names: Tracker names (see :func:`tracker_names`).
    out_dir: The sweep's output folder.
    sweep_name: The sweep's name (MLflow's experiment, W&B's group).
    uri: MLflow's tracking URI (default ``out_dir/mlflow.db``).
  """

  def __init__(
    self,
    names: str | Sequence[str],
    out_dir: str | os.PathLike,
    sweep_name: str,
    uri: str | None = None,
  ):
    self.trackers = _open(tracker_names(names), out_dir, sweep_name, uri, live=True)

  def __call__(self, batch: SweepResult) -> None:
    """A batch's ended rows: their steps not yet logged, and their runs ended."""
    for tracker in self.trackers:
      tracker.log(batch)

  def segment(self, rows: SweepResult) -> None:
    """A batch's rows still training, their curves so far: the new steps logged."""
    for tracker in self.trackers:
      tracker.log(rows, ended=False)

  def close(self, out_dir: str | os.PathLike) -> list[str]:
    """Ends every tracker's sweep; a line for each saying where to look."""
    for tracker in self.trackers:
      tracker.close(out_dir)
    return [tracker.where() for tracker in self.trackers]
