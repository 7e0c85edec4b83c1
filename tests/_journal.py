"""The dashboard tests' fixture counts and the Optuna journal a saved sweep writes."""

from pathlib import Path

import optuna

from momentum_jax.sweep.strategies._optuna_study import JOURNAL_FILE


# The fixture's 24 runs: per optimizer, 3 learning rates x 2 values of its
# second hyperparameter, 2 seeds each: 6 configurations a group.
CONFIGURATIONS = {"momentum": 6, "rmsprop": 6}


def _storage(out_dir):
  return optuna.storages.JournalStorage(
    optuna.storages.journal.JournalFileBackend(str(Path(out_dir) / JOURNAL_FILE))
  )
