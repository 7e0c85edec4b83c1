"""The Optuna journal of every sweep, read back through Optuna; what the dashboard command
and report.save say when an extra or the folder is missing.
"""

import logging
import math
import sys

import optuna
import pandas as pd

from momentum_jax import cli, report, results, sweep
from momentum_jax.sweep.strategies._optuna_study import JOURNAL_FILE

from _sweep_configs import REGRESSION, with_changes
from _sweep_fixture import make_result
from _journal import CONFIGURATIONS, _storage


def _studies(out_dir) -> dict[str, optuna.Study]:
  storage = _storage(out_dir)
  return {
    s.study_name: optuna.load_study(study_name=s.study_name, storage=storage)
    for s in optuna.get_all_study_summaries(storage)
  }


def _with_halving(result, stopped_lr=0.001, at=30):
  """The fixture as if a scheduler had stopped every learning rate ``stopped_lr`` at step ``at``."""
  summary = result.summary.copy()
  stopped = summary["learning_rate"] == stopped_lr
  summary["stopped_at_step"] = pd.array([at if s else 50 for s in stopped], dtype="Int64")
  return results.SweepResult(summary, result.curves, result.manifest)


def test_every_group_is_a_study_and_every_configuration_a_trial(tmp_path):
  result = _with_halving(make_result())
  written = report.save(result, tmp_path, figures=False)
  assert written["journal"] == tmp_path / JOURNAL_FILE
  studies = _studies(tmp_path)
  assert {name: len(s.trials) for name, s in studies.items()} == CONFIGURATIONS
  summary = result.summary
  for name, study in studies.items():
    assert study.direction == optuna.study.StudyDirection.MINIMIZE  # final_loss
    assert study.user_attrs["momentum_jax"] == "record"
    second = "beta" if name == "momentum" else "decay"
    for trial in study.trials:
      rows = summary[summary["config_id"].isin(trial.user_attrs["config_ids"])]
      assert trial.user_attrs["seeds"] == [0, 1] and (rows["optimizer"] == name).all()
      assert trial.params == {
        "learning_rate": rows["learning_rate"].iloc[0],
        second: rows[second].iloc[0],
      }
      # A list or logspace: the values the group took, as a category.
      assert trial.distributions["learning_rate"] == optuna.distributions.CategoricalDistribution(
        (0.001, 0.01, 0.1)
      )
      if rows["diverged"].any():
        expected = "FAIL"
      elif (rows["stopped_at_step"] < 50).all():
        expected = "PRUNED"
      else:
        expected = "COMPLETE"
      assert trial.state.name == expected
      if expected == "COMPLETE":
        # Two seeds' mean: one addition and a halving, within an ulp of the exact mean.
        assert math.isclose(trial.value, rows["final_loss"].mean(), rel_tol=4e-16)
      # The curve's mean over the seeds that did not diverge, where finite.
      healthy = rows[~rows["diverged"]] if not rows["diverged"].all() else rows
      curves = result.curves[result.curves["config_id"].isin(healthy["config_id"])]
      means = curves.groupby("step")["train_loss"].mean()
      expected_curve = {int(s): v for s, v in means.items() if math.isfinite(v)}
      assert trial.intermediate_values.keys() == expected_curve.keys()
      for step, value in trial.intermediate_values.items():
        assert math.isclose(value, expected_curve[step], rel_tol=4e-16)
  states = [t.state.name for s in studies.values() for t in s.trials]
  # momentum lr=0.1 β=0.9 lost a seed; rmsprop lr=0.1 decay=0.99 both; lr=0.001 stopped.
  assert states.count("FAIL") == 2 and states.count("PRUNED") == 4


def test_accuracies_are_maximized_and_the_best_trial_is_the_reports_best(tmp_path):
  result = make_result(classification=True)
  report.save(result, tmp_path, figures=False)
  best = report.best_table(result.summary, n=1).iloc[0]
  studies = _studies(tmp_path)
  study = studies[best["optimizer"]]
  assert study.direction == optuna.study.StudyDirection.MAXIMIZE
  assert study.best_trial.params["learning_rate"] == best["learning_rate"]
  assert math.isclose(study.best_value, best["val_accuracy_mean"], rel_tol=4e-16)
  assert max(s.best_value for s in studies.values()) == study.best_value


