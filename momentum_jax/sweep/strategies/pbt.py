"""Population-based training: the population trains as one batch; every ``interval`` steps
the bottom of it copies the top (*exploit*) and perturbs the copied hyperparameters
(*explore*).

The selection and perturbation rules are
:class:`~momentum_jax.sweep._pbt.PopulationBasedTraining`'s (Jaderberg et
al. 2017); this strategy applies them at each exploit step and answers the
segment loop with an :class:`~momentum_jax.sweep.strategies.Exploit`: each
row's source row (the same seed row of the member it copies) and its
hyperparameters from then on. The loop copies the training state on the
devices and records, per row, the values in force during each log interval
and the row copied after each log; they become the curves' hyperparameter
columns, the summary's ``lineage`` and the manifest's ``exploits``.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from momentum_jax.sweep import _pbt
from momentum_jax.sweep.strategies._base import Batch, Continue, Exploit, Scores, Strategy


class PopulationBased(Strategy):
  """One batch of the whole population, exploited every ``interval`` steps.

  Args:
    context: The group's context; ``options`` is the :class:`~momentum_jax.sweep._pbt.PBTSpec`.
  """

  def __init__(self, context):
    self.context = context
    spec = context.options
    self.interval = spec.interval
    self.rule = _pbt.PopulationBasedTraining(spec.fraction, spec.perturb, context.maximize)
    self.rng = _pbt.generator(spec.seed, context.index)
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
    return [*_pbt.exploit_steps(self.interval, self.context.steps), self.context.steps]

  def observe(self, batch: Batch, scores: Scores):
    seeds = self.context.seeds_per_setting
    sources = self.rule.sources(scores.metric(self.context.metric), scores.diverged, seeds,
                                self.rng)
    replaced = sources != np.arange(len(sources))
    if not replaced.any():
      return Continue()
    ranges = {n: r for n, r in self.context.ranges.items() if n in self._values}
    new = self.rule.explore({n: v[::seeds] for n, v in self._values.items()}, sources, ranges,
                            self.rng)
    self._values = {name: np.repeat(v, seeds) for name, v in new.items()}
    source_rows = (sources[:, None] * seeds + np.arange(seeds)).reshape(-1)
    return Exploit(scores.rows[source_rows], dict(self._values))

  def state(self) -> dict[str, Any]:
    return {"asked": self._asked, "rng": self.rng.bit_generator.state,
            "values": None if self._values is None else
            {n: v.tolist() for n, v in self._values.items()}}

  def restore(self, state: Mapping[str, Any]) -> None:
    self._asked = bool(state["asked"])
    self.rng.bit_generator.state = state["rng"]
    self._values = None if state["values"] is None else {
        n: np.asarray(v, np.float64) for n, v in state["values"].items()}

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
        found.append({"step": int((at + 1) * every), "member": (first + int(row)) // seeds,
                      "source": (first + int(copied[row, at])) // seeds,
                      "values": {n: float(v[row, at + 1]) for n, v in in_force.items()}})
    search = dict(manifest["search"])
    search.setdefault("exploits", {})[self.context.label] = found
    return {**manifest, "search": search}
