"""The seam between a search and the engine: a strategy sees numbers and answers with decisions.

One strategy runs each optimizer group. The engine's one segment loop
(:mod:`momentum_jax.sweep._loop`) asks it for a :class:`Batch` of
configurations, trains the batch in one compiled program to each step
:meth:`Strategy.boundaries` names, hands it the :class:`Scores` there and
applies what :meth:`Strategy.observe` answers:

- :class:`Continue`: train on;
- :class:`Stop`: these rows stop here (their later logs NaN, their
  ``stopped_at_step`` this step); the others are gathered into a narrower
  chunk;
- :class:`Exploit`: each row continues from the training state of row
  ``sources[i]``, with the hyperparameters ``values`` (population-based
  training).

When the batch has trained (or every row stopped) and its rows are saved,
:meth:`Strategy.tell` gets its :class:`Outcome`. A strategy never touches a
device, a compiled program or a file of the sweep: it is plain numpy, so
it is tested alone, and a sweep saves :meth:`Strategy.state` beside the
training state (JSON) and resumes it with :meth:`Strategy.restore`.

Rows are the group's configurations, numbered as the group lays them out:
the seeds of one hyperparameter setting adjacent, the seed varying fastest
(``row // seeds_per_setting`` is the setting). Ask Optuna users: ``ask`` and
``tell`` are Optuna's and evosax's; ``observe`` answers per batch, not per
trial as Ray Tune's ``on_trial_result`` does, because the rows of a batch
share one device carry and a decision is one gather on the devices.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np


@dataclasses.dataclass(frozen=True)
class Batch:
  """Configurations trained together, from step 0: the answer to :meth:`Strategy.ask`.

  Attributes:
    rows: The group's rows, shape ``[n]`` (whole settings, their seeds adjacent).
    values: Hyperparameter name -> each row's value, shape ``[n]``.
    seeds: Each row's seed, shape ``[n]``.
    number: The batch's position in the group's sequence (0, 1, ...).
    tag: Anything JSON-able the strategy wants back with the batch (which
      bracket, which trials); the engine saves it with the batch.
  """

  rows: np.ndarray
  values: Mapping[str, np.ndarray]
  seeds: np.ndarray
  number: int = 0
  tag: Any = None

  def record(self) -> dict[str, Any]:
    """The batch as JSON (what a saved sweep holds to resume it)."""
    return {
      "rows": self.rows.tolist(),
      "seeds": self.seeds.tolist(),
      "values": {n: np.asarray(v, np.float64).tolist() for n, v in self.values.items()},
      "number": self.number,
      "tag": self.tag,
    }

  @classmethod
  def from_record(cls, record: Mapping[str, Any]) -> Batch:
    return cls(
      np.asarray(record["rows"], np.int64),
      {n: np.asarray(v, np.float64) for n, v in record["values"].items()},
      np.asarray(record["seeds"], np.int64),
      record["number"],
      record["tag"],
    )


def metric_at(logged: Mapping[str, np.ndarray], metric: str, at: int) -> np.ndarray:
  """Each row's ``metric`` as the summary would give it after log ``at``.

  ``final_loss`` is the training loss logged there, ``best_loss`` the least
  (NaN ignored) up to there, any other name its logged value.
  """
  if metric == "final_loss":
    return np.asarray(logged["train_loss"])[:, at]
  if metric == "best_loss":
    losses = np.asarray(logged["train_loss"])[:, : at + 1]
    return np.min(np.where(np.isnan(losses), np.inf, losses), axis=1)
  return np.asarray(logged[metric])[:, at]


@dataclasses.dataclass(frozen=True)
class Scores:
  """What a strategy sees at a boundary: the rows still training and what they logged.

  Attributes:
    step: The step just trained to.
    rows: The batch's rows still training, shape ``[m]``.
    logged: Metric name -> ``[m, logs]``, every log so far (the last at ``step``).
    diverged: Whether each row has diverged, shape ``[m]``.
  """

  step: int
  rows: np.ndarray
  logged: Mapping[str, np.ndarray]
  diverged: np.ndarray

  def metric(self, name: str) -> np.ndarray:
    """Each row's summary metric ``name`` at this step (see :func:`metric_at`)."""
    return metric_at(self.logged, name, np.asarray(self.logged["train_loss"]).shape[1] - 1)


