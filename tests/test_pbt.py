"""Population-based training: the strategy alone, its config, then a PBT sweep end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from _sweep_configs import REGRESSION_PBT
from _sweep_configs import with_changes as _with
from momentum_jax import report, results, sweep
from momentum_jax.sweep.strategies.pbt import PopulationBasedTraining, exploit_steps, generator
from momentum_jax.sweep._space import Range

PBT = REGRESSION_PBT  # (tests/_sweep_configs.py)
WIDTH = 2
SEEDS = 2
RANGE = Range("loguniform", 0.001, 0.5)


# --------------------------------------------------------------------------- strategy


def test_the_worst_member_copies_the_best():
  # 8 members, 1 seed; fraction 1/8: one replaced, one to copy from.
  values = np.array([5.0, 1.0, 3.0, 2.0, 4.0, 0.5, 6.0, 7.0])
  pbt = PopulationBasedTraining(fraction=0.125)
  np.testing.assert_array_equal(pbt.ranking(values, np.zeros(8, bool)), [5, 1, 3, 2, 4, 0, 6, 7])
  sources = pbt.sources(values, np.zeros(8, bool), 1, generator(0, 0))
  np.testing.assert_array_equal(sources, [0, 1, 2, 3, 4, 5, 6, 5])
  best = PopulationBasedTraining(fraction=0.125, maximize=True)
  np.testing.assert_array_equal(
    best.sources(values, np.zeros(8, bool), 1, generator(0, 0)), [0, 1, 2, 3, 4, 7, 6, 7]
  )


def test_the_bottom_quarter_copies_the_top_quarter_by_the_mean_over_seeds():
  # 8 members x 2 seeds: means 5, 1, 3, 2, 4, 0.5, 6, 7; member 1 lost a seed.
  rows = np.array([[4, 6], [0, 2], [3, 3], [1, 3], [4, 4], [0, 1], [6, 6], [7, 7]], float)
  diverged = np.zeros_like(rows, bool)
  diverged[1, 0] = True
  pbt = PopulationBasedTraining(fraction=0.25)
  order = pbt.ranking(rows.reshape(-1), diverged.reshape(-1), seeds=2)
  np.testing.assert_array_equal(order, [5, 3, 2, 4, 0, 6, 7, 1])  # the diverged one last
  for seed in range(20):
    sources = pbt.sources(rows.reshape(-1), diverged.reshape(-1), 2, generator(seed, 0))
    assert set(sources[[1, 7]]) <= {5, 3}
    np.testing.assert_array_equal(np.delete(sources, [1, 7]), [0, 2, 3, 4, 5, 6])
  # Both top members are drawn, over a few seeds.
  drawn = {
    tuple(pbt.sources(rows.reshape(-1), diverged.reshape(-1), 2, generator(s, 0))[[1, 7]])
    for s in range(20)
  }
  assert {d[0] for d in drawn} == {5, 3}


def test_nothing_is_copied_from_a_diverged_member_nor_with_fraction_zero():
  values = np.arange(4.0)
  everything_diverged = np.ones(4, bool)
  assert np.array_equal(
    PopulationBasedTraining(0.5).sources(values, everything_diverged, 1, generator(0, 0)),
    np.arange(4),
  )
  assert np.array_equal(
    PopulationBasedTraining(0.0).sources(values, np.zeros(4, bool), 1, generator(0, 0)),
    np.arange(4),
  )
  # NaN ranks last: replaced, never a source.
  sources = PopulationBasedTraining(0.25).sources(
    np.array([np.nan, 2.0, 1.0, 3.0]), np.zeros(4, bool), 1, generator(0, 0)
  )
  np.testing.assert_array_equal(sources, [2, 1, 2, 3])


def test_a_copied_range_value_is_multiplied_by_a_factor_then_clipped_the_rest_copied():
  pbt = PopulationBasedTraining(0.5, perturb=(0.5, 2.0))
  values = {
    "learning_rate": np.array([0.4, 0.01, 0.003, 0.2]),
    "beta": np.array([0.1, 0.2, 0.3, 0.4]),
  }
  sources = np.array([0, 1, 0, 1])
  new = pbt.explore(values, sources, {"learning_rate": RANGE}, generator(0, 0))
  np.testing.assert_array_equal(new["beta"], [0.1, 0.2, 0.1, 0.2])  # no range: copied
  np.testing.assert_array_equal(new["learning_rate"][:2], [0.4, 0.01])  # staying: their own
  assert new["learning_rate"][2] in (0.2, 0.5)  # 0.4 x 0.5, or 0.4 x 2 clipped to 0.5
  assert new["learning_rate"][3] in (0.005, 0.02)
  always_up = PopulationBasedTraining(0.5, perturb=(2.0,)).explore(
    values, sources, {"learning_rate": RANGE}, generator(0, 0)
  )
  np.testing.assert_array_equal(always_up["learning_rate"], [0.4, 0.01, 0.5, 0.02])


def test_exploits_come_every_interval_before_the_last_step():
  assert exploit_steps(20, 60) == [20, 40]
  assert exploit_steps(20, 50) == [20, 40]
  assert exploit_steps(30, 40) == [30]


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
  "changes, path, fragment",
  [
    ({"population": 1}, "search.population", ">= 2"),
    ({"population": None}, "search.population", "required"),
    ({"interval": 15}, "search.interval", "multiple of train.log_every (10)"),
    ({"interval": 60}, "search.interval", "below train.steps (60)"),
    ({"interval": 0}, "search.interval", ">= 1"),
    ({"fraction": 0.6}, "search.fraction", "must be <= 0.5"),
    ({"fraction": 0.1}, "search.fraction", "no member"),
    ({"perturb": []}, "search.perturb", "must not be empty"),
    ({"perturb": [1.2, -0.8]}, "search.perturb[1]", "must be > 0"),
    ({"seed": -1}, "search.seed", ">= 0"),
    (
      {"scheduler": {"name": "hyperband", "min_steps": 10}},
      "search.scheduler",
      "method pbt takes no 'scheduler'",
    ),
    ({"samples": 8}, "search.samples", "method pbt takes no 'samples'"),
    ({"intervall": 20}, "search.intervall", "did you mean 'interval'"),
  ],
)
def test_bad_pbt_configs_name_their_path(changes, path, fragment):
  search = {k: v for k, v in {**PBT["search"], **changes}.items() if v is not None}
  with pytest.raises(sweep.ConfigError) as error:
    sweep.load_config(_with(PBT, search=search))
  assert error.value.path == path
  assert fragment in str(error.value)


def test_the_metric_defaults_to_a_loss_the_problem_logs_and_others_are_refused():
  from momentum_jax import problems
  from momentum_jax.sweep._searches import Searches

  search = {k: v for k, v in PBT["search"].items() if k != "metric"}
  config = sweep.load_config(_with(PBT, search=search))
  # The regression has no validation split: its members rank by final_loss.
  assert Searches(config, problems.get_problem("linear_regression")).metric == ("final_loss")
  assert Searches(config, problems.get_problem("digits_mlp")).metric == "val_loss"
  with pytest.raises(sweep.ConfigError) as error:
    sweep.run(_with(PBT, search={**search, "metric": "val_loss"}), quiet=True)
  assert error.value.path == "search.metric"
  assert "logs no 'val_loss'" in str(error.value)


# --------------------------------------------------------------------------- end to end


def _quasirandom(config: dict) -> dict:
  search = config["search"]
  return _with(
    config,
    search={"method": "quasirandom", "samples": search["population"], "seed": search["seed"]},
  )


@pytest.fixture(scope="module")
def population():
  return sweep.run(PBT, quiet=True, width=WIDTH)


@pytest.fixture(scope="module")
def plain():
  """The quasirandom sweep of PBT's seed: its initial population, trained without exploits."""
  return sweep.run(_quasirandom(PBT), quiet=True, width=WIDTH)


