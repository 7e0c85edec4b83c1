"""Schedulers: which configurations continue after a rung (successive halving, Hyperband).

A scheduler sees only numbers: after a rung, each row's value of the
ranked metric and whether it diverged; it answers with the rows that
continue. It never touches a device or a compiled program (the engine
re-packs the survivors, see :mod:`momentum_jax.sweep._scheduled`).

Rows come as the engine lays a group out: the seeds of one hyperparameter
setting adjacent, the seed varying fastest. A setting is ranked by the mean
of its seeds' values, and its seeds continue or stop together.

References:
  Jamieson & Talwalkar, "Non-stochastic best arm identification and
  hyperparameter optimization", AISTATS 2016 (successive halving).
  Li, Jamieson, DeSalvo, Rostamizadeh & Talwalkar, "Hyperband: a novel
  bandit-based approach to hyperparameter optimization", JMLR 2018.
"""

from __future__ import annotations

import dataclasses

import numpy as np


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
    kept = np.sort([s for s in best[:max(1, len(score) // self.eta)] if not out[s]])
    return (np.asarray(kept, np.int64)[:, None] * seeds + np.arange(seeds)).reshape(-1)


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
    return [(-(-(s_max + 1) * self.eta ** s // (s + 1)),
             SuccessiveHalving(self.eta, self.min_steps * self.eta ** (s_max - s), self.maximize))
            for s in range(s_max, -1, -1)]

  def split(self, settings: int, total_steps: int, seed: int = 0
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
    for index in np.argsort(-(share - counts), kind="stable")[:settings - counts.sum()]:
      counts[index] += 1
    order = np.random.default_rng(seed).permutation(settings)
    cuts = np.split(order, np.cumsum(counts)[:-1])
    return [(np.sort(cut), halving) for cut, (_, halving) in zip(cuts, brackets) if len(cut)]
