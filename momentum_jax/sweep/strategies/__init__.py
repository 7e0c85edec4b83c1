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
  Batch,
  Continue,
  Decision,
  Exploit,
  Outcome,
  Scores,
  Stop,
  Strategy,
  metric_at,
)
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
    out_dir: The sweep's output folder (where a strategy may keep its own files), or ``None``.
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
  out_dir: Any = None


def _rows(context: Context, shared: dict[str, Any]) -> Strategy:
  return Rows(context)


def _pbt(context: Context, shared: dict[str, Any]) -> Strategy:
  from momentum_jax.sweep.strategies.pbt import PopulationBased

  return PopulationBased(context)


def _optuna(context: Context, shared: dict[str, Any]) -> Strategy:
  from momentum_jax.sweep.strategies import _optuna_study as _optuna
  from momentum_jax.sweep.strategies.optuna import OptunaSearch

  if "optuna_storage" not in shared:  # opened once per sweep (a fresh one clears the journal)
    shared["optuna_storage"] = _optuna.storage(context.out_dir, shared["fresh"])
  return OptunaSearch(context, shared["optuna_storage"])


@dataclasses.dataclass(frozen=True)
class Method:
  """A search method: how its strategy is built, and what the engine checks before it runs.

  Attributes:
    build: ``(context, shared) -> Strategy`` per group; ``shared`` holds what the
      groups of one sweep share (Optuna's storage, opened once).
    options: The strategy's ``Context.options`` from the search's spec.
    metric: Its own metric from the spec (``None``: the default, a loss the problem logs).
    metric_path: Where that metric is written in the config.
    together: ``(spec, rows, seeds) ->`` rows of a group trained together, ``None``
      when free (the engine's chunk size).
    held: The config path and the advice of the error when those rows do not fit.
    one_process: Whether it runs on one process only.
    reseeds: Whether a finished search of it may take more seeds (its rows are renumbered:
      a search that asks or ranks as it trains cannot take that up).
  """

  build: Callable[[Context, dict[str, Any]], Strategy]
  options: Callable[[Any], Any] = lambda spec: spec
  metric: Callable[[Any], str | None] = lambda spec: None
  metric_path: str = "search.metric"
  together: Callable[[Any, int, int], int | None] = lambda spec, rows, seeds: None
  held: tuple[str, str] = ("search.scheduler", "sample fewer, or drop the scheduler")
  one_process: bool = False
  reseeds: bool = False


_WHOLE = lambda spec, rows, seeds: rows  # noqa: E731  (ranked together)

# search.method -> its Method.
METHODS: dict[str, Method] = {
  "grid": Method(_rows, reseeds=True),
  "random": Method(_rows, reseeds=True),
  "quasirandom": Method(_rows, reseeds=True),
  "optuna": Method(
    _optuna,
    metric=lambda spec: spec.metric,
    together=lambda spec, rows, seeds: min(rows, spec.batch * seeds),
    held=("search.batch", "ask fewer trials at once"),
    one_process=True,
  ),
  "pbt": Method(
    _pbt,
    options=lambda spec: spec.pbt,
    metric=lambda spec: spec.pbt.metric,
    together=_WHOLE,
    held=("search.population", "a smaller population, or fewer seeds or list values"),
  ),
}

# Files of the output folder a strategy keeps (removed with the sweep by --overwrite).
OWN_FILES = ("optuna.journal",)


def method(spec) -> Method:
  """The search spec's method: a registered one, or a user's ``Strategy`` class (its path)."""
  if spec.strategy is None:
    return METHODS[spec.method]
  return Method(
    lambda context, shared: spec.strategy(context),
    options=lambda s: s.options,
    metric=lambda s: s.metric,
    metric_path="search.options.metric",
    together=_WHOLE,
    held=("search.method", "fewer seeds or list values"),
  )


def scheduled(context: Context, proposer: Strategy) -> Strategy:
  """``proposer`` under the scheduler ``context.options`` (successive halving, Hyperband)."""
  from momentum_jax.sweep.strategies.halving import Scheduler

  return Scheduler(context, proposer)


__all__ = [
  "METHODS",
  "Method",
  "OWN_FILES",
  "method",
  "Batch",
  "Context",
  "Continue",
  "Decision",
  "Exploit",
  "Outcome",
  "Rows",
  "Scores",
  "Stop",
  "Strategy",
  "metric_at",
  "scheduled",
]
