"""Sweep results: storage round trip, atomic writes, ranking, pooling over seeds, report."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from _sweep_fixture import make_result
from momentum_jax import report, results
from momentum_jax.results import SweepResult
from momentum_jax.runtime import files


@pytest.fixture
def regression():
  return make_result(classification=False)


@pytest.fixture
def classification():
  return make_result(classification=True)


def _assert_same(loaded: SweepResult, expected: SweepResult):
  pd.testing.assert_frame_equal(loaded.summary, expected.summary, check_exact=True)
  pd.testing.assert_frame_equal(loaded.curves, expected.curves, check_exact=True)
  assert loaded.manifest == expected.manifest


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("classification", [False, True])
def test_write_then_load_gives_equal_frames(tmp_path, classification):
  result = make_result(classification)
  # Awkward floats, a column that is NaN everywhere, and infinities must all survive CSV.
  result.summary["learning_rate"] *= 1 / 3
  result.summary["schedule.t_max"] = np.nan
  paths = results.write_results(result, tmp_path / "new" / "folder")
  assert {name: path.name for name, path in paths.items()} == {
    "summary": "summary.csv",
    "curves": "curves.parquet",
    "manifest": "manifest.json",
  }
  loaded = results.load_results(tmp_path / "new" / "folder")
  _assert_same(loaded, result)
  assert loaded.summary["diverged_at_step"].dtype == "Int64"
  assert loaded.summary["diverged_at_step"].isna().sum() == 21
  assert np.isinf(loaded.summary["final_loss"]).sum() == 3


def test_round_trip_keeps_dtypes_when_nothing_diverged(tmp_path, regression):
  # An all-NA Int64 column is an empty CSV column, which pandas reads as float.
  summary = regression.summary[~regression.summary["diverged"]].reset_index(drop=True)
  result = SweepResult(summary, regression.curves, regression.manifest)
  results.write_results(result, tmp_path)
  _assert_same(results.load_results(tmp_path), result)


def test_optimizer_names_that_look_missing_stay_names(tmp_path, regression):
  regression.summary["optimizer"] = regression.summary["optimizer"].replace(
    {"momentum": "NA", "rmsprop": "nan"}
  )
  results.write_results(regression, tmp_path)
  loaded = results.load_results(tmp_path)
  assert loaded.summary["optimizer"].tolist() == regression.summary["optimizer"].tolist()


def test_manifest_is_sorted_indented_json(tmp_path, regression):
  # numpy scalars are written as numbers
  regression.manifest = dataclasses.replace(regression.manifest, compilations=np.int64(2))
  path = results.write_results(regression, tmp_path)["manifest"]
  text = path.read_text()
  assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
  assert json.loads(text)["compilations"] == 2


def test_unserialisable_manifest_writes_nothing(tmp_path, regression):
  regression.manifest = dataclasses.replace(regression.manifest, extra={"model": object()})
  with pytest.raises(TypeError, match="JSON-serialisable"):
    results.write_results(regression, tmp_path / "out")
  assert not (tmp_path / "out").exists()


def test_write_rejects_missing_columns_and_repeated_ids(tmp_path, regression):
  broken = SweepResult(regression.summary.drop(columns="seed"), regression.curves, {})
  with pytest.raises(ValueError, match=r"summary lacks the columns \['seed'\]"):
    results.write_results(broken, tmp_path)
  repeated = regression.summary.copy()
  repeated.loc[1, "config_id"] = 0
  with pytest.raises(ValueError, match=r"config_id must be unique, got repeats \[0\]"):
    results.write_results(SweepResult(repeated, regression.curves, {}), tmp_path)


def test_load_names_the_folder_and_the_missing_file(tmp_path, regression):
  results.write_results(regression, tmp_path)
  (tmp_path / "curves.parquet").unlink()
  with pytest.raises(FileNotFoundError, match=rf"{tmp_path}.*curves\.parquet missing"):
    results.load_results(tmp_path)
  with pytest.raises(FileNotFoundError, match="no sweep result folder"):
    results.load_results(tmp_path / "absent")


def test_atomic_write_replaces_the_whole_file(tmp_path):
  path = tmp_path / "checkpoint.bin"
  files.atomic_write_bytes(path, b"old content, longer than the new")
  files.atomic_write_bytes(path, b"new")
  assert path.read_bytes() == b"new"
  assert files.atomic_write_text(tmp_path / "note.txt", "β = 0.9").read_text() == "β = 0.9"


def _fail(*args):
  raise OSError("simulated crash before the rename")


def test_failed_replace_keeps_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
  path = tmp_path / "checkpoint.bin"
  files.atomic_write_bytes(path, b"old")
  monkeypatch.setattr(files.os, "replace", _fail)
  with pytest.raises(OSError, match="simulated crash"):
    files.atomic_write_bytes(path, b"new")
  assert path.read_bytes() == b"old"
  assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.bin"]


def test_failed_write_inside_atomic_path_keeps_old_file(tmp_path):
  path = tmp_path / "curves.parquet"
  path.write_bytes(b"old")
  with pytest.raises(RuntimeError):
    with files.atomic_path(path) as temporary:
      temporary.write_bytes(b"half of the")
      raise RuntimeError("writer crashed")
  assert path.read_bytes() == b"old"
  assert [p.name for p in tmp_path.iterdir()] == ["curves.parquet"]


def test_failed_write_results_keeps_previous_result(tmp_path, monkeypatch, regression):
  results.write_results(regression, tmp_path)
  before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
  changed = SweepResult(regression.summary.head(3), regression.curves.head(3), {"other": 1})
  monkeypatch.setattr(files.os, "replace", _fail)
  with pytest.raises(OSError):
    results.write_results(changed, tmp_path)
  assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


# --------------------------------------------------------------------------- tables


def test_hyperparameter_columns(classification):
  assert results.hyperparameter_columns(classification.summary) == [
    "learning_rate",
    "beta",
    "decay",
  ]
  only_momentum = classification.summary[classification.summary["optimizer"] == "momentum"]
  assert results.swept_hyperparameters(only_momentum) == ["learning_rate", "beta"]
  assert results.swept_hyperparameters(only_momentum[only_momentum["beta"] == 0.9]) == [
    "learning_rate"
  ]


def _keys(frame):
  return [
    (
      row.optimizer,
      row.learning_rate,
      row.beta if row.optimizer == "momentum" else row.decay,
      row.seed,
    )
    for row in frame.itertuples()
  ]


def test_best_configs_ranks_by_final_loss_without_validation(regression):
  best = results.best_configs(regression.summary, n=5)
  assert _keys(best) == [
    ("momentum", 0.01, 0.0, 0),
    ("momentum", 0.01, 0.0, 1),
    ("momentum", 0.01, 0.9, 0),
    ("momentum", 0.01, 0.9, 1),
    ("momentum", 0.001, 0.0, 0),
  ]
  np.testing.assert_allclose(best["final_loss"], [0.1, 0.11, 1.0, 1.01, 1.1])


def test_best_configs_ranks_by_validation_accuracy_when_present(classification):
  best = results.best_configs(classification.summary, n=3)
  # val_accuracy peaks at lr=0.1 and second=0; the momentum β=0.9 run at lr=0.1
  # that diverged has NaN accuracy and must not appear.
  assert _keys(best) == [
    ("momentum", 0.1, 0.0, 1),
    ("momentum", 0.1, 0.0, 0),
    ("rmsprop", 0.1, 0.9, 1),
  ]


def test_best_configs_excludes_diverged_runs(regression):
  # The diverged runs reached the lowest loss of all (0.01) before blowing up.
  assert regression.summary["best_loss"].min() == 0.01
  best = results.best_configs(regression.summary, n=24, by="best_loss")
  assert len(best) == 21
  assert not best["diverged"].any()
  assert best["best_loss"].iloc[0] == pytest.approx(0.1)


def test_best_configs_rejects_bad_arguments(regression):
  with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
    results.best_configs(regression.summary, n=0)
  with pytest.raises(ValueError, match="by must be a column of the summary.*got 'accuracy'"):
    results.best_configs(regression.summary, by="accuracy")


def test_aggregate_over_seeds_matches_hand_means(classification):
  pooled = results.aggregate_over_seeds(classification.summary)
  assert len(pooled) == 12
  assert list(pooled.columns) == [
    "optimizer",
    "learning_rate",
    "beta",
    "decay",
    "seeds",
    "diverged",
    "final_loss_mean",
    "final_loss_std",
    "best_loss_mean",
    "best_loss_std",
    "val_loss_mean",
    "val_loss_std",
    "val_accuracy_mean",
    "val_accuracy_std",
  ]
  by_setting = pooled.set_index(["optimizer", "learning_rate", "beta", "decay"])

  healthy = by_setting.loc[("momentum", 0.01, 0.0, np.nan)]
  assert (healthy["seeds"], healthy["diverged"]) == (2, 0)
  assert healthy["final_loss_mean"] == pytest.approx((0.1 + 0.11) / 2)
  assert healthy["final_loss_std"] == pytest.approx(math.sqrt(2 * 0.005**2))
  assert healthy["val_accuracy_mean"] == pytest.approx((0.8 + 0.801) / 2)

  # One seed diverged: the other seed's values, no spread, and the count.
  partial = by_setting.loc[("momentum", 0.1, 0.9, np.nan)]
  assert (partial["seeds"], partial["diverged"]) == (2, 1)
  assert partial["final_loss_mean"] == pytest.approx(0.1 + 1 + 0.9)
  assert math.isnan(partial["final_loss_std"])

  lost = by_setting.loc[("rmsprop", 0.1, np.nan, 0.99)]
  assert (lost["seeds"], lost["diverged"]) == (2, 2)
  assert math.isnan(lost["final_loss_mean"])


# --------------------------------------------------------------------------- report


def test_report_lists_the_run_and_the_best_configuration(regression):
  text = report.format_report(regression, n=3)
  assert text.startswith("# Sweep report\n")
  assert "- **problem**: linear_regression" in text
  assert "- **optimizers**: momentum (12), rmsprop (12)" in text
  assert "- **configurations**: K = 24, seeds 0, 1" in text
  assert "- **steps**: 50" in text
  assert "compile 1.5 s" in text and "run 12.2 s" in text
  assert "2 compilations" in text and "chunk sizes momentum 12, rmsprop 12" in text
  assert "## Best 3 configurations (by the mean of final_loss over seeds, lower is better)" in text
  lines = text.splitlines()
  header = next(line for line in lines if line.startswith("| rank"))
  assert header == (
    "| rank | optimizer | learning_rate | beta | final_loss_mean | final_loss_std "
    "| count | diverged | best_loss_mean |"
  )
  first = next(line for line in lines if line.startswith("| 1 |"))
  assert first == "| 1 | momentum | 0.01 | 0 | 0.105 | 0.007071 | 2 | 0 | 0.105 |"
  assert "| momentum | 1 | 12 |" in lines
  assert "| rmsprop | 2 | 12 |" in lines


def test_report_ranks_by_accuracy_and_marks_missing_hyperparameters(classification):
  classification.manifest = dataclasses.replace(
    classification.manifest, problem="digits_cnn", chunk_size={"rmsprop": 6, "momentum": 12}
  )
  text = report.format_report(classification, n=3)
  assert "- **problem**: digits_cnn" in text
  assert "chunk sizes momentum 12, rmsprop 6" in text
  assert "(by the mean of val_accuracy over seeds, higher is better)" in text
  lines = text.splitlines()
  assert (
    "| rank | optimizer | learning_rate | beta | decay | val_accuracy_mean "
    "| val_accuracy_std | count | diverged | final_loss_mean | best_loss_mean "
    "| val_loss_mean |"
  ) in lines
  assert (
    "| 2 | rmsprop | 0.1 | — | 0.9 | 0.8555 | 0.0007071 | 2 | 0 | 2.505 | 2.505 | 2.756 |" in lines
  )


# --------------------------------------------------------------------------- manifest


def test_the_manifest_is_a_typed_record_read_and_written_without_loss(tmp_path, regression):
  manifest = regression.manifest
  assert isinstance(manifest, results.Manifest)
  assert manifest.steps == 50 and manifest.problem == "linear_regression"
  assert manifest["compilations"] == manifest.compilations == 2  # read as the JSON file reads
  # Keys the record does not name (another version's, a script's) are kept and written back.
  raw = {**manifest.to_dict(), "written_by": "a script"}
  again = results.Manifest.from_dict(raw)
  assert again.extra == {"written_by": "a script"} and again["written_by"] == "a script"
  assert again.to_dict() == raw
  results.write_results(SweepResult(regression.summary, regression.curves, raw), tmp_path)
  assert results.load_results(tmp_path).manifest == again
  with pytest.raises(KeyError):
    manifest["no_such_field"]


def test_steps_to_target_finds_the_first_step_of_a_geometric_loss():
  # loss = q**step: first reaches the target at ceil(log(target) / log(q)).
  steps = np.arange(0, 100, 2)
  curves = pd.concat(
    [
      pd.DataFrame(
        {"config_id": i, "step": steps, "train_loss": q**steps, "val_accuracy": 1 - q**steps}
      )
      for i, q in enumerate([0.5, 0.9, 0.999])
    ]
  )
  reached = results.steps_to_target(curves, "train_loss", 1e-3)
  expected = [math.ceil(math.log(1e-3) / math.log(q) / 2) * 2 for q in (0.5, 0.9)]
  assert reached.to_dict() == {0: expected[0], 1: expected[1]}  # q = 0.999 never does
  accuracy = results.steps_to_target(curves, "val_accuracy", 1 - 1e-3)  # higher is better
  assert accuracy.to_dict() == reached.to_dict()
  assert results.steps_to_target(curves, "train_loss", 1.0).to_dict() == {0: 0, 1: 0, 2: 0}


def test_stability_edge_of_heavy_ball_on_a_quadratic():
  # Heavy ball on curvature L is stable iff lr·L < 2(1 + beta); steps to a target
  # shrink with lr until the edge.
  curvature, rates = 4.0, np.round(np.arange(0.05, 1.2, 0.05), 2)
  rows = [
    {
      "optimizer": "momentum",
      "beta": beta,
      "learning_rate": lr,
      "seed": seed,
      "diverged": lr * curvature >= 2 * (1 + beta),
      "steps": 10 / lr + seed,
    }
    for beta in (0.0, 0.5, 0.9)
    for lr in rates
    for seed in (0, 1)
  ]
  edge = results.stability_edge(pd.DataFrame(rows), ["optimizer", "beta"], "steps")
  assert list(edge.columns) == ["optimizer", "beta", "largest_stable", "best", "at_best"]
  for row in edge.itertuples():
    expected = rates[rates * curvature < 2 * (1 + row.beta)].max()
    assert row.largest_stable == expected and row.best == expected
    assert row.at_best == pytest.approx(10 / expected + 0.5)  # the mean over the two seeds


def test_stability_edge_is_nan_where_every_value_diverged():
  summary = pd.DataFrame(
    {"optimizer": "sgd", "learning_rate": [1.0, 2.0], "diverged": True, "val_accuracy": [0.5, 0.6]}
  )
  (row,) = results.stability_edge(summary, ["optimizer"], "val_accuracy").itertuples()
  assert np.isnan(row.largest_stable) and np.isnan(row.best) and np.isnan(row.at_best)
  summary["diverged"] = False  # accuracies: the best is the highest
  (row,) = results.stability_edge(summary, ["optimizer"], "val_accuracy").itertuples()
  assert (row.largest_stable, row.best, row.at_best) == (2.0, 2.0, 0.6)


def test_a_problem_is_built_again_from_the_manifests_record():
  # load_model's path: the manifest's problem_builder, its options as JSON gives them back.
  from momentum_jax import problems

  built = problems.rebuild("digits_mlp", {"hidden": [8], "activation": "tanh"})
  assert built.name == "digits_mlp"
  by_path = problems.rebuild("momentum_jax.problems:linear_regression", {"dataset": "uniform"})
  assert by_path.data.x_train.shape == (100, 1)  # the uniform set's 100 samples, not normal's 1000
  with pytest.raises(ValueError, match="cannot be imported again"):
    problems.rebuild("no_such_package.module:make", {})
  with pytest.raises(ValueError, match="not a Problem"):
    problems.rebuild("momentum_jax.data:regression_uniform", {})
  with pytest.raises(ValueError, match="did you mean 'digits_mlp'"):
    problems.rebuild("digit_mlp", {})