@dataclasses.dataclass(frozen=True)
class Outcome:
  """What a batch trained: each row's metrics, where it diverged and where it stopped.

  Attributes:
    rows: The batch's rows, shape ``[n]``, ascending.
    metrics: Metric name -> ``[n, logs]`` (NaN after a stop), and the
      metrics of the initial model, ``start_<name>`` -> ``[n]``.
    diverged_at_step: Shape ``[n]``, -1 for a row that did not diverge.
    stopped_at_step: Shape ``[n]``: the step each row stopped at (the
      training's last for a row that trained to the end).
    widths: How many configurations each device trained at once, to each
      boundary reached (for the record; results do not depend on it).
  """

  rows: np.ndarray
  metrics: Mapping[str, Any]
  diverged_at_step: np.ndarray
  stopped_at_step: np.ndarray
  widths: tuple[int, ...] = ()  # the engine's: the width it trained at to each boundary

  def metric(self, name: str) -> np.ndarray:
    """Each row's summary metric ``name`` at its last log."""
    return metric_at(self.metrics, name, np.asarray(self.metrics["train_loss"]).shape[1] - 1)


@dataclasses.dataclass(frozen=True)
class Continue:
  """Train every row on."""


@dataclasses.dataclass(frozen=True)
class Stop:
  """These rows (the group's numbering) stop here; the others train on."""

  rows: np.ndarray


@dataclasses.dataclass(frozen=True)
class Exploit:
  """Each row still training continues from row ``sources[i]``'s state, with ``values``.

  Attributes:
    sources: Shape ``[m]``, aligned with :attr:`Scores.rows`: the row (the
      group's numbering) whose training state row ``i`` takes; itself to keep its own.
    values: Hyperparameter name -> each row's value from now on, shape ``[m]``.
  """

  sources: np.ndarray
  values: Mapping[str, np.ndarray]


Decision = Continue | Stop | Exploit


class Strategy:
  """A search: what to train next, and what to do with configurations as they train.

  Subclass it and override what your search needs; the defaults train every
  batch to the end and decide nothing. A strategy is built per optimizer
  group with a :class:`~momentum_jax.sweep.strategies.Context` (the group's
  configurations, the training's length, the metric ranked and its
  direction, the ``search:`` options), see
  :func:`~momentum_jax.sweep.strategies.make`.
  """

  def ask(self, capacity: int) -> Batch | None:
    """The next configurations to train, at most ``capacity`` rows; ``None`` when done."""
    raise NotImplementedError

  def boundaries(self, batch: Batch) -> list[int]:
    """The steps after which :meth:`observe` is called; the last is the training's last."""
    return [self.context.steps]

  def observe(self, batch: Batch, scores: Scores) -> Decision:
    """What to do with the rows still training, given their scores at ``scores.step``."""
    return Continue()

  def tell(self, batch: Batch, outcome: Outcome) -> None:
    """The batch's final metrics, once its rows are saved."""

  def state(self) -> dict[str, Any]:
    """A JSON-able record of everything decided so far, random state included."""
    return {}

  def restore(self, state: Mapping[str, Any]) -> None:
    """Continues from :meth:`state`'s record (a resumed sweep)."""

  def rows_at_once(self, chunk: int) -> int:
    """The most rows trained together (``chunk``: the engine's chunk size)."""
    return chunk

  def planned(self, capacity: int) -> list[list[int]]:
    """Per batch it expects, the rows training between each two boundaries (to compile ahead)."""
    return [[capacity]]

  def intervals(self) -> list[int]:
    """Steps between two boundaries it may ask for (segments are cut to divide them)."""
    return []

  def planned_config_steps(self) -> int:
    """Configuration-steps it expects to train (the progress bar's total)."""
    return len(self.context.seeds) * self.context.steps

  def columns(self, outcomes: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Per-row columns it adds to the group's results, from the merged outcomes.

    ``outcomes`` holds ``stopped_at_step`` and the loop's record of
    exploits (``history``); the keys returned are among
    ``stopped_at_step``, ``trial`` and ``pbt``. By default a strategy that
    observes (and so may stop rows) adds ``stopped_at_step``.
    """
    if type(self).observe is Strategy.observe:
      return {}
    return {"stopped_at_step": outcomes["stopped_at_step"]}

  def record(self, manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``search`` and ``scheduler`` entries with this group's part added."""
    return manifest
