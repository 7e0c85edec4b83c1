"""Successive halving and Hyperband: the strategies alone, then a scheduled sweep end to end."""

from __future__ import annotations

import copy
import functools

import jax
import numpy as np
import pandas as pd
import pytest

from _sweep_configs import HALVING
from _sweep_configs import with_changes as _with
from _tolerances import assert_within
from _training_bounds import training_bound
import momentum_jax as mj
from momentum_jax import results, sweep
from momentum_jax.sweep.strategies.halving import Hyperband, SuccessiveHalving

WIDTH = 2


def _plain(config: dict) -> dict:
  config = copy.deepcopy(config)
  del config["search"]
  return config


# --------------------------------------------------------------------------- strategies


def test_rungs_are_min_steps_times_powers_of_eta_then_the_last_step():
  assert SuccessiveHalving(3, 10).rungs(100) == [10, 30, 90, 100]
  assert SuccessiveHalving(3, 10).rungs(90) == [10, 30, 90]
  assert SuccessiveHalving(2, 5).rungs(40) == [5, 10, 20, 40]
  assert SuccessiveHalving(3, 30).rungs(30) == [30]


def test_survivors_are_the_best_third_by_the_mean_over_seeds():
  # 7 settings x 2 seeds: means 5, 1, 3, 2, 4, 0.5 (diverged), 6.
  values = np.array([[4, 6], [0, 2], [3, 3], [1, 3], [4, 4], [0, 1], [6, 6]], float)
  diverged = np.zeros_like(values, bool)
  diverged[5, 1] = True  # one seed diverged: the setting is out, however good
  rows = SuccessiveHalving(3, 10).survivors(values.reshape(-1), diverged.reshape(-1), seeds=2)
  np.testing.assert_array_equal(rows, [2, 3, 6, 7])  # settings 1 and 3: 7 // 3 = 2 of them
  best = SuccessiveHalving(3, 10, maximize=True).survivors(
    values.reshape(-1), diverged.reshape(-1), seeds=2
  )
  np.testing.assert_array_equal(best, [0, 1, 12, 13])  # settings 0 and 6: the highest means


def test_at_least_one_continues_and_a_diverged_one_never_does():
  halving = SuccessiveHalving(3, 10)
  np.testing.assert_array_equal(halving.survivors([3.0, 1.0], [False, False]), [1])
  np.testing.assert_array_equal(halving.survivors([3.0, 1.0], [False, True]), [0])
  assert halving.survivors([1.0, 2.0], [True, True]).size == 0
  # NaN ranks last, yet continues if nothing better is left.
  np.testing.assert_array_equal(halving.survivors([np.nan, 1.0, 2.0], [False] * 3), [1])


def test_hyperband_brackets_are_li_et_al_s():
  # Li et al. (2018), Table 1: R = 81, eta = 3: s_max = 4, and bracket s
  # starts n = ceil(5 / (s + 1) * 3^s) settings at r = 81 * 3^-s.
  brackets = Hyperband(3, 10).brackets(810)
  assert [n for n, _ in brackets] == [81, 34, 15, 8, 5]
  assert [h.min_steps for _, h in brackets] == [10, 30, 90, 270, 810]
  assert brackets[0][1].rungs(810) == [10, 30, 90, 270, 810]
  assert brackets[-1][1].rungs(810) == [810]
  # Not a power of eta: s_max = floor(log_3(100 / 10)) = 2.
  assert [(n, h.min_steps) for n, h in Hyperband(3, 10).brackets(100)] == [
    (9, 10),
    (5, 30),
    (3, 90),
  ]


