"""Bayesian search in batches: Optuna's ask-and-tell, ``batch`` trials trained by one program.

With ``search: {method: optuna, sampler: tpe, trials: N, batch: B, seed: S}``
each optimizer group is one Optuna study, named by the group's label, whose
direction is its metric's (``search.metric``, default ``val_loss`` where the
problem logs it, else ``final_loss``; accuracies are maximized). A range
``{uniform: [lo, hi]}`` is a ``FloatDistribution(lo, hi)``, ``{loguniform:
…}`` one with ``log=True``; a list (or ``linspace``, ``logspace``) a
``CategoricalDistribution`` of its values; a single value stays fixed.

The group's rows are ``N × seeds``, known before training
(:func:`momentum_jax.sweep._plan.trial_rows`); their searched values are
filled batch by batch. The engine trains the group in chunks of ``B ×
seeds`` rows, one compiled program for every chunk (the hyperparameters are
its inputs, so nothing recompiles between batches); before each chunk
:meth:`OptunaSearch.before_chunk` asks the study for ``B`` trials at once
(the last batch may be short) and writes their values into the rows, and
after it :meth:`OptunaSearch.after_chunk` tells each trial its value: the
mean over its seeds of the metric, as the summary gives it. A trial one of
whose seeds diverged, or whose mean is not finite, is told as failed
(``TrialState.FAIL``): Optuna's samplers learn nothing from it, as they do
from any failed trial.

Samplers (:data:`momentum_jax.sweep._search.OPTUNA_SAMPLERS`): ``tpe``
(``TPESampler``; Optuna's constant liar lets the trials of one batch spread
out), ``gp`` (``GPSampler``, needs torch), ``cmaes`` (``CmaEsSampler``,
needs cmaes) and ``qmc`` (``QMCSampler``, scrambled Halton, as ``method:
quasirandom``). The sampler of each batch is made afresh, seeded from the
search seed and the batch's first trial (``qmc``: the seed itself, its
position in the sequence being kept in the study), so that a resumed sweep
asks what an uninterrupted one would have asked.

With an output folder the studies are stored in ``DIR/optuna.journal``
(``JournalStorage`` with a ``JournalFileBackend``), each trial's rows kept
by the user attribute ``slot`` (its trial's place among the group's ``N``),
and each finished chunk saved by the engine before its trials are told. A
sweep run again on the folder reloads the studies and continues asking
until ``N``; what a killed run left behind is settled first: a trial left
running whose rows were saved is told from them; one whose rows were not
(killed mid-batch) is told as failed and its parameters enqueued
(``enqueue_trial``), so that the batch trains again with the same values
(mid-chunk from its saved state, if any) under a new trial number. A fresh
run (or ``--overwrite``) starts new studies. Without an output folder the
studies live in memory. A sweep on several processes is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from momentum_jax import problems, results
from momentum_jax.sweep._checkpoint import JOURNAL_FILE, OutputDirError
from momentum_jax.sweep._errors import ConfigError
from momentum_jax.sweep._scheduled import rung_values
from momentum_jax.sweep._search import SearchSpec, check_metric, loss_metric

def distributions(spec) -> dict[str, Any]:
  """An optimizer group's searched hyperparameters as Optuna distributions, in config order."""
  from optuna import distributions as d
  found = {name: d.CategoricalDistribution(tuple(float(x) for x in values))
           for name, values in spec.grid.items() if len(values) > 1}
  found.update({name: d.FloatDistribution(r.low, r.high, log=r.log)
                for name, r in spec.ranges.items()})
  return found


def make_sampler(name: str, seed: int, first_trial: int):
  """The sampler of the batch whose first trial is ``first_trial`` (see the module docstring)."""
  import optuna
  if name == "qmc":
    with warnings.catch_warnings():  # experimental since Optuna 3.0, and as documented
      warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
      return optuna.samplers.QMCSampler(qmc_type="halton", scramble=True, seed=seed)
  own = int(np.random.SeedSequence([seed, first_trial]).generate_state(1)[0])
  if name == "tpe":
    return optuna.samplers.TPESampler(seed=own, constant_liar=True)
  if name == "gp":
    return optuna.samplers.GPSampler(seed=own)
  if name == "cmaes":
    # CMA-ES searches the ranges; a list is drawn at random (documented, not warned per trial).
    return optuna.samplers.CmaEsSampler(seed=own, warn_independent_sampling=False)
  raise ValueError(f"unknown sampler {name!r}")


def storage(out_dir, fresh: bool):
  """``DIR/optuna.journal`` (removed first when ``fresh``), or memory without a folder."""
  import optuna
  if out_dir is None:
    return optuna.storages.InMemoryStorage()
  from optuna.storages.journal import JournalFileBackend
  path = Path(out_dir) / JOURNAL_FILE
  if fresh:
    path.unlink(missing_ok=True)
  return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


