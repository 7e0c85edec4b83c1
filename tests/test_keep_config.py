"""keep's config and its edges: values refused by path, more models asked than
configurations, none kept when every run diverged or when keep is absent.
"""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from _keep_configs import DIGITS, HALVING
from momentum_jax import cli, report, results, sweep


def test_more_models_asked_than_configurations_keeps_them_all(tmp_path):
  config = {
    "problem": {"name": "linear_regression"},
    "optimizer": {"name": "momentum", "ema": False, "learning_rate": [0.01, 0.1], "beta": 0.9},
    "train": {"steps": 20, "log_every": 10},
    "seeds": 2,
    "keep": {"models": 5},
  }
  result = sweep.run(config, tmp_path, quiet=True)
  report.save(result, tmp_path, figures=False)
  assert [m.rank for m in result.models] == [0, 1]  # 5 asked, 2 configurations
  best = report.best_configurations(result.summary, by="final_loss")
  assert [m.hyperparameters["learning_rate"] for m in result.models] == best[
    "learning_rate"
  ].tolist()
  assert sorted((e["rank"], e["seed"]) for e in result.manifest.models) == [
    (0, 0),
    (0, 1),
    (1, 0),
    (1, 1),
  ]
  assert (
    "The 2 best configurations by the mean of final_loss" in (tmp_path / "summary.md").read_text()
  )
  with pytest.raises(FileNotFoundError, match=r"kept 2 model\(s\) \(ranks 0 to 1\)"):
    results.load_model(tmp_path, rank=2)


def test_a_sweep_whose_every_run_diverged_keeps_none_and_says_so(tmp_path, capsys):
  config = {
    "problem": {"name": "linear_regression"},
    "optimizer": {"name": "momentum", "ema": False, "learning_rate": 10.0, "beta": 0.9},
    "train": {"steps": 20, "log_every": 10},
    "seeds": 2,
    "keep": {"models": 1},
  }
  (tmp_path / "diverges.yaml").write_text(yaml.safe_dump(config))
  assert (
    cli.main(["sweep", str(tmp_path / "diverges.yaml"), "--out", str(tmp_path), "--quiet"]) == 0
  )
  assert "kept no models: no configuration finished without diverging" in capsys.readouterr().out
  result = results.load_results(tmp_path)
  assert result.summary["diverged"].all()
  assert result.manifest.models == []
  assert (
    "## Kept models\n\nNone: no configuration finished without diverging."
    in (tmp_path / "summary.md").read_text()
  )
  with pytest.raises(
    FileNotFoundError,
    match="kept no models, since none of its configurations finished without diverging",
  ):
    results.load_model(tmp_path)


def test_a_sweep_without_keep_keeps_nothing(tmp_path):
  config = copy.deepcopy(HALVING)
  del config["keep"], config["search"]
  config["train"]["steps"] = 20
  result = sweep.run(config, tmp_path, quiet=True)
  report.save(result, tmp_path, figures=False)
  assert result.models is None
  assert not (tmp_path / "models").exists()
  assert not (tmp_path / "chunks" / "kept").exists()
  assert json.loads((tmp_path / "manifest.json").read_text())["models"] is None
  assert "Kept models" not in (tmp_path / "summary.md").read_text()
  with pytest.raises(FileNotFoundError, match="kept no models; add 'keep:"):
    results.load_model(tmp_path)


@pytest.mark.parametrize(
  "keep, path, fragment",
  [
    ({"models": "three"}, "keep.models", "expected an integer, got 'three'"),
    ({"models": 0}, "keep.models", "must be >= 1, got 0"),
    ({"models": "3"}, "keep.models", "expected an integer, got '3'"),  # quoted in YAML
    ({"models": True}, "keep.models", "got True"),
    ({"models": 2.0}, "keep.models", "got 2.0"),
    ({"metric": "val_loss"}, "keep.models", "required"),
    ({"model": 3}, "keep.model", "did you mean 'models'"),
    ({"models": 2, "metric": 3}, "keep.metric", "expected a string, got 3"),
    ([2], "keep", "expected a mapping"),
  ],
)
def test_bad_keep_values_name_their_path(keep, path, fragment):
  config = copy.deepcopy(HALVING)
  config["keep"] = keep
  with pytest.raises(sweep.ConfigError) as error:
    sweep.load_config(config)
  assert str(error.value).startswith(f"{path}: ") and fragment in str(error.value)


def test_an_unknown_metric_is_refused_before_anything_compiles():
  config = copy.deepcopy(DIGITS)
  config["keep"] = {"models": 2, "metric": "val_acuracy"}
  with pytest.raises(sweep.ConfigError, match=r"^keep.metric: .*did you mean 'val_accuracy'"):
    sweep.run(config, quiet=True)
  config["keep"] = {"models": 3, "metric": "nonexistent"}
  with pytest.raises(
    sweep.ConfigError,  # sweep.check (the command's check) too
    match=r"^keep.metric: digits_mlp logs no 'nonexistent' \(one of ",
  ):
    sweep.check(config)


def test_keep_written_as_a_number_is_refused_saying_how_to_write_it():
  config = {**DIGITS, "keep": 3}
  with pytest.raises(sweep.ConfigError, match=r"^keep: expected a mapping such as \{models: 3\}"):
    sweep.load_config(config)
