"""Population-based training: the population trains as one batch; every ``interval`` steps
the bottom of it copies the top (*exploit*) and perturbs the copied hyperparameters
(*explore*).

The selection and perturbation rules are
:class:`PopulationBasedTraining`'s (Jaderberg et
al. 2017); this strategy applies them at each exploit step and answers the
segment loop with an :class:`~momentum_jax.sweep.strategies.Exploit`: each
row's source row (the same seed row of the member it copies) and its
hyperparameters from then on. The loop copies the training state on the
devices and records, per row, the values in force during each log interval
and the row copied after each log; they become the curves' hyperparameter
columns, the summary's ``lineage`` and the manifest's ``exploits``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from momentum_jax.sweep._space import Range
from momentum_jax.sweep.strategies._base import Batch, Continue, Exploit, Scores, Strategy


def exploit_steps(interval: int, steps: int) -> list[int]:
  """The steps after which members are ranked and the bottom ones replaced.

  >>> exploit_steps(20, 60), exploit_steps(20, 50)
  ([20, 40], [20, 40])
  """
  return list(range(interval, steps, interval))


def generator(seed: int, group: int) -> np.random.Generator:
  """The random choices of group ``group``'s exploits: the same search seed, the same choices."""
  return np.random.default_rng([seed, group])


@dataclasses.dataclass(frozen=True)
class PopulationBasedTraining:
  """Truncation selection: the bottom ``fraction`` copy the top ``fraction``, then perturb.

  Attributes:
    fraction: The share of members replaced (and the share they copy from).
    perturb: The factors a hyperparameter sampled from a range is multiplied by.
    maximize: Whether a higher value of the metric is better (accuracies).
  """

  fraction: float
  perturb: tuple[float, ...] = (0.8, 1.25)
  maximize: bool = False

  def ranking(self, values: np.ndarray, diverged: np.ndarray, seeds: int = 1) -> np.ndarray:
    """The members, best first: by the mean over their seeds, diverged or NaN last, ties by index.

    Args:
      values: The metric of each row, shape ``[members × seeds]``.
      diverged: Whether each row has diverged, same shape.
      seeds: Rows per member (adjacent).
    """
    values = np.asarray(values, np.float64).reshape(-1, seeds)
    out = np.asarray(diverged, bool).reshape(-1, seeds).any(axis=1)
    with np.errstate(invalid="ignore"):
      score = -values.mean(axis=1) if self.maximize else values.mean(axis=1)
    score = np.where(np.isnan(score) | out, np.inf, score)
    return np.argsort(score, kind="stable")

  def sources(
    self, values: np.ndarray, diverged: np.ndarray, seeds: int, rng: np.random.Generator
  ) -> np.ndarray:
    """Which member each member takes its state from after an exploit: itself, if it stays.

    The ``q = floor(fraction · members)`` last of :meth:`ranking` each copy
    one of its ``q`` first, drawn uniformly (``rng.integers(q)``, in
    ascending order of the replaced members); none copies a member that
    diverged (if every one of the top has, nothing is replaced).

    Returns:
      Shape ``[members]``: member ``m`` continues from member ``sources[m]``.
    """
    order = self.ranking(values, diverged, seeds)
    members = len(order)
    sources = np.arange(members)
    count = int(self.fraction * members)
    out = np.asarray(diverged, bool).reshape(-1, seeds).any(axis=1)
    top = np.array([m for m in order[:count] if not out[m]], np.int64)
    if not count or not len(top):
      return sources
    for member in np.sort(order[members - count :]):
      sources[member] = top[rng.integers(len(top))]
    return sources

  def explore(
    self,
    values: Mapping[str, np.ndarray],
    sources: np.ndarray,
    ranges: Mapping[str, Range],
    rng: np.random.Generator,
  ) -> dict[str, np.ndarray]:
    """Each member's hyperparameters after an exploit.

    A member that copied another (``sources[m] != m``) takes its values; each
    of them sampled from a range (a name in ``ranges``) is multiplied by a
    factor drawn from ``perturb`` (``rng.choice``, the members in ascending
    order, the names in ``values``' order), then clipped to the range. The
    others are copied unchanged, and a member that stays keeps its own.

    Args:
      values: Name -> each member's value, shape ``[members]``.
      sources: As :meth:`sources` returns.
      ranges: The ranges the group's sampled hyperparameters were drawn from.
    """
    new = {name: np.array(v, np.float64) for name, v in values.items()}
    perturb = np.asarray(self.perturb, np.float64)
    for member in np.flatnonzero(sources != np.arange(len(sources))):
      for name, v in values.items():
        value = float(v[sources[member]])
        if name in ranges:
          value = float(np.clip(value * rng.choice(perturb), ranges[name].low, ranges[name].high))
        new[name][member] = value
    return new


