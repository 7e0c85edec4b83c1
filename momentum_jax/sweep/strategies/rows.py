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
  """Every planned row, ``capacity`` at a time, in order; a row told is never asked again.

  (Told rows count as asked: a sweep whose seeds were added renumbers its
  saved rows and tells them anew, and the new seeds' rows are asked.)
  """

  def __init__(self, context):
    self.context = context
    self._asked = np.zeros(len(context.seeds), bool)
    self._batches = 0

  def ask(self, capacity: int) -> Batch | None:
    rows = np.flatnonzero(~self._asked)[:capacity]
    if not len(rows):
      return None
    self._asked[rows] = True
    self._batches += 1
    return Batch(
      rows,
      {n: v[rows] for n, v in self.context.values.items()},
      self.context.seeds[rows],
      self._batches - 1,
    )

  def tell(self, batch: Batch, outcome) -> None:
    self._asked[batch.rows] = True
    self._batches = max(self._batches, batch.number + 1)

  def planned(self, capacity: int) -> list[list[int]]:
    # Full chunks; the short last one trains in their program (no second compilation).
    return [[min(capacity, len(self.context.seeds))]]

  def state(self) -> dict[str, Any]:
    # The rows asked, as runs [first, end): a plain sweep's are one run.
    edges = np.flatnonzero(np.diff(np.concatenate([[0], self._asked.astype(np.int8), [0]])))
    return {"asked": edges.reshape(-1, 2).tolist(), "batches": self._batches}

  def restore(self, state: Mapping[str, Any]) -> None:
    self._asked[:] = False
    for first, end in state["asked"]:
      self._asked[first:end] = True
    self._batches = int(state["batches"])
