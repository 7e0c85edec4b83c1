"""Grid, random and quasi-random search: the group's rows, drawn before training, in order.

The grid's product, or the points of the ranges a random or quasi-random
search draws (:mod:`momentum_jax.sweep._space`), crossed with the seeds, are
the group's rows (:func:`momentum_jax.sweep._plan.groups`); this strategy
hands them out in batches of the engine's chunk size and decides nothing.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from momentum_jax.sweep.strategies._base import Batch, Strategy


class Rows(Strategy):
  """Every planned row, ``capacity`` at a time, in order."""

  def __init__(self, context):
    self.context = context
    self._next = 0
    self._batches = 0

  def ask(self, capacity: int) -> Batch | None:
    total = len(self.context.seeds)
    if self._next >= total:
      return None
    rows = np.arange(self._next, min(total, self._next + capacity))
    self._next = int(rows[-1]) + 1
    self._batches += 1
    return Batch(rows, {n: v[rows] for n, v in self.context.values.items()},
                 self.context.seeds[rows], self._batches - 1)

  def planned(self, capacity: int) -> list[list[int]]:
    # Full chunks; the short last one trains in their program (no second compilation).
    return [[min(capacity, len(self.context.seeds))]]

  def state(self) -> dict[str, Any]:
    return {"next": self._next, "batches": self._batches}

  def restore(self, state: Mapping[str, Any]) -> None:
    self._next, self._batches = int(state["next"]), int(state["batches"])
