"""The "Your own model" page runs as written; a user's loss and metrics checked.

The page's blocks are read from docs/own_model.md and run (the sweeps shortened to
a few steps), so that a broken example fails here.
"""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from momentum_jax import cli, results, sweep


ROOT = pathlib.Path(__file__).resolve().parents[1]
SHORT = {"steps": 20, "log_every": 10}  # the page's sweeps, shortened to two logs


def _blocks(language: str) -> list[str]:
  """The code blocks in ``language`` of docs/own_model.md, in order."""
  text = (ROOT / "docs" / "own_model.md").read_text(encoding="utf-8")
  return [code for lang, code in re.findall(r"```(\w+)\n(.*?)```", text, re.S) if lang == language]


def _shortened_run(monkeypatch, **train):
  """Makes ``sweep.run`` train the page's sweeps for ``SHORT`` steps, quietly; returns its results."""
  ran = []
  real_run = sweep.run

  def run(config, *args, **kwargs):
    config = {**config, "train": {**config["train"], **SHORT, **train}}
    ran.append(real_run(config, *args, **{**kwargs, "quiet": True}))
    return ran[-1]

  monkeypatch.setattr(sweep, "run", run)
  return ran


def _exec(code: str) -> dict:
  namespace = {"__name__": "own_model_page"}
  exec(compile(code, "docs/own_model.md", "exec"), namespace)  # noqa: S102 - the page's own example
  return namespace


def test_the_page_shows_the_example_files_as_they_are():
  module, _, _ = _blocks("python")
  assert module == (ROOT / "experiments/own_model.py").read_text(encoding="utf-8")
  assert _blocks("yaml") == [(ROOT / "configs/own_model.yaml").read_text(encoding="utf-8")]


@pytest.fixture(scope="module")
def python_sweep():
  """The page's Python sweep, shortened, and what it ran."""
  with pytest.MonkeyPatch.context() as monkeypatch:
    ran = _shortened_run(monkeypatch)
    namespace = _exec(_blocks("python")[1])
  assert len(ran) == 1 and namespace["result"] is ran[0]
  return ran[0]


def test_the_pages_python_sweep(python_sweep):
  summary = python_sweep.summary
  assert results.swept_hyperparameters(summary) == ["learning_rate", "weight_decay"]
  assert set(summary.optimizer) == {"optax.adamw"}
  assert len(summary) == 3 * 3 * 2
  assert {"val_loss", "val_accuracy", "val_top2_accuracy", "start_top2_accuracy"} <= set(
    summary.columns
  )
  assert summary.val_top2_accuracy.between(0, 1).all()
  assert (summary.val_top2_accuracy >= summary.val_accuracy).all()
  assert not summary.diverged.any()


def test_the_pages_yaml_sweep_through_the_command_is_the_python_sweep(
  python_sweep, tmp_path, monkeypatch, capsys
):
  config = yaml.safe_load((ROOT / "configs/own_model.yaml").read_text(encoding="utf-8"))
  assert config["problem"]["name"] == "experiments.own_model:make_problem"
  config["train"].update(SHORT)
  shortened = tmp_path / "own_model.yaml"
  shortened.write_text(yaml.safe_dump(config), encoding="utf-8")
  monkeypatch.chdir(ROOT)  # the command imports experiments.own_model from here
  assert cli.main(["sweep", str(shortened), "--out", str(tmp_path / "out"), "--quiet"]) == 0
  assert "best 5 configurations" in capsys.readouterr().out
  summary = pd.read_csv(tmp_path / "out" / "summary.csv")
  assert results.swept_hyperparameters(summary) == ["learning_rate", "weight_decay"]
  assert {"val_top2_accuracy", "start_top2_accuracy"} <= set(summary.columns)
  expected = python_sweep.summary
  for column in (
    "learning_rate",
    "weight_decay",
    "seed",
    "final_loss",
    "val_loss",
    "val_top2_accuracy",
    "start_top2_accuracy",
  ):
    np.testing.assert_allclose(summary[column], expected[column], rtol=1e-12, err_msg=column)


def test_the_pages_stream_sweep(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # the example writes its .npy files here
  ran = _shortened_run(monkeypatch)
  namespace = _exec(_blocks("python")[2])
  assert isinstance(namespace["x"], np.memmap)
  assert (tmp_path / "digits_x.npy").exists()
  summary = ran[0].summary
  assert results.swept_hyperparameters(summary) == ["learning_rate", "weight_decay"]
  assert {"val_loss", "val_top2_accuracy", "start_top2_accuracy"} <= set(summary.columns)
  assert len(summary) == 18 and not summary.diverged.any()


BAD_PROBLEMS = [
  ("vector_loss", "problem.loss", r"must return a float scalar .* got an array of shape \(2,\)"),
  ("mismatched_loss", "problem.loss", r"failed on the model's output for a batch of x \(2, 5\)"),
  ("list_metrics", "problem.metrics", r"must return a dict of name -> scalar, got list"),
  (
    "vector_metrics",
    "problem.metrics",
    r"must return a dict of name -> scalar, got \{'mean_logit': an array of shape \(3,\)",
  ),
]


def _bad_config(name: str) -> dict:
  return {
    "problem": {"name": f"_bad_problems:{name}"},
    "optimizer": {"name": "optax.adamw", "learning_rate": [0.01, 0.1]},
    "train": {"steps": 4, "log_every": 2},
  }


@pytest.mark.parametrize("name, path, message", BAD_PROBLEMS)
def test_bad_loss_or_metrics_is_a_config_error(name, path, message):
  with pytest.raises(sweep.ConfigError, match=message) as error:
    sweep.run(_bad_config(name), quiet=True)
  assert error.value.path == path


@pytest.mark.parametrize("name, path, message", BAD_PROBLEMS)
def test_bad_loss_or_metrics_through_the_command(name, path, message, tmp_path, capsys):
  config = tmp_path / "bad.yaml"
  config.write_text(yaml.safe_dump(_bad_config(name)), encoding="utf-8")
  assert cli.main(["sweep", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "Traceback" not in err
  assert re.match(rf"momentum-jax sweep: error: {re.escape(path)}: .*{message}", err)
