"""Optuna for a sweep: distributions of a group's hyperparameters, samplers, storage.

The search itself is :mod:`momentum_jax.sweep.strategies.optuna`'s. What follows
describes both.

With ``search: {method: optuna, sampler: tpe, trials: N, batch: B, seed: S}``
each optimizer group is one Optuna study, named by the group's label, whose
direction is its metric's (``search.metric``, default ``val_loss`` where the
problem logs it, else ``final_loss``; accuracies are maximized). A range
``{uniform: [lo, hi]}`` is a ``FloatDistribution(lo, hi)``, ``{loguniform:
…}`` one with ``log=True``; a list (or ``linspace``, ``logspace``) a
``CategoricalDistribution`` of its values; a single value stays fixed.

The group's rows are ``N × seeds``, known before training
(:func:`momentum_jax.sweep._plan.trial_rows`); their searched values are
asked batch by batch: ``B`` trials at once (the last batch may be short),
trained by one compiled program (the hyperparameters are its inputs, so
nothing recompiles between batches). When a batch's rows are saved each
trial is told the mean over its seeds of the metric, as the summary gives
it. A trial one of whose seeds diverged, or whose mean is not finite, is
told as failed (``TrialState.FAIL``); one a scheduler stopped is told
``PRUNED``, its rungs' values being its intermediate values.

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
by the user attribute ``slot`` (its trial's place among the group's ``N``).
A sweep run again on the folder reloads the studies and continues asking
until ``N``: a batch killed mid-way resumes from its saved state with its
own trials; a trial asked by a run killed before any save is taken up again
(same number, same values) and its batch trained from the start. A fresh
run (or ``--overwrite``) starts new studies. Without an output folder the
studies live in memory. A sweep on several processes is refused.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np

# The studies' journal in the output folder (one of strategies.OWN_FILES).
JOURNAL_FILE = "optuna.journal"


def distributions(spec) -> dict[str, Any]:
  """An optimizer group's searched hyperparameters as Optuna distributions, in config order."""
  from optuna import distributions as d

  found = {
    name: d.CategoricalDistribution(tuple(float(x) for x in values))
    for name, values in spec.grid.items()
    if len(values) > 1
  }
  found.update(
    {name: d.FloatDistribution(r.low, r.high, log=r.log) for name, r in spec.ranges.items()}
  )
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
def quiet():
  """Optuna's INFO lines (one per trial) silenced: the sweep has its progress bar."""
  import optuna

  before = optuna.logging.get_verbosity()
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  try:
    yield
  finally:
    optuna.logging.set_verbosity(before)


def trial_record(trial) -> dict[str, Any]:
  complete = trial.state.name == "COMPLETE"
  record = {
    "number": trial.number,
    "slot": trial.user_attrs.get("slot"),
    "params": trial.params,
    "state": trial.state.name,
    "value": trial.value if complete else None,
  }
  if "retry_of" in trial.user_attrs:
    record["retry_of"] = trial.user_attrs["retry_of"]
  return record