def test_hyperband_shares_the_settings_out_in_proportion():
  hyperband = Hyperband(3, 10)
  exact = hyperband.split(81 + 34 + 15 + 8 + 5, 810)
  assert [len(rows) for rows, _ in exact] == [81, 34, 15, 8, 5]
  assert np.array_equal(np.sort(np.concatenate([r for r, _ in exact])), np.arange(143))
  small = hyperband.split(17, 100)  # 17 of 9 : 5 : 3
  assert [len(rows) for rows, _ in small] == [9, 5, 3]
  assert [len(rows) for rows, _ in hyperband.split(2, 100)] == [1, 1]  # the last dropped


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
  "scheduler, path, fragment",
  [
    (
      {"name": "succesive_halving", "min_steps": 10},
      "search.scheduler.name",
      "did you mean 'successive_halving'",
    ),
    ({"name": "hyperband", "eta": 1, "min_steps": 10}, "search.scheduler.eta", ">= 2"),
    ({"name": "hyperband", "eta": 2.5, "min_steps": 10}, "search.scheduler.eta", "integer"),
    ({"name": "hyperband"}, "search.scheduler.min_steps", "required"),
    (
      {"name": "hyperband", "min_steps": 15},
      "search.scheduler.min_steps",
      "multiple of train.log_every (10)",
    ),
    (
      {"name": "hyperband", "min_steps": 100},
      "search.scheduler.min_steps",
      "at most train.steps (90)",
    ),
    (
      {"name": "hyperband", "min_steps": 10, "etaa": 3},
      "search.scheduler.etaa",
      "did you mean 'eta'",
    ),
  ],
)
def test_bad_schedulers_name_their_path(scheduler, path, fragment):
  with pytest.raises(sweep.ConfigError) as error:
    sweep.load_config(_with(HALVING, search__scheduler=scheduler))
  assert error.value.path == path
  assert fragment in str(error.value)


def test_an_unknown_metric_is_refused_with_the_problem_s_metrics():
  with pytest.raises(sweep.ConfigError) as error:
    sweep.run(_with(HALVING, search__scheduler__metric="val_accuracy"), quiet=True)
  assert error.value.path == "search.scheduler.metric"
  assert "(one of final_loss, best_loss)" in str(error.value)
  digits = _with(
    HALVING, problem={"name": "digits_mlp", "hidden": [4]}, search__scheduler__metric="val_acuracy"
  )
  with pytest.raises(sweep.ConfigError, match="did you mean 'val_accuracy'"):
    sweep.run(digits, quiet=True)


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def halved():
  return sweep.run(HALVING, quiet=True, width=WIDTH)


@pytest.fixture(scope="module")
def plain():
  return sweep.run(_plain(HALVING), quiet=True, width=WIDTH)


def test_each_rung_keeps_the_best_third_of_the_settings(halved, plain):
  summary = halved.summary
  stopped = summary["stopped_at_step"].to_numpy()
  assert set(stopped) <= {10, 30, 90}
  reached = [int((stopped >= rung).sum()) for rung in (10, 30, 90)]
  assert reached == [18, 6, 2]  # 9 settings, then 3, then 1, two seeds each
  # The seeds of a setting stop together (rows: the seed fastest).
  assert np.all(stopped[0::2] == stopped[1::2])
  # The three that passed the first rung are the best by the plain sweep's
  # mean training loss at step 10 over the seeds (the same numbers, bit for bit).
  at_10 = plain.curves[plain.curves["step"] == 10].sort_values("config_id")
  means = at_10["train_loss"].to_numpy().reshape(9, 2).mean(axis=1)
  diverged = plain.summary["diverged_at_step"].fillna(10**9).to_numpy().reshape(9, 2).min(1) < 10
  expected = np.sort(np.argsort(np.where(diverged | np.isnan(means), np.inf, means))[:3])
  np.testing.assert_array_equal(np.flatnonzero(stopped[0::2] >= 30), expected)


def test_a_diverged_configuration_stops_at_the_first_rung_after_it(halved):
  summary = halved.summary
  gone = summary[summary["diverged"]]
  assert len(gone)  # learning rate 10 diverges
  first_rung_after = np.array(
    [next(r for r in (10, 30, 90) if r > step) for step in gone["diverged_at_step"]]
  )
  assert np.all(gone["stopped_at_step"].to_numpy() <= first_rung_after)
  assert not summary[summary["stopped_at_step"] == 90]["diverged"].any()


