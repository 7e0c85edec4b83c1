"""What a strategy answers, checked before the loop acts on it.

A strategy is code a user may write (``search.method: package.module:Class``):
a batch that repeats a row, boundaries the segments cannot stop at, or an
exploit from a row that is not training would otherwise train the wrong rows
silently or fail deep in the engine. Each check raises a ``ValueError`` that
names the strategy, the method and what to change.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from momentum_jax.runtime import files
from momentum_jax.sweep.strategies import Batch, Exploit


def _name(strategy: Any, method: str) -> str:
  return f"{type(strategy).__name__}.{method}"


def check_batch(strategy: Any, batch: Any, rows: int, names: list[str], ended: np.ndarray) -> None:
  """A batch of distinct rows of the group, ascending, none trained before, with a value
  of every hyperparameter and a seed per row."""
  where = _name(strategy, "ask")
  if not isinstance(batch, Batch):
    raise ValueError(f"{where} returned {batch!r}: a Batch, or None when the search is done")
  asked = np.asarray(batch.rows)
  if asked.ndim != 1 or not len(asked) or not np.issubdtype(asked.dtype, np.integer):
    raise ValueError(f"{where}: rows must be a non-empty 1-D array of row numbers, got {asked!r}")
  if np.any(np.diff(asked) <= 0) or asked[0] < 0 or asked[-1] >= rows:
    raise ValueError(
      f"{where}: rows must be distinct, ascending and in [0, {rows}), got {asked.tolist()[:10]}"
    )
  again = asked[ended[asked]]
  if len(again):
    raise ValueError(f"{where}: rows {again.tolist()[:10]} were trained already")
  if sorted(batch.values) != sorted(names):
    raise ValueError(
      f"{where}: values must name the group's hyperparameters {sorted(names)}, "
      f"got {sorted(batch.values)}"
    )
  for name, value in [*batch.values.items(), ("seeds", batch.seeds)]:
    if np.shape(value) != asked.shape:
      raise ValueError(
        f"{where}: {name} has shape {np.shape(value)}, one per row {asked.shape} wanted"
      )
  _json(f"{where}: the batch's tag", batch.tag)


def _json(what: str, value: Any) -> Any:
  """``value`` as JSON reads it back (what a saved sweep holds); a ValueError if it is not."""
  try:
    return json.loads(json.dumps(files.jsonable(value)))
  except (TypeError, ValueError) as error:
    raise ValueError(f"{what} must be JSON-able (saved to resume the sweep): {error}") from None


def checked_state(strategy: Any) -> dict[str, Any]:
  """``strategy.state()``, checked to be JSON-able."""
  return _json(f"{_name(strategy, 'state')}()", strategy.state())


def check_boundaries(strategy: Any, boundaries: list[int], steps: int, segment: int) -> None:
  """Ascending steps, each a multiple of the segment's steps, the last the training's last."""
  where = _name(strategy, "boundaries")
  found = [int(b) for b in boundaries]
  if not found or found[-1] != steps or any(b <= a for a, b in zip(found, found[1:])):
    raise ValueError(
      f"{where} returned {found}: ascending steps ending at train.steps ({steps}) wanted"
    )
  off = [b for b in found if b % segment]
  if off:
    raise ValueError(
      f"{where} returned {off}, not multiples of {segment} steps (a segment): "
      "say the steps between your boundaries in intervals() so that segments "
      "are cut to divide them"
    )


def check_exploit(strategy: Any, decision: Exploit, live: np.ndarray, names: list[str]) -> None:
  """Sources among the rows training, one per row, and every hyperparameter's new values."""
  where = _name(strategy, "observe")
  sources = np.asarray(decision.sources)
  if sources.shape != live.shape or not np.isin(sources, live).all():
    raise ValueError(
      f"{where}: Exploit.sources must give, for each of the {len(live)} rows "
      "still training (scores.rows), a row still training"
    )
  if sorted(decision.values) != sorted(names) or any(
    np.shape(v) != live.shape for v in decision.values.values()
  ):
    raise ValueError(
      f"{where}: Exploit.values must give each of {sorted(names)} a value per "
      f"row still training ({len(live)})"
    )