class PopulationBased(Strategy):
  """One batch of the whole population, exploited every ``interval`` steps.

  Args:
    context: The group's context; ``options`` is the :class:`~momentum_jax.sweep._pbt.PBTSpec`.
  """

  def __init__(self, context):
    self.context = context
    spec = context.options
    self.interval = spec.interval
    self.rule = PopulationBasedTraining(spec.fraction, spec.perturb, context.maximize)
    self.rng = generator(spec.seed, context.index)
    self._asked = False
    self._values: dict[str, np.ndarray] | None = None
    self._exploits: list[dict[str, Any]] = []

  def rows_at_once(self, chunk: int) -> int:
    return len(self.context.seeds)  # members are ranked together

  def planned(self, capacity: int) -> list[list[int]]:
    return [[len(self.context.seeds)]]

  def intervals(self) -> list[int]:
    return [self.interval]

  def ask(self, capacity: int) -> Batch | None:
    if self._asked:
      return None
    self._asked = True
    rows = np.arange(len(self.context.seeds))
    self._values = {n: np.asarray(v, np.float64).copy() for n, v in self.context.values.items()}
    return Batch(rows, dict(self._values), self.context.seeds, 0)

  def boundaries(self, batch: Batch) -> list[int]:
    return [*exploit_steps(self.interval, self.context.steps), self.context.steps]

  def observe(self, batch: Batch, scores: Scores):
    seeds = self.context.seeds_per_setting
    sources = self.rule.sources(
      scores.metric(self.context.metric), scores.diverged, seeds, self.rng
    )
    replaced = sources != np.arange(len(sources))
    if not replaced.any():
      return Continue()
    ranges = {n: r for n, r in self.context.ranges.items() if n in self._values}
    new = self.rule.explore(
      {n: v[::seeds] for n, v in self._values.items()}, sources, ranges, self.rng
    )
    self._values = {name: np.repeat(v, seeds) for name, v in new.items()}
    source_rows = (sources[:, None] * seeds + np.arange(seeds)).reshape(-1)
    return Exploit(scores.rows[source_rows], dict(self._values))

  def state(self) -> dict[str, Any]:
    return {
      "asked": self._asked,
      "rng": self.rng.bit_generator.state,
      "values": None if self._values is None else {n: v.tolist() for n, v in self._values.items()},
    }

  def restore(self, state: Mapping[str, Any]) -> None:
    self._asked = bool(state["asked"])
    self.rng.bit_generator.state = state["rng"]
    self._values = (
      None
      if state["values"] is None
      else {n: np.asarray(v, np.float64) for n, v in state["values"].items()}
    )

  def columns(self, outcomes: Mapping[str, Any]) -> dict[str, Any]:
    self._history = outcomes["history"]
    return {"pbt": outcomes["history"]}

  def record(self, manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``search`` with this group's ``exploits``: each event's ``step``,
    ``member``, ``source`` and new ``values``.

    Members are numbered across the sweep, in configuration order
    (``config_id // seeds``, the summary's ``member``); ``values`` are the
    hyperparameters the member trains with from ``step`` on.
    """
    seeds, first = self.context.seeds_per_setting, self.context.first
    copied, every = self._history["copied_from"], self.context.log_every
    in_force = self._history["hyperparameters"]
    found = []
    for at in range(copied.shape[1]):
      for row in np.flatnonzero(copied[::seeds, at] >= 0) * seeds:
        found.append(
          {
            "step": int((at + 1) * every),
            "member": (first + int(row)) // seeds,
            "source": (first + int(copied[row, at])) // seeds,
            "values": {n: float(v[row, at + 1]) for n, v in in_force.items()},
          }
        )
    search = dict(manifest["search"])
    search.setdefault("exploits", {})[self.context.label] = found
    return {**manifest, "search": search}