def test_with_fraction_zero_pbt_is_the_quasirandom_sweep_bit_for_bit(plain):
  ours = sweep.run(_with(PBT, search__fraction=0), quiet=True, width=WIDTH)
  pd.testing.assert_frame_equal(
    ours.summary[plain.summary.columns], plain.summary, check_exact=True
  )
  pd.testing.assert_frame_equal(ours.curves[plain.curves.columns], plain.curves, check_exact=True)
  assert (ours.summary["lineage"] == "[]").all()
  np.testing.assert_array_equal(ours.summary["final_learning_rate"], plain.summary["learning_rate"])
  np.testing.assert_array_equal(ours.summary["member"], np.arange(16) // SEEDS)
  assert ours.manifest["search"]["exploits"] == {"momentum(ema=false)": []}
  assert ours.manifest["compilations"] == 1


def test_a_copy_continues_exactly_as_its_source(population, plain):
  # At factor 1 a replaced member takes its source's state and learning
  # rate: the next log of each of its seeds is the source's, bit for bit.
  result = population
  curves = result.curves.set_index(["config_id", "step"])
  events = result.manifest["search"]["exploits"]["momentum(ema=false)"]
  assert len(events) == 2 * 2  # a quarter of 8, at steps 20 and 40
  unchanged = [
    e
    for e in events
    if e["values"]["learning_rate"] == curves.loc[(e["source"] * SEEDS, e["step"]), "learning_rate"]
  ]
  assert len(unchanged) == 2
  for event in unchanged:
    for seed in range(SEEDS):
      mine, theirs = event["member"] * SEEDS + seed, event["source"] * SEEDS + seed
      next_log = curves.loc[(mine, event["step"] + 10)]
      source = curves.loc[(theirs, event["step"] + 10)]
      assert next_log["train_loss"] == source["train_loss"]
      assert next_log["grad_norm"] == source["grad_norm"]
      assert next_log["learning_rate"] == source["learning_rate"]
  # Before its first copy a member's curve is its own: the quasirandom sweep's.
  first = result.curves["step"] <= 20
  np.testing.assert_array_equal(
    result.curves[first]["train_loss"], plain.curves[first]["train_loss"]
  )


def test_a_replaced_member_takes_its_source_s_values_times_a_factor_clipped(population):
  events = population.manifest["search"]["exploits"]["momentum(ema=false)"]
  assert len(events) == 4
  curves = population.curves.set_index(["config_id", "step"])
  factors = set()
  for event in events:
    before = curves.loc[(event["source"] * SEEDS, event["step"]), "learning_rate"]
    expected = {float(np.clip(before * f, 0.001, 0.5)): f for f in (1.0, 2.0)}
    assert event["values"]["learning_rate"] in expected
    factors.add(expected[event["values"]["learning_rate"]])
    assert event["values"]["beta"] == 0.9  # a list's value: copied unchanged
    after = curves.loc[(event["member"] * SEEDS, event["step"] + 10), "learning_rate"]
    assert after == event["values"]["learning_rate"]
  assert factors == {1.0, 2.0}


def test_the_curves_hyperparameters_change_only_after_an_exploit(population):
  curves, summary = population.curves, population.summary
  events = population.manifest["search"]["exploits"]["momentum(ema=false)"]
  copied = {(e["member"], e["step"]) for e in events}
  for config_id, curve in curves.groupby("config_id"):
    lr = curve["learning_rate"].to_numpy()
    steps = curve["step"].to_numpy()
    changed = {int(s) for s in steps[:-1][lr[1:] != lr[:-1]]}
    member = config_id // SEEDS
    assert changed == {step for m, step in copied if m == member}
    assert lr[0] == summary.loc[config_id, "learning_rate"]
    assert lr[-1] == summary.loc[config_id, "final_learning_rate"]
  assert any(curves["learning_rate"] != curves["config_id"].map(summary["learning_rate"]))


def test_the_lineage_is_the_manifest_s_events(population):
  events = population.manifest["search"]["exploits"]["momentum(ema=false)"]
  for row in population.summary.itertuples():
    expected = [[e["step"], e["source"]] for e in events if e["member"] == row.member]
    assert json.loads(row.lineage) == expected


def test_the_same_config_gives_the_same_run_written_and_kept(population, tmp_path):
  again = sweep.run(PBT, tmp_path, quiet=True, width=WIDTH)
  again.save(tmp_path)  # the figures: tests/test_plots.py
  pd.testing.assert_frame_equal(again.summary, population.summary, check_exact=True)
  pd.testing.assert_frame_equal(again.curves, population.curves, check_exact=True)
  assert again.manifest["search"]["exploits"] == population.manifest["search"]["exploits"]
  # Written, read back with its dtypes, and kept on a re-run (nothing trains).
  loaded = results.load_results(tmp_path)
  assert loaded.summary["lineage"].tolist() == population.summary["lineage"].tolist()
  assert loaded.summary["member"].dtype == "int64"
  assert "lineage" not in results.hyperparameter_columns(loaded.summary)
  kept = sweep.run(PBT, tmp_path, quiet=True, width=WIDTH)
  assert kept.manifest["compilations"] == 0
  pd.testing.assert_frame_equal(kept.summary, population.summary, check_exact=True)
  assert kept.manifest["search"]["exploits"] == population.manifest["search"]["exploits"]


def test_the_report_ranks_members_by_their_final_metric(population):
  ranked = report.best_configurations(population.summary, by="final_loss")
  assert len(ranked) == 8  # one row per member
  means = population.summary.groupby("member")["final_loss"].mean().sort_values()
  np.testing.assert_allclose(ranked["final_loss_mean"], means.to_numpy())
  assert "final_learning_rate" in report.best_table(population.summary).columns
  assert "# Sweep report" in report.format_report(population)


def test_the_figures_plot_the_members_settings_not_their_final_values(population):
  from momentum_jax.report import plots

  plan = plots.plan_figures(population)
  # One swept setting (beta is a list of one): no heatmap of lr against final lr.
  assert plan.hyperparameters == ("learning_rate",) and plan.heatmaps == {}
  assert not any("final_" in name for name in plan.files)
  assert results.swept_hyperparameters(population.summary) == [
    "learning_rate",
    "final_learning_rate",
  ]


def test_the_exploits_over_three_devices_equal_one_device_bit_for_bit(tmp_path, population):
  # The copy is a gather laid out with the carry's sharding: over several
  # devices XLA moves the rows between them; the results must not change.
  script = textwrap.dedent("""
      import json, sys
      import jax
      from momentum_jax import sweep
      result = sweep.run(json.loads(sys.argv[1]), quiet=True, width=int(sys.argv[2]))
      result.summary.to_parquet(f"{sys.argv[3]}/summary.parquet")  # floats exactly
      result.curves.to_parquet(f"{sys.argv[3]}/curves.parquet")
      print(len(jax.devices()), len(result.manifest["search"]["exploits"]))
  """)
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=3", JAX_PLATFORMS="cpu")
  out = subprocess.run(
    [sys.executable, "-c", script, json.dumps(PBT), str(WIDTH), str(tmp_path)],
    env=env,
    capture_output=True,
    text=True,
    check=True,
    timeout=300,
  )
  devices, exploits = map(int, out.stdout.split()[-2:])
  single = population  # PBT at WIDTH on this process's one device
  assert devices == 3 and exploits == len(single.manifest["search"]["exploits"]) > 0
  for name, frame in (("summary", single.summary), ("curves", single.curves)):
    pd.testing.assert_frame_equal(
      pd.read_parquet(tmp_path / f"{name}.parquet"), frame, check_exact=True
    )


def test_a_population_larger_than_the_devices_hold_is_refused(monkeypatch):
  from momentum_jax.sweep import _devices

  monkeypatch.setattr(_devices, "memory_budget", lambda device: 1)
  with pytest.raises(
    sweep.ConfigError,
    match=r"search\.population: .*16 configurations are "
    r"ranked together, in one chunk.*a smaller population",
  ):
    sweep.run(PBT, quiet=True)