def test_the_survivors_curves_equal_the_plain_sweep_s_bit_for_bit(halved, plain):
  # Re-packing moves a row to another place of a narrower chunk of the same
  # width: its computation is unchanged.
  key = ["config_id", "step"]
  ours = halved.curves.sort_values(key).reset_index(drop=True)
  theirs = plain.curves.set_index(key).loc[pd.MultiIndex.from_frame(ours[key])].reset_index()
  theirs = theirs[ours.columns]
  pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
  # Curves end at stopped_at_step, and the summary's metrics are those there.
  ends = halved.curves.groupby("config_id")["step"].max()
  np.testing.assert_array_equal(ends.to_numpy(), halved.summary["stopped_at_step"].to_numpy())
  last = ours.groupby("config_id").tail(1).set_index("config_id")
  np.testing.assert_array_equal(
    halved.summary["final_loss"].to_numpy(), last["train_loss"].to_numpy()
  )
  winners = halved.summary[halved.summary["stopped_at_step"] == 90]
  pd.testing.assert_frame_equal(
    winners[["config_id", "final_loss", "best_loss"]].reset_index(drop=True),
    plain.summary.loc[winners.index, ["config_id", "final_loss", "best_loss"]].reset_index(
      drop=True
    ),
    check_exact=True,
  )


def test_survivors_fewer_than_the_width_train_narrower_and_differ_by_rounding_only():
  # 9 settings at width 4: 12 rows (3 batches of 4), then the 3 survivors
  # at width 3, alone in their batch: from then on XLA rounds the batched
  # MLP's reductions otherwise, within the rounding's measured reach
  # (_training_bounds.training_bound; the accuracy equal); before, bit for bit.
  config = {
    **HALVING,
    "problem": {"name": "digits_mlp", "hidden": [16]},
    "optimizer": {**HALVING["optimizer"], "learning_rate": {"logspace": [0.003, 3, 9]}},
    "train": {"steps": 30, "batch_size": 32, "log_every": 10},
    "seeds": 1,
    "search": {
      "method": "grid",
      "scheduler": {"name": "successive_halving", "eta": 3, "min_steps": 10, "metric": "val_loss"},
    },
  }
  halved = sweep.run(config, quiet=True, width=4)
  plain = sweep.run(_plain(config), quiet=True, width=4)
  ((bracket,),) = halved.manifest["scheduler"]["groups"].values()
  assert bracket["sizes"] == [9, 3] and bracket["widths"] == [4, 3]
  assert halved.manifest["compilations"] == 2
  kept = halved.summary[halved.summary["stopped_at_step"] == 30]["config_id"]
  key = ["config_id", "step"]
  ours = halved.curves[halved.curves["config_id"].isin(kept)].sort_values(key)
  theirs = plain.curves[plain.curves["config_id"].isin(kept)].sort_values(key)
  columns = ["train_loss", "grad_norm", "val_loss", "val_accuracy"]
  first = ours["step"].to_numpy() == 10
  np.testing.assert_array_equal(ours[columns].to_numpy()[first], theirs[columns].to_numpy()[first])
  rows = halved.summary.set_index("config_id").loc[sorted(kept)]
  loaded = sweep.load_config(config)
  _, bound = training_bound(
    sweep.build_problem(loaded),
    functools.partial(mj.momentum, ema=False),
    loaded.train,
    {"learning_rate": rows.learning_rate.to_numpy(), "beta": rows.beta.to_numpy()},
    jax.vmap(jax.random.key)(rows.seed.to_numpy()),
  )
  logs = len(bound["train_loss"][0])
  assert_within(
    {c: ours[c].to_numpy().reshape(-1, logs) for c in bound},
    {c: theirs[c].to_numpy().reshape(-1, logs) for c in bound},
    bound,
  )
  np.testing.assert_array_equal(ours.val_accuracy, theirs.val_accuracy)


