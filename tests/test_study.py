"""Study configs: the study section's schema, runs as sweep configs, overlays and overrides."""

from __future__ import annotations

import pytest
import yaml

from momentum_jax import study
from momentum_jax.sweep import ConfigError

SCHEMA = {
  "seeds": study.Setting(study.integer(minimum=1), default=3),
  "target": study.Setting(study.number(minimum=0, maximum=1)),
  "betas": study.Setting(study.list_of(study.number(minimum=0, maximum=0.999)), default=[0.9]),
}
SWEEP = {
  "problem": {"name": "linear_regression"},
  "optimizer": {"name": "momentum", "learning_rate": [0.01, 0.1], "beta": 0.9},
  "train": {"steps": 20, "log_every": 10},
  "seeds": 2,
}


def _write(path, content) -> str:
  path.write_text(yaml.safe_dump(content, sort_keys=False))
  return str(path)


def test_merge_merges_mappings_replaces_the_rest_and_removes_nulls():
  base = {"train": {"steps": 400, "log_every": 40}, "optimizers": [{"name": "adam"}], "seeds": 2}
  overlay = {"train": {"steps": 20}, "optimizers": [{"name": "sgd"}], "seeds": None, "name": "x"}
  assert study.merge(base, overlay) == {
    "train": {"steps": 20, "log_every": 40},
    "optimizers": [{"name": "sgd"}],
    "name": "x",
  }
  assert base["train"] == {"steps": 400, "log_every": 40} and base["seeds"] == 2  # unchanged


@pytest.mark.parametrize(
  "text, expected",
  [
    ("study.seeds=1", {"study": {"seeds": 1}}),
    ("train={steps: 5, log_every: 5}", {"train": {"steps": 5, "log_every": 5}}),
    ("study.runs.cnn=null", {"study": {"runs": {"cnn": None}}}),
    ("name=a=b", {"name": "a=b"}),
    ("problem.path=/data/cifar", {"problem": {"path": "/data/cifar"}}),
  ],
)
def test_parse_override_reads_the_value_as_yaml(text, expected):
  assert study.parse_override(text) == expected


@pytest.mark.parametrize("text", ["seeds", "=1", "study..seeds=1"])
def test_parse_override_refuses_what_is_no_key_path(text):
  with pytest.raises(ConfigError, match=r"^--set: expected KEY.PATH=VALUE"):
    study.parse_override(text)


def test_the_study_section_is_checked_with_defaults_filled_in():
  found = study.load_study({"study": {"target": 0.5}}, SCHEMA)
  assert found.settings == {"seeds": 3, "target": 0.5, "betas": [0.9]}
  assert dict(found.runs) == {}
  with pytest.raises(ValueError, match="has 0 runs"):
    found.sweep


@pytest.mark.parametrize(
  "section, message",
  [
    ({}, r"^study.target: required$"),
    ({"target": 2}, r"^study.target: expected a number >= 0 and <= 1, got 2$"),
    ({"target": 0.5, "seeds": True}, r"^study.seeds: expected an integer >= 1, got True$"),
    ({"target": 0.5, "betas": [0.5, 1.5]}, r"^study.betas\[1\]: expected a number"),
    ({"target": 0.5, "seedz": 1}, r"^study.seedz: unknown key; did you mean 'seeds'\?"),
  ],
)
def test_a_bad_study_section_names_the_path(section, message):
  with pytest.raises(ConfigError, match=message):
    study.load_study({"study": section}, SCHEMA)


def test_the_sweep_keys_are_the_one_run_validated_by_the_sweep_loader(tmp_path):
  found = study.load_study(
    _write(tmp_path / "regress.yaml", {**SWEEP, "study": {"target": 0.1}}), SCHEMA
  )
  assert list(found.runs) == ["main"] and found.sweep.name == "regress"
  assert found.sweep.optimizers[0].grid["learning_rate"].tolist() == [0.01, 0.1]
  bad = {**SWEEP, "optimizer": {**SWEEP["optimizer"], "betaa": 0.9}}
  with pytest.raises(ConfigError, match=r"^optimizer.betaa: .*did you mean 'beta'"):
    study.load_study(bad)