def test_a_searched_range_is_its_distribution_stretched_to_a_point_rounded_past_an_end(tmp_path):
  result = make_result()
  below = math.nextafter(0.1, 0.0)  # as if the sampler's exp() had rounded 0.1 up an ulp
  search = {
    "method": "random",
    "groups": {"momentum": {"ranges": {"learning_rate": {"loguniform": [0.001, below]}}}},
  }
  result = results.SweepResult(
    result.summary, result.curves, {**result.manifest.to_dict(), "search": search}
  )
  report.save(result, tmp_path, figures=False)
  studies = _studies(tmp_path)
  for trial in studies["momentum"].trials:
    assert trial.distributions["learning_rate"] == optuna.distributions.FloatDistribution(
      0.001, 0.1, log=True
    )
  # A group without a recorded range: the values it took.
  assert studies["rmsprop"].trials[0].distributions["learning_rate"] == (
    optuna.distributions.CategoricalDistribution((0.001, 0.01, 0.1))
  )


def test_a_searchs_own_studies_are_kept_and_saving_again_replaces_only_the_record(tmp_path):
  search = optuna.create_study(study_name="momentum", storage=_storage(tmp_path))
  search.add_trial(
    optuna.trial.create_trial(
      params={"learning_rate": 0.5},
      distributions={"learning_rate": optuna.distributions.FloatDistribution(0.1, 1.0)},
      value=1.0,
    )
  )
  result = make_result()
  report.save(result, tmp_path, figures=False)
  report.save(result, tmp_path, figures=False)  # a resumed or extended sweep saves again
  studies = _studies(tmp_path)
  assert sorted(studies) == ["momentum", "momentum (record)", "rmsprop"]
  assert (
    len(studies["momentum"].trials) == 1 and "momentum_jax" not in studies["momentum"].user_attrs
  )
  assert len(studies["momentum (record)"].trials) == CONFIGURATIONS["momentum"]


def test_an_optuna_search_with_halving_keeps_its_studies_and_its_record_agrees(tmp_path):
  label = "momentum(ema=false)"
  config = {
    **with_changes(
      REGRESSION,
      optimizer__learning_rate={"loguniform": [0.003, 0.3]},
      optimizer__beta=[0.0, 0.9],
      train__steps=60,
      train__log_every=20,
    ),
    "search": {
      "method": "optuna",
      "sampler": "tpe",
      "trials": 6,
      "batch": 6,
      "seed": 0,
      "metric": "final_loss",
      "scheduler": {"name": "successive_halving", "eta": 2, "min_steps": 20},
    },
  }
  result = sweep.run(config, tmp_path, quiet=True)
  report.save(result, tmp_path, figures=False)
  studies = _studies(tmp_path)
  assert sorted(studies) == [label, f"{label} (record)"]
  searched, record = studies[label].trials, studies[f"{label} (record)"].trials
  assert len(record) == len(searched) == 6
  by_number = {t.user_attrs["trial"]: t for t in record}
  for trial in searched:
    mine = by_number[trial.number]
    assert mine.params == trial.params and mine.state == trial.state
    assert mine.distributions["learning_rate"] == optuna.distributions.FloatDistribution(
      0.003, 0.3, log=True
    )
    if trial.state.name == "COMPLETE":
      # Both the mean of the same two float32 values, summed in either order.
      assert math.isclose(mine.value, trial.value, rel_tol=4e-16)
  assert any(t.state.name == "PRUNED" for t in record)


def test_without_plotly_or_optuna_the_other_files_are_written_and_the_log_says_why(
  tmp_path, monkeypatch, caplog
):
  monkeypatch.setitem(sys.modules, "plotly", None)
  monkeypatch.setitem(sys.modules, "optuna", None)
  with caplog.at_level(logging.INFO, logger="momentum_jax.report._save"):
    written = report.save(make_result(), tmp_path, figures=False)
  assert written["html"] is None and written["journal"] is None
  assert (tmp_path / "summary.md").is_file() and not (tmp_path / "report.html").exists()
  assert caplog.text.count("pip install 'momentum_jax[dashboard]'") == 2


def test_the_dashboard_command_names_the_extra_it_needs(tmp_path, monkeypatch, capsys):
  monkeypatch.setitem(sys.modules, "optuna_dashboard", None)
  assert cli.main(["dashboard", str(tmp_path)]) == 2
  assert "pip install 'momentum_jax[dashboard]'" in capsys.readouterr().err


def test_the_dashboard_command_says_what_a_folder_lacks(tmp_path, capsys):
  assert cli.main(["dashboard", str(tmp_path / "nowhere")]) == 2
  assert "no sweep result folder" in capsys.readouterr().err
