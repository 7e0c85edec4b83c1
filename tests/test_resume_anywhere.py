"""Every search resumes mid-run: killed inside a batch, a sweep ends as an uninterrupted one.

Each case runs a search uninterrupted, then again on an output folder where
the run dies right after its batch state is saved at a chosen place (inside
a rung, between two exploits, in the middle of an Optuna batch), then once
more on that folder. The resumed results equal the uninterrupted ones bit
for bit: the same programs, compiled alike on this machine, train the same
rows from the same saved state. (The command killed by SIGKILL is
tests/test_checkpoint_killed.py's; here the death is an exception raised where the
save returns, which leaves the folder exactly as a kill there would.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from _killed import run_killed_after_a_save
from _sweep_configs import HALVING, REGRESSION, REGRESSION_PBT, with_changes
from momentum_jax import sweep
from momentum_jax.sweep.strategies._optuna_study import JOURNAL_FILE

WIDTH = 2
LABEL = "momentum(ema=false)"
RANDOM = with_changes(
  HALVING,
  optimizer__learning_rate={"loguniform": [0.001, 1.0]},
  search={"method": "quasirandom", "samples": 6, "seed": 1},
)
OPTUNA = with_changes(RANDOM, search={"method": "optuna", "trials": 6, "batch": 3, "seed": 0})
HALVING_RULE = {"name": "successive_halving", "eta": 3, "min_steps": 10}
PBT = with_changes(
  REGRESSION_PBT,
  optimizer__beta=0.9,
  search__population=6,
  search__fraction=0.34,
  search__perturb=[0.5, 2.0],
)

# name: (config, the batch to die in, the step of the first save it dies after)
CASES = {
  "quasirandom": (with_changes(RANDOM, train__log_every=10), 0, 30),
  "halving": (HALVING, 0, 50),  # rungs at 10, 30, 90: dies between the second and third
  "hyperband": (
    with_changes(HALVING, search__scheduler={**HALVING_RULE, "name": "hyperband"}),
    1,
    40,
  ),
  "pbt": (PBT, 0, 30),  # exploits after 20 and 40: dies between them
  "optuna": (OPTUNA, 1, 40),  # in the second batch of trials
  "optuna_halving": (with_changes(OPTUNA, search__scheduler=HALVING_RULE), 1, 50),
}


def _run(config, out=None, **kwargs):
  return sweep.run(config, out, quiet=True, width=WIDTH, **kwargs)


@pytest.mark.parametrize("name", CASES)
def test_a_search_killed_inside_a_batch_resumes_to_the_uninterrupted_results(
  name, tmp_path, monkeypatch
):
  config, batch, at = CASES[name]
  whole = _run(config, tmp_path / "whole")
  out = tmp_path / "out"
  died = run_killed_after_a_save(
    monkeypatch,
    lambda: _run(config, out, checkpoint_every=1e-9),
    lambda position, step: position.batch.number == batch and step >= at,
  )
  resumed = _run(config, out)
  (mid,) = resumed.manifest["checkpoint"]["chunks_resumed_mid_training"]
  assert (mid["batch"], mid["from_step"]) == (batch, died)
  pd.testing.assert_frame_equal(resumed.summary, whole.summary, check_exact=True)
  pd.testing.assert_frame_equal(resumed.curves, whole.curves, check_exact=True)
  for key in ("search", "scheduler"):
    assert resumed.manifest[key] == whole.manifest[key], key
  if name.startswith("optuna"):  # the same trials, their numbers and intermediate values

    def trials(folder):
      storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(folder / JOURNAL_FILE))
      )
      return [
        (t.number, t.state.name, t.params, t.value, t.intermediate_values)
        for t in optuna.load_study(study_name=LABEL, storage=storage).trials
      ]

    assert trials(out) == trials(tmp_path / "whole")


def test_a_resumed_sweep_reads_each_chunk_file_once(tmp_path, monkeypatch):
  # The keeper and the loop both start from the finished batches: read once, handed to both.
  config = with_changes(REGRESSION, keep={"models": 2})
  whole = _run(config, tmp_path, chunk_size=4)
  chunks = sorted(p.name for p in (tmp_path / "chunks").glob("g*.npz"))
  assert len(chunks) == 5  # 18 configurations in chunks of 4
  load, opened = np.load, []

  def counted(file, *args, **kwargs):
    opened.append(Path(getattr(file, "name", file)).name)
    return load(file, *args, **kwargs)

  monkeypatch.setattr(np, "load", counted)
  again = _run(config, tmp_path, chunk_size=4)
  assert sorted(name for name in opened if name in chunks) == chunks
  pd.testing.assert_frame_equal(again.summary, whole.summary, check_exact=True)