def test_runs_are_overlays_on_the_base_or_sweep_files(tmp_path):
  _write(tmp_path / "other.yaml", {**SWEEP, "name": "other", "seeds": 1})
  path = _write(
    tmp_path / "both.yaml",
    {
      **SWEEP,
      "study": {"target": 0.1, "runs": {"short": {"train": {"steps": 10}}, "file": "other.yaml"}},
    },
  )
  found = study.load_study(path, SCHEMA)
  assert list(found.runs) == ["short", "file"]
  assert found.runs["short"].name == "both_short"
  assert found.runs["short"].train.steps == 10 and found.runs["short"].train.log_every == 10
  assert found.runs["file"].name == "other" and found.runs["file"].seeds == (0,)


def test_overlays_and_overrides_apply_before_validation(tmp_path):
  source = _write(
    tmp_path / "s.yaml",
    {**SWEEP, "study": {"target": 0.1, "runs": {"a": {}, "b": {"train": {"steps": 40}}}}},
  )
  quick = _write(
    tmp_path / "quick.yaml", {"seeds": 1, "study": {"runs": {"b": {"train": {"steps": 10}}}}}
  )
  found = study.load_study(source, SCHEMA, [quick], ["study.runs.a=null", "study.seeds=7"])
  assert list(found.runs) == ["b"] and found.runs["b"].train.steps == 10
  assert found.runs["b"].seeds == (0,) and found.settings["seeds"] == 7
  with pytest.raises(ConfigError, match=r"^study.runs.b.train.steps: .*multiple of log_every"):
    study.load_study(source, SCHEMA, [quick], ["study.runs.b.train.steps=15"])
  # A key of the base, not of the run, keeps its path and says which run it broke.
  with pytest.raises(ConfigError, match=r"^seeds: .* \(in run a\)$"):
    study.load_study(source, SCHEMA, overrides=["seeds=0"])
  with pytest.raises(ConfigError, match=r"^study.seeds: expected an integer >= 1, got 0"):
    study.load_study(source, SCHEMA, overrides=["study.seeds=0"])


def test_a_missing_run_file_and_bad_yaml_are_named(tmp_path):
  path = _write(tmp_path / "s.yaml", {"study": {"runs": {"gone": "missing.yaml"}}})
  with pytest.raises(ConfigError, match=r"^study.runs.gone: no sweep config file .*missing.yaml"):
    study.load_study(path)
  (tmp_path / "bad.yaml").write_text("study: [unclosed\n")
  with pytest.raises(ConfigError, match="is not valid YAML"):
    study.load_study(tmp_path / "bad.yaml")


def test_a_problem_setting_is_checked_now_and_built_later():
  schema = {"problem": study.Setting(study.problem)}
  build = study.load_study(
    {"study": {"problem": {"name": "linear_regression", "dataset": "uniform"}}}, schema
  )
  assert build.settings["problem"]().name == "linear_regression_uniform"
  with pytest.raises(
    ConfigError,
    match=r"^study.problem.name: unknown name 'digits_mpl'; "
    "did you mean 'digits_mlp'",
  ):
    study.load_study({"study": {"problem": {"name": "digits_mpl"}}}, schema)
  with pytest.raises(ConfigError, match=r"^study.problem.hiden: unknown key"):
    study.load_study({"study": {"problem": {"name": "digits_mlp", "hiden": [3]}}}, schema)


def test_a_mapping_overlay_removes_runs_given_as_null():
  source = {**SWEEP, "study": {"target": 0.1, "runs": {"a": {}, "b": {}, "c": {}}}}
  found = study.load_study(source, SCHEMA, [{"study": {"runs": {"a": None, "c": None}}}])
  assert list(found.runs) == ["b"]


def test_a_mapping_of_names_checks_each_key_at_its_path():
  schema = {
    "landscapes": study.Setting(
      study.mapping_of(
        study.one_of(("saddle", "plateau")),
        study.record({"steps": study.Setting(study.integer(minimum=1))}),
      )
    )
  }
  found = study.load_study({"study": {"landscapes": {"saddle": {"steps": 3}}}}, schema)
  assert found.settings["landscapes"] == {"saddle": {"steps": 3}}
  with pytest.raises(
    ConfigError,
    match=r"^study.landscapes.sadle: unknown name 'sadle'; "
    "did you mean 'saddle'",
  ):
    study.load_study({"study": {"landscapes": {"sadle": {"steps": 3}}}}, schema)
  with pytest.raises(ConfigError, match=r"^study.landscapes.plateau.steps: required$"):
    study.load_study({"study": {"landscapes": {"plateau": {}}}}, schema)
