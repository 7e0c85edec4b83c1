"""Search strategies: one module per method, found by name in one registry.

A strategy (:class:`Strategy`) proposes the configurations of one optimizer
group and decides, between segments, which stop and which copy which; the
engine's one segment loop (:mod:`momentum_jax.sweep._loop`) trains what it
asks and applies what it decides. ``search.method`` names a proposer:
``grid``, ``random``, ``quasirandom`` (:mod:`.rows`), ``optuna``
(:mod:`.optuna`), ``pbt`` (:mod:`.pbt`), or ``package.module:Class``, a
user's own :class:`Strategy` subclass, built as ``Class(context)``;
``search.scheduler`` wraps the proposer in successive halving or Hyperband
(:mod:`.halving`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import numpy as np

from momentum_jax.sweep.strategies._base import (
    Batch, Continue, Decision, Exploit, Outcome, Scores, Stop, Strategy, metric_at)
from momentum_jax.sweep.strategies.rows import Rows


@dataclasses.dataclass(frozen=True)
class Context:
  """What a strategy knows of its group, built by the engine.

  Attributes:
    label: The group's label (its optimizer and fixed values).
    index: The group's position among the config's groups.
    first: The group's first ``config_id`` in the sweep.
    values: Hyperparameter name -> each planned row's value, ``[rows]``
      (Optuna's rows hold placeholders until asked).
    seeds: Each row's seed, ``[rows]``.
    seeds_per_setting: Rows per hyperparameter setting (adjacent).
    steps: Training steps.
    log_every: Steps between two logs (a boundary is a logged step).
    metric: The summary metric it ranks by (``final_loss``, ``val_loss``, ...).
    maximize: Whether a higher ``metric`` is better.
    ranges: The ranges the group's sampled hyperparameters come from.
    options: The strategy's own section of the config (a scheduler's spec,
      pbt's, the search's; for a user's strategy the ``search:`` mapping).
    seed: The search's seed.
    group_spec: The group's :class:`~momentum_jax.sweep.OptimizerSpec`.
    storage_name: Where a strategy's own record lives in the output folder, if anywhere.
  """

  label: str
  index: int
  first: int
  values: Mapping[str, np.ndarray]
  seeds: np.ndarray
  seeds_per_setting: int
  steps: int
  log_every: int
  metric: str
  maximize: bool
  ranges: Mapping[str, Any]
  options: Any
  seed: int = 0
  group_spec: Any = None
  storage_name: str | None = None


def _rows(context: Context, shared: dict[str, Any]) -> Strategy:
  return Rows(context)


def _pbt(context: Context, shared: dict[str, Any]) -> Strategy:
  from momentum_jax.sweep.strategies.pbt import PopulationBased
  return PopulationBased(context)


def _optuna(context: Context, shared: dict[str, Any]) -> Strategy:
  from momentum_jax.sweep.strategies.optuna import OptunaSearch
  return OptunaSearch(context, shared["optuna_storage"]())


# search.method -> a factory ``(context, shared) -> Strategy``; ``shared`` holds what the
# groups of one sweep share (Optuna's storage, opened once).
METHODS: dict[str, Callable[[Context, dict[str, Any]], Strategy]] = {
    "grid": _rows, "random": _rows, "quasirandom": _rows, "optuna": _optuna, "pbt": _pbt,
}


def scheduled(context: Context, proposer: Strategy) -> Strategy:
  """``proposer`` under the scheduler ``context.options`` (successive halving, Hyperband)."""
  from momentum_jax.sweep.strategies.halving import Scheduler
  return Scheduler(context, proposer)


__all__ = ["METHODS", "Batch", "Context", "Continue", "Decision", "Exploit", "Outcome", "Rows",
           "Scores", "Stop", "Strategy", "metric_at", "scheduled"]
