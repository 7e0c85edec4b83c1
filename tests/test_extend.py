"""A finished search extended: more trials or points on the same folder train only the new ones.

As Optuna users call ``study.optimize`` again: raising ``search.trials``
(Optuna) or ``search.samples`` (random, quasi-random: scrambled Halton's and
the seeded generator's first points do not change) and running on the same
folder keeps every finished configuration and trains the new ones; the
results equal a sweep run at the larger size from the start, bit for bit
(the same width, the same batches of trials). Anything else that changes
the sweep is refused as before.
"""

from __future__ import annotations

import pandas as pd
import pytest

from _sweep_configs import HALVING, TWO_GROUPS, with_changes
from momentum_jax import sweep

WIDTH = 2
POINTS = with_changes(
  HALVING,
  optimizer__learning_rate={"loguniform": [0.001, 1.0]},
  search={"method": "quasirandom", "samples": 6, "seed": 1},
)
TRIALS = with_changes(POINTS, search={"method": "optuna", "trials": 6, "batch": 3, "seed": 0})


def _run(config, out=None):
  return sweep.run(config, out, quiet=True, width=WIDTH)


# name: (the sweep, the larger one, (rows kept, rows trained), what the manifest says grew).
# More seeds: each setting's seeds are adjacent, so every trained row moves (0, 1 | 2, 3 | ...
# becomes 0, 1, _ | 3, 4, _ | ...), renumbered on resume; only the new seed's rows train.
EXTENDED = {
  "samples": (POINTS, with_changes(POINTS, search__samples=10), (12, 8), "search.samples 6 -> 10"),
  "trials": (TRIALS, with_changes(TRIALS, search__trials=10), (12, 8), "search.trials 6 -> 10"),
  "seeds": (TWO_GROUPS, {**TWO_GROUPS, "seeds": 3}, (24, 12), "seeds [0, 1] -> [0, 1, 2]"),
  "seed list": (
    TWO_GROUPS,
    {**TWO_GROUPS, "seeds": [0, 1, 7]},
    (24, 12),
    "seeds [0, 1] -> [0, 1, 7]",
  ),
}


@pytest.mark.parametrize("name", EXTENDED)
def test_an_extended_search_trains_only_the_new_rows_and_equals_the_larger_sweep(name, tmp_path):
  config, larger, counts, grew = EXTENDED[name]
  _run(config, tmp_path)
  extended = _run(larger, tmp_path)
  checkpoint = extended.manifest["checkpoint"]
  assert (checkpoint["configs_resumed"], checkpoint["configs_trained"]) == counts
  assert checkpoint["extended"] == [grew]
  fresh = _run(larger)
  pd.testing.assert_frame_equal(extended.summary, fresh.summary, check_exact=True)
  pd.testing.assert_frame_equal(extended.curves, fresh.curves, check_exact=True)
  again = _run(larger, tmp_path)  # finished: nothing trains, the record stays
  assert again.manifest["checkpoint"]["configs_trained"] == 0
  assert again.manifest["checkpoint"]["extended"] == [grew]


def test_fewer_points_or_another_change_is_still_refused(tmp_path):
  _run(POINTS, tmp_path)
  for changed in (
    with_changes(POINTS, search__samples=4),
    with_changes(POINTS, search__samples=8, search__seed=2),
  ):
    with pytest.raises(sweep.OutputDirError, match="holds a sweep of a different config"):
      _run(changed, tmp_path)


def test_points_crossed_with_a_list_cannot_be_extended_in_place(tmp_path):
  crossed = with_changes(POINTS, optimizer__beta=[0.5, 0.9])
  _run(crossed, tmp_path)
  with pytest.raises(
    sweep.OutputDirError,
    match=r"fewer points \(search\.samples 6 -> 8\).*"
    r"cross the points with lists",
  ):
    _run(with_changes(crossed, search__samples=8), tmp_path)


def test_more_seeds_under_a_search_that_ranks_are_refused(tmp_path):
  _run(HALVING, tmp_path)
  with pytest.raises(
    sweep.OutputDirError,
    match=r"fewer seeds \(seeds \[0, 1\] -> "
    r"\[0, 1, 2\]\).*cannot take up",
  ):
    _run({**HALVING, "seeds": 3}, tmp_path)
  with pytest.raises(sweep.OutputDirError, match="holds a sweep of a different config"):
    _run({**HALVING, "seeds": [1, 0]}, tmp_path)  # not the old seeds first
