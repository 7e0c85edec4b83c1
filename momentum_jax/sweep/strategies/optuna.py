"""Optuna's samplers, asked in batches: each batch's trials trained by one program.

Each optimizer group is one Optuna study, named by its label, in
``DIR/optuna.journal`` (in memory without an output folder). A batch is
``search.batch`` trials asked at once (the last may be short), each trial's
values written into its slot's rows (``slot × seeds …``; the user
attribute ``slot`` keeps them); when the batch has trained and its rows are
saved, each trial is told the mean over its seeds of the metric, or
``FAIL`` when a seed diverged or the mean is not finite, or ``PRUNED`` when
a scheduler stopped it (its rungs' values reported as intermediate values).

The sampler of each batch is made afresh, seeded from the search seed and
the batch's first slot, so that a resumed sweep asks what an uninterrupted
one would have; a trial a killed run had asked and not told is taken up
again under its own number, with its own values (see
:mod:`momentum_jax.sweep.strategies._optuna_study` for samplers and storage).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from momentum_jax.sweep.strategies import _optuna_study as _optuna
from momentum_jax.sweep.strategies._base import Batch, Continue, Outcome, Scores, Strategy


class OptunaSearch(Strategy):
  """The group's study, asked ``batch`` trials at a time.

  Args:
    context: The group's context; ``options`` is the search's spec
      (``sampler``, ``trials``, ``batch``, ``seed``).
    storage: The sweep's Optuna storage (:func:`momentum_jax.sweep.strategies._optuna_study.storage`).
  """

  def __init__(self, context, storage):
    import optuna

    self.context, self.spec, self.storage = context, context.options, storage
    self.seeds = context.seeds_per_setting
    self.distributions = _optuna.distributions(context.group_spec)
    with _optuna.quiet():
      optuna.create_study(
        storage=storage,
        study_name=context.label,
        load_if_exists=True,
        direction="maximize" if context.maximize else "minimize",
      )
    self._next = 0  # the next slot to ask
    self._batches = 0

  def _study(self, first_slot: int = 0):
    import optuna

    return optuna.load_study(
      study_name=self.context.label,
      storage=self.storage,
      sampler=_optuna.make_sampler(self.spec.sampler, self.spec.seed, first_slot),
    )

  def rows_at_once(self, chunk: int) -> int:
    return self.spec.batch * self.seeds

  def planned(self, capacity: int) -> list[list[int]]:
    return [[min(capacity, len(self.context.seeds))]]

  def _slot_rows(self, slots) -> np.ndarray:
    return (np.asarray(slots, np.int64)[:, None] * self.seeds + np.arange(self.seeds)).reshape(-1)

  def ask(self, capacity: int) -> Batch | None:
    from optuna.trial import TrialState

    total = len(self.context.seeds) // self.seeds
    if self._next >= total:
      return None
    slots = list(range(self._next, min(total, self._next + max(1, capacity // self.seeds))))
    study = self._study(slots[0])
    running = {
      t.user_attrs.get("slot"): t
      for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    }
    numbers, params = {}, {}
    with _optuna.quiet():
      for slot in slots:
        if slot in running:  # asked by a run killed before it saved the batch
          trial = running[slot]
          numbers[slot], params[slot] = trial.number, trial.params
          continue
        trial = study.ask(self.distributions)
        trial.set_user_attr("slot", slot)
        numbers[slot], params[slot] = trial.number, trial.params
    rows = self._slot_rows(slots)
    values = {n: np.asarray(v, np.float64)[rows].copy() for n, v in self.context.values.items()}
    for position, slot in enumerate(slots):
      for name, value in params[slot].items():
        values[name][position * self.seeds : (position + 1) * self.seeds] = float(value)
    self._next = slots[-1] + 1
    self._batches += 1
    return Batch(
      rows,
      values,
      self.context.seeds[rows],
      self._batches - 1,
      {"trials": {str(s): n for s, n in numbers.items()}},
    )

  def observe(self, batch: Batch, scores: Scores):
    """Reports each trial's value at this step (the mean over its seeds): its intermediate value."""
    values = np.asarray(scores.metric(self.context.metric), np.float64)
    study_id = self.storage.get_study_id_from_name(self.context.label)
    for slot in np.unique(scores.rows // self.seeds):
      number = batch.tag["trials"][str(int(slot))]
      mean = float(np.mean(values[scores.rows // self.seeds == slot]))
      if np.isfinite(mean):
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, number)
        self.storage.set_trial_intermediate_value(trial_id, scores.step, mean)
    return Continue()

  def tell(self, batch: Batch, outcome: Outcome) -> None:
    """Tells each trial its value, ``FAIL`` or ``PRUNED`` (a trial told already is left)."""
    from optuna.trial import TrialState

    study = self._study()
    told = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    values = np.asarray(outcome.metric(self.context.metric), np.float64)
    slots = np.asarray(outcome.rows) // self.seeds
    with _optuna.quiet():
      for slot in np.unique(slots):
        number = batch.tag["trials"][str(int(slot))]
        if number in told:
          continue
        rows = slots == slot
        mean = float(np.mean(values[rows]))
        if np.any(np.asarray(outcome.stopped_at_step)[rows] < self.context.steps):
          study.tell(number, state=TrialState.PRUNED)
        elif np.any(np.asarray(outcome.diverged_at_step)[rows] >= 0) or not np.isfinite(mean):
          study.tell(number, state=TrialState.FAIL)
        else:
          study.tell(number, mean)

  def state(self) -> dict[str, Any]:
    return {"next": self._next, "batches": self._batches}

  def restore(self, state: Mapping[str, Any]) -> None:
    self._next, self._batches = int(state["next"]), int(state["batches"])

  def columns(self, outcomes: Mapping[str, Any]) -> dict[str, Any]:
    """Each row's trial: the last asked for its slot."""
    numbers = np.full(len(self.context.seeds) // self.seeds, -1, np.int64)
    for trial in sorted(self._study().get_trials(deepcopy=False), key=lambda t: t.number):
      slot = trial.user_attrs.get("slot")
      if slot is not None and 0 <= slot < len(numbers):
        numbers[slot] = trial.number
    return {"trial": np.repeat(numbers, self.seeds)}

  def record(self, manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``search`` with the sampler's metric and direction, and this group's
    trials: ``number``, ``slot``, ``params``, ``state``, ``value``."""
    search = {
      **manifest["search"],
      "metric": self.context.metric,
      "direction": "maximize" if self.context.maximize else "minimize",
      "storage": None if self.context.out_dir is None else _optuna.JOURNAL_FILE,
    }
    groups = dict(search.get("groups", {}))
    groups[self.context.label] = {
      **groups.get(self.context.label, {}),
      "study": self.context.label,
      "distributions": {n: repr(d) for n, d in self.distributions.items()},
      "trials": [_optuna.trial_record(t) for t in self._study().get_trials(deepcopy=False)],
    }
    search["groups"] = groups
    return {**manifest, "search": search}
