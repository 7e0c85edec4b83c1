"""Successive halving and Hyperband: schedulers that stop a proposer's configurations early.

A scheduler wraps the strategy that proposes the points (grid, random,
quasi-random, Optuna): it asks it for a batch, shares the batch's settings
among its brackets, and trains each bracket rung by rung: after each rung
the best ``1/eta`` of the settings continue, the others stop (their later
logs NaN, ``stopped_at_step`` their rung). The proposer sees each rung's
scores (Optuna reports them to its trials) and is told each bracket's
outcome (a stopped trial is pruned).

A setting is ranked by the mean of its seeds' values of the metric, and its
seeds continue or stop together.

References:
  Jamieson & Talwalkar, "Non-stochastic best arm identification and
  hyperparameter optimization", AISTATS 2016 (successive halving).
  Li, Jamieson, DeSalvo, Rostamizadeh & Talwalkar, "Hyperband: a novel
  bandit-based approach to hyperparameter optimization", JMLR 2018.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from momentum_jax.sweep.strategies._base import Batch, Continue, Outcome, Scores, Stop, Strategy


@dataclasses.dataclass(frozen=True)
class SuccessiveHalving:
  """Train every setting to ``min_steps``, keep the best ``max(1, n // eta)``, repeat.

  Rungs are at ``min_steps · eta^i`` below ``total_steps``, and at
  ``total_steps``. A setting one of whose seeds diverged never continues;
  a NaN mean ranks last.

  Attributes:
    eta: The reduction factor, >= 2.
    min_steps: The first rung.
    maximize: Whether a higher value of the metric is better (accuracies).
  """

  eta: int
  min_steps: int
  maximize: bool = False

  def rungs(self, total_steps: int) -> list[int]:
    """The steps after which the settings are ranked; the last is ``total_steps``.

    >>> SuccessiveHalving(eta=3, min_steps=10).rungs(100)
    [10, 30, 90, 100]
    """
    rungs, step = [], self.min_steps
    while step < total_steps:
      rungs.append(step)
      step *= self.eta
    return [*rungs, total_steps]

  def survivors(self, values: np.ndarray, diverged: np.ndarray, seeds: int = 1) -> np.ndarray:
    """The rows that continue past a rung, in their order.

    Args:
      values: The metric of each row, shape ``[settings × seeds]``.
      diverged: Whether each row has diverged, same shape.
      seeds: Rows per setting (adjacent).

    Returns:
      Row indices, ascending: every seed of the best ``max(1, n // eta)`` of
      the ``n`` settings by their mean, less any that diverged.
    """
    values = np.asarray(values, np.float64).reshape(-1, seeds)
    out = np.asarray(diverged, bool).reshape(-1, seeds).any(axis=1)
    with np.errstate(invalid="ignore"):
      score = -values.mean(axis=1) if self.maximize else values.mean(axis=1)
    score = np.where(np.isnan(score), np.inf, score)
    best = np.argsort(np.where(out, np.inf, score), kind="stable")
    kept = np.sort([s for s in best[: max(1, len(score) // self.eta)] if not out[s]])
    return (np.asarray(kept, np.int64)[:, None] * seeds + np.arange(seeds)).reshape(-1)

  def planned(self, settings: int, total_steps: int) -> list[tuple[int, int]]:
    """``(rung, settings trained to it)`` when none diverges."""
    planned, alive = [], settings
    for rung in self.rungs(total_steps):
      planned.append((rung, alive))
      alive = max(1, alive // self.eta)
    return planned


@dataclasses.dataclass(frozen=True)
class Hyperband:
  """Brackets of successive halving, from many settings trained briefly to few trained fully.

  With ``s_max = floor(log_eta(total_steps / min_steps))``, bracket ``s``
  (``s_max`` down to 0) starts ``n_s = ceil((s_max + 1) / (s + 1) · eta^s)``
  settings at ``min_steps · eta^(s_max - s)`` steps (``total_steps ·
  eta^-s`` when ``total_steps / min_steps`` is a power of ``eta``; otherwise
  its last interval stretches to ``total_steps``, keeping every rung a
  multiple of ``min_steps``).

  Attributes:
    eta: The reduction factor, >= 2.
    min_steps: The first rung of the most aggressive bracket.
    maximize: Whether a higher value of the metric is better.
  """

  eta: int
  min_steps: int
  maximize: bool = False

  def brackets(self, total_steps: int) -> list[tuple[int, SuccessiveHalving]]:
    """``(n_s, its successive halving)`` for ``s = s_max, …, 0``, as Li et al. define them."""
    s_max = 0
    while self.min_steps * self.eta ** (s_max + 1) <= total_steps:
      s_max += 1
    return [
      (
        -(-(s_max + 1) * self.eta**s // (s + 1)),
        SuccessiveHalving(self.eta, self.min_steps * self.eta ** (s_max - s), self.maximize),
      )
      for s in range(s_max, -1, -1)
    ]

  def split(
    self, settings: int, total_steps: int, seed: int = 0
  ) -> list[tuple[np.ndarray, SuccessiveHalving]]:
    """A group's settings shared out among the brackets, in proportion to their ``n_s``.

    Exactly ``n_s`` each when ``settings`` is their sum. Which setting goes
    where is a permutation drawn from ``seed``, so that no bracket gets one
    end of a grid. A bracket left with no setting is dropped.

    Returns:
      ``(setting indices, ascending, its successive halving)`` per bracket.
    """
    brackets = self.brackets(total_steps)
    wanted = np.array([n for n, _ in brackets], np.float64)
    share = wanted / wanted.sum() * settings
    counts = np.floor(share).astype(np.int64)
    # Largest remainders first, ties to the earlier (more aggressive) bracket.
    for index in np.argsort(-(share - counts), kind="stable")[: settings - counts.sum()]:
      counts[index] += 1
    order = np.random.default_rng(seed).permutation(settings)
    cuts = np.split(order, np.cumsum(counts)[:-1])
    return [(np.sort(cut), halving) for cut, (_, halving) in zip(cuts, brackets) if len(cut)]


class Scheduler(Strategy):
  """Successive halving (one bracket) or Hyperband (several) over a proposer's batches.

  Args:
    context: The group's :class:`~momentum_jax.sweep.strategies.Context`;
      its ``options`` are the scheduler's spec (``name``, ``eta``,
      ``min_steps``), its ``metric`` the one ranked.
    proposer: The strategy whose batches it schedules.
  """

  def __init__(self, context, proposer: Strategy):
    self.context, self.proposer = context, proposer
    spec = context.options
    self.hyperband = spec.name == "hyperband"
    self.eta, self.min_steps = spec.eta, spec.min_steps
    self._queue: list[dict[str, Any]] = []  # brackets asked, not yet trained
    self._brackets: list[dict[str, Any]] = []  # each trained bracket's record
    self._number = 0

  def _halvings(self, settings: int) -> list[tuple[np.ndarray, SuccessiveHalving]]:
    maximize = self.context.maximize
    if not self.hyperband:
      return [(np.arange(settings), SuccessiveHalving(self.eta, self.min_steps, maximize))]
    return Hyperband(self.eta, self.min_steps, maximize).split(
      settings, self.context.steps, self.context.seed
    )

  def _halving(self, batch: Batch) -> SuccessiveHalving:
    return SuccessiveHalving(self.eta, batch.tag["min_steps"], self.context.maximize)

  def rows_at_once(self, chunk: int) -> int:
    # The settings of a batch are ranked together: a grid's whole group.
    return self.proposer.rows_at_once(len(self.context.seeds))

  def ask(self, capacity: int) -> Batch | None:
    if not self._queue:
      batch = self.proposer.ask(capacity)
      if batch is None:
        return None
      seeds = self.context.seeds_per_setting
      for settings, halving in self._halvings(len(batch.rows) // seeds):
        at = (settings[:, None] * seeds + np.arange(seeds)).reshape(-1)
        self._queue.append(
          {
            "rows": batch.rows[at].tolist(),
            "values": {n: v[at].tolist() for n, v in batch.values.items()},
            "seeds": batch.seeds[at].tolist(),
            "tag": {
              "proposed": batch.number,
              "proposer_tag": batch.tag,
              "min_steps": halving.min_steps,
            },
          }
        )
    bracket = self._queue.pop(0)
    self._number += 1
    return Batch.from_record({**bracket, "number": self._number - 1})

  def boundaries(self, batch: Batch) -> list[int]:
    return self._halving(batch).rungs(self.context.steps)

  def observe(self, batch: Batch, scores: Scores):
    self.proposer.observe(self._proposed(batch), scores)
    going = self._halving(batch).survivors(
      scores.metric(self.context.metric), scores.diverged, self.context.seeds_per_setting
    )
    stopping = np.setdiff1d(np.arange(len(scores.rows)), going)
    return Stop(scores.rows[stopping]) if len(stopping) else Continue()

  def _proposed(self, batch: Batch) -> Batch:
    """The bracket as its proposer's batch (its number and tag)."""
    return dataclasses.replace(batch, number=batch.tag["proposed"], tag=batch.tag["proposer_tag"])

  def tell(self, batch: Batch, outcome: Outcome) -> None:
    rungs = self.boundaries(batch)
    stopped = np.asarray(outcome.stopped_at_step)
    # Rows trained to each rung: those that stopped there or later; 0 past the last reached.
    sizes = [int(np.sum(stopped >= rung)) for rung in rungs]
    spent = sum(n * (rung - start) for n, rung, start in zip(sizes, rungs, [0, *rungs[:-1]]))
    self._brackets.append(
      {"rungs": rungs, "sizes": sizes, "widths": list(outcome.widths), "config_steps": spent}
    )
    self.proposer.tell(self._proposed(batch), outcome)

  def state(self) -> dict[str, Any]:
    return {
      "queue": self._queue,
      "brackets": self._brackets,
      "number": self._number,
      "proposer": self.proposer.state(),
    }

  def restore(self, state: Mapping[str, Any]) -> None:
    self._queue, self._brackets = list(state["queue"]), list(state["brackets"])
    self._number = int(state["number"])
    self.proposer.restore(state["proposer"])

  def planned(self, capacity: int) -> list[list[int]]:
    seeds = self.context.seeds_per_setting
    planned = []
    for batch in self.proposer.planned(capacity):
      for settings, halving in self._halvings(batch[0] // seeds):
        planned.append([n * seeds for _, n in halving.planned(len(settings), self.context.steps)])
    return planned

  def planned_config_steps(self) -> int:
    total = 0
    for sizes, (_, halving) in zip(
      self.planned(len(self.context.seeds)),
      self._halvings(len(self.context.seeds) // self.context.seeds_per_setting),
    ):
      rungs = halving.rungs(self.context.steps)
      total += sum(
        rows * (rung - start) for rows, rung, start in zip(sizes, rungs, [0, *rungs[:-1]])
      )
    return total

  def intervals(self) -> list[int]:
    found = set()
    for _, halving in self._halvings(len(self.context.seeds) // self.context.seeds_per_setting):
      rungs = [0, *halving.rungs(self.context.steps)]
      found.update(b - a for a, b in zip(rungs[:-1], rungs[1:]))
    return sorted(found | set(self.proposer.intervals()))

  def columns(self, outcomes: Mapping[str, np.ndarray]) -> dict[str, Any]:
    return {**self.proposer.columns(outcomes), "stopped_at_step": outcomes["stopped_at_step"]}

  def record(self, manifest: dict[str, Any]) -> dict[str, Any]:
    manifest = self.proposer.record(manifest)
    spec = self.context.options
    scheduler = manifest.get("scheduler") or {
      **spec.record(),
      "metric": self.context.metric,
      "groups": {},
      "config_steps": 0,
      "config_steps_full": 0,
    }
    scheduler["groups"][self.context.label] = self._brackets
    scheduler["config_steps"] += sum(b["config_steps"] for b in self._brackets)
    scheduler["config_steps_full"] += len(self.context.seeds) * self.context.steps
    if not self.hyperband:
      scheduler["rungs"] = SuccessiveHalving(self.eta, self.min_steps).rungs(self.context.steps)
      scheduler.setdefault("sizes", {})[self.context.label] = self._brackets[0]["sizes"]
    return {**manifest, "scheduler": scheduler}