def test_the_manifest_counts_rungs_sizes_steps_and_one_program_per_size(halved):
  record = halved.manifest["scheduler"]
  assert record["rungs"] == [10, 30, 90]
  assert record["sizes"] == {"momentum(ema=false)": [18, 6, 2]}
  assert record["config_steps"] == 18 * 10 + 6 * 20 + 2 * 60
  assert record["config_steps_full"] == 18 * 90
  assert record["metric"] == "final_loss"
  # Chunks of 18, 6 and 2 at width 2 on one device: three programs.
  assert halved.manifest["compilations"] == 3


def test_hyperband_runs_each_bracket_and_compiles_each_size_once():
  config = _with(HALVING, search__scheduler={"name": "hyperband", "eta": 3, "min_steps": 10})
  result = sweep.run(config, quiet=True, width=WIDTH)
  record = result.manifest["scheduler"]
  (brackets,) = record["groups"].values()
  # 9 settings shared 9 : 5 : 3 (as Hyperband(3, 10).brackets(90): (9, 10), (5, 30), (3, 90)).
  assert [b["rungs"] for b in brackets] == [[10, 30, 90], [30, 90], [90]]
  assert [b["sizes"] for b in brackets] == [[10, 2, 2], [6, 2], [2]]  # 5, 3, 1 settings
  assert record["config_steps"] == sum(b["config_steps"] for b in brackets)
  assert brackets[0]["config_steps"] == 10 * 10 + 2 * 20 + 2 * 60
  sizes = {-(-s // WIDTH) * WIDTH for b in brackets for s in b["sizes"] if s}
  assert result.manifest["compilations"] == len(sizes)
  stopped = result.summary["stopped_at_step"].to_numpy()
  assert int((stopped == 90).sum()) == 2 + 2 + 2


def test_a_scheduled_sweep_is_written_kept_and_read_back(tmp_path):
  small = _with(HALVING, optimizer__learning_rate=[0.01, 0.1, 1.0], seeds=1)
  first = sweep.run(small, tmp_path, quiet=True, width=WIDTH)
  assert first.summary["stopped_at_step"].tolist() == [10, 90, 10]
  again = sweep.run(small, tmp_path, quiet=True, width=WIDTH)  # the finished group is kept
  assert again.manifest["compilations"] == 0
  pd.testing.assert_frame_equal(again.summary, first.summary, check_exact=True)
  pd.testing.assert_frame_equal(again.curves, first.curves, check_exact=True)
  again.save(tmp_path)
  loaded = results.load_results(tmp_path)
  assert loaded.summary["stopped_at_step"].dtype == "Int64"
  pd.testing.assert_frame_equal(loaded.summary, first.summary, check_exact=False)
  assert "stopped_at_step" not in results.hyperparameter_columns(loaded.summary)


def test_the_report_ranks_those_that_trained_longest_first(halved):
  from momentum_jax import report

  ranked = report.best_configurations(halved.summary)
  steps = ranked["stopped_at_step"].to_numpy()
  assert steps[0] == 90 and np.all(np.diff(steps[ranked["diverged"].to_numpy() == 0]) <= 0)
  assert "stopped_at_step" in report.best_table(halved.summary).columns


def test_a_group_larger_than_the_devices_hold_is_refused(monkeypatch):
  # A scheduled group trains as one chunk: with room for one configuration a device, 18 are refused.
  from momentum_jax.sweep import _devices

  monkeypatch.setattr(_devices, "memory_budget", lambda device: 1)
  with pytest.raises(
    sweep.ConfigError,
    match=r"search\.scheduler: .*18 configurations are "
    r"ranked together, in one chunk.*sample fewer, or drop the scheduler",
  ):
    sweep.run(HALVING, quiet=True)