@contextlib.contextmanager
def _quiet():
  """Optuna's INFO lines (one per trial) silenced: the sweep has its progress bar."""
  import optuna
  before = optuna.logging.get_verbosity()
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  try:
    yield
  finally:
    optuna.logging.set_verbosity(before)


@dataclasses.dataclass
class _Study:
  """One group's study and which trial fills each of its slots (-1: none yet)."""

  name: str
  distributions: dict[str, Any]
  numbers: np.ndarray
  pending: dict[int, Any] = dataclasses.field(default_factory=dict)  # slot -> asked Trial


class OptunaSearch:
  """The Optuna studies of a sweep: asked before each chunk, told after it.

  Args:
    spec: The config's search (``method: optuna``).
    problem: The sweep's problem (its metrics check ``spec.metric``).
    seeds: Seeds per trial (adjacent rows).
    out_dir: The output folder (the journal's), or ``None``: in memory.
    fresh: Whether to start new studies (the checkpoint was not resumed).
    held: Configurations the devices hold at once (a batch must fit).

  Raises:
    ConfigError: at ``search.metric`` for a metric the problem does not log,
      at ``search.batch`` for a batch the devices cannot hold, at
      ``search.method`` on several processes.
  """

  def __init__(self, spec: SearchSpec, problem: problems.Problem, seeds: int, out_dir,
               fresh: bool, held: int):
    if jax.process_count() > 1:
      raise ConfigError("search.method", "optuna runs on one process; this sweep has "
                        f"{jax.process_count()}")
    self.spec = spec
    self.seeds = seeds
    self.metric = (loss_metric(problem) if spec.metric is None
                   else check_metric("search.metric", spec.metric, problem))
    self.direction = "maximize" if results.higher_is_better(self.metric) else "minimize"
    if spec.batch * seeds > held:
      raise ConfigError("search.batch", f"{spec.batch} trials × {seeds} seeds are trained "
                        f"together, and the devices hold about {held}: ask fewer at once")
    self.out_dir = out_dir
    self.storage = storage(out_dir, fresh)
    self.studies: dict[str, _Study] = {}

  @property
  def rows(self) -> int:
    """Rows per chunk: a batch of trials times the seeds."""
    return self.spec.batch * self.seeds

  def batch_groups(self, groups: list) -> list:
    """The groups cut to one batch's rows: what a group's width is chosen for."""
    return [dataclasses.replace(g, values={n: v[:self.rows] for n, v in g.values.items()},
                                seeds=g.seeds[:self.rows]) for g in groups]

  def _load(self, study: _Study, first_slot: int):
    import optuna
    return optuna.load_study(study_name=study.name, storage=self.storage,
                             sampler=make_sampler(self.spec.sampler, self.spec.seed, first_slot))

  def _open(self, group, index: int, checkpoint) -> _Study:
    """The group's study, created or reloaded, and what a killed run left settled."""
    if group.label in self.studies:
      return self.studies[group.label]
    import optuna
    from optuna.trial import TrialState
    with _quiet():
      optuna.create_study(storage=self.storage, study_name=group.label,
                          direction=self.direction, load_if_exists=True)
    slots = len(group.seeds) // self.seeds
    study = _Study(group.label, distributions(group.spec), np.full(slots, -1, np.int64))
    self.studies[group.label] = study
    finished = (checkpoint.finished(index) if checkpoint is not None
                else np.zeros(0, np.int64))
    done = set((finished // self.seeds).tolist())
    loaded, saved = self._load(study, 0), None
    for trial in sorted(loaded.get_trials(deepcopy=False), key=lambda t: t.number):
      slot = trial.user_attrs.get("slot")
      if slot is None or not 0 <= slot < slots:
        raise OutputDirError(f"the study {group.label!r} in {self.out_dir} has trial "
                             f"{trial.number} without a slot of this sweep; pass --overwrite")
      if trial.state == TrialState.RUNNING and slot in done:  # saved, then killed
        if saved is None:
          saved = checkpoint.load(index, len(group.seeds), missing_ok=True)
        rows = self._slot_rows(slot)
        with _quiet():
          self._tell(loaded, trial.number, jax.tree.map(lambda x: x[rows], saved[0]),
                     saved[1][rows])
        study.numbers[slot] = trial.number
      elif trial.state == TrialState.RUNNING:  # killed before its rows were saved
        with _quiet():
          loaded.tell(trial.number, state=TrialState.FAIL)
          loaded.enqueue_trial(trial.params, user_attrs={"slot": slot,
                                                         "retry_of": trial.number})
      elif trial.state.is_finished() and slot in done:
        study.numbers[slot] = trial.number
        self._fill(group, slot, trial.params)
    missing = sorted(s for s in done if study.numbers[s] < 0)
    if missing:
      raise OutputDirError(f"{self.out_dir} holds the rows of trials {missing[:5]} of "
                           f"{group.label} that its study {JOURNAL_FILE} lacks; pass --overwrite")
    return study

  def _slot_rows(self, slot: int) -> np.ndarray:
    return slot * self.seeds + np.arange(self.seeds)

  def _fill(self, group, slot: int, params: dict[str, Any]) -> None:
    for name, value in params.items():
      group.values[name][self._slot_rows(slot)] = float(value)

  def before_chunk(self, group, index: int, indices: np.ndarray, checkpoint) -> None:
    """Asks the study for the trials of the chunk ``indices`` and writes their values there."""
    study = self._open(group, index, checkpoint)
    slots = sorted(set((np.asarray(indices) // self.seeds).tolist()))
    loaded, free = self._load(study, slots[0]), list(slots)
    with _quiet():
      for _ in slots:
        trial = loaded.ask(study.distributions)
        slot = trial.user_attrs.get("slot")  # an enqueued retry keeps its own
        if slot is None:
          slot = free[0]
          trial.set_user_attr("slot", slot)
        if slot not in free:
          raise OutputDirError(f"the study {group.label!r} in {self.out_dir} retries trial "
                               f"slot {slot}, not one of this batch's {slots}; pass --overwrite")
        free.remove(slot)
        study.pending[slot] = trial
        self._fill(group, slot, trial.params)

  def after_chunk(self, group, kept: tuple[np.ndarray, Any, np.ndarray]) -> None:
    """Tells each trial of the chunk its value, from its ``(indices, metrics, diverged)``."""
    study = self.studies[group.label]
    indices, metrics, diverged = kept
    loaded = self._load(study, 0)
    with _quiet():
      for slot, trial in sorted(study.pending.items()):
        rows = np.flatnonzero(indices // self.seeds == slot)
        rows = rows[np.argsort(indices[rows])]
        self._tell(loaded, trial.number, jax.tree.map(lambda x: x[rows], metrics),
                   diverged[rows])
        study.numbers[slot] = trial.number
    study.pending.clear()

  def _tell(self, loaded, number: int, metrics: dict[str, Any], diverged: np.ndarray) -> None:
    """Tells trial ``number`` its seeds' mean, or FAIL (a seed diverged, or not finite)."""
    from optuna.trial import TrialState
    at = metrics["train_loss"].shape[1] - 1
    value = float(np.mean(np.asarray(rung_values(metrics, self.metric, at), np.float64)))
    if np.any(np.asarray(diverged) >= 0) or not np.isfinite(value):
      loaded.tell(number, state=TrialState.FAIL)
    else:
      loaded.tell(number, value)

  def finish(self, groups: list, checkpoint) -> list[np.ndarray]:
    """Every group's rows filled from its study; per group, each row's trial number.

    Raises:
      RuntimeError: if a slot has no finished trial (an internal error).
    """
    trials = []
    for index, group in enumerate(groups):
      study = self._open(group, index, checkpoint)
      told = {t.number: t for t in self._load(study, 0).get_trials(deepcopy=False)}
      if np.any(study.numbers < 0):
        raise RuntimeError(f"internal error: {group.label} has trials never told")
      for slot, number in enumerate(study.numbers):
        self._fill(group, slot, told[int(number)].params)
      trials.append(np.repeat(study.numbers, self.seeds))
    return trials

  def record(self, search: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``search`` with the sampler, metric and each group's trials.

    Per group, every trial of its study (those a stopped run left, failed,
    included): ``number``, ``slot`` (its rows: ``slot × seeds …``),
    ``params``, ``state``, ``value`` (``None`` unless complete) and, for a
    retry, ``retry_of`` (the number of the trial it repeats).
    """
    search = {**search, "metric": self.metric, "direction": self.direction,
              "storage": None if self.out_dir is None else JOURNAL_FILE}
    groups = dict(search.get("groups", {}))
    for label, study in self.studies.items():
      loaded = self._load(study, 0)
      groups[label] = {**groups.get(label, {}), "study": label,
                       "distributions": {n: repr(d) for n, d in study.distributions.items()},
                       "trials": [_trial_record(t) for t in loaded.get_trials(deepcopy=False)]}
    search["groups"] = groups
    return search


def _trial_record(trial) -> dict[str, Any]:
  complete = trial.state.name == "COMPLETE"
  record = {"number": trial.number, "slot": trial.user_attrs.get("slot"), "params": trial.params,
            "state": trial.state.name, "value": trial.value if complete else None}
  if "retry_of" in trial.user_attrs:
    record["retry_of"] = trial.user_attrs["retry_of"]
  return record
