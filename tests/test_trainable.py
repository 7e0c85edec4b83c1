"""Any JAX training in a sweep: a :class:`~momentum_jax.problems.Trainable` through the engine.

The Trainable is gradient descent on a quadratic written by hand
(``tests/quadratic_trainable.py``): ``w_t = (1 − lr)^t w₀``, so every value the sweep
logs has a closed form, computed here in float64 from the float32 ``w₀``
and ``lr``.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
import yaml

from _killed import run_killed_after_a_save
from _two_hosts import sweep_on_two_hosts
from quadratic_trainable import init, quadratic
from momentum_jax import cli, results, sweep
from momentum_jax import train as train_lib
from momentum_jax.train._flops import flops

U = 2.0**-24  # float32's unit roundoff
STEPS, LOG_EVERY = 20, 5
RATES = [0.05, 0.2, 0.5]
CONFIG = {
  "problem": {"name": "quadratic_trainable:quadratic"},
  "hyperparameters": {"learning_rate": RATES},
  "train": {"steps": STEPS, "log_every": LOG_EVERY},
  "seeds": 2,
}


def _w0(seed: int) -> np.ndarray:
  init_key, _ = train_lib.run_keys(jax.random.key(seed))
  return np.asarray(init({}, init_key)["w"], np.float64)


def _closed_form(learning_rate: float, seed: int) -> dict[str, np.ndarray]:
  """Each logged value at each log step, in float64: ``w_t = (1 − lr)^t w₀``."""
  rate = float(np.float32(learning_rate))
  w = _w0(seed)[None, :] * (1 - rate) ** np.arange(STEPS + 1)[:, None]
  losses = 0.5 * np.sum(w[:-1] ** 2, axis=1)  # the loss at the weights each step starts from
  ends = np.arange(LOG_EVERY, STEPS + 1, LOG_EVERY)
  return {
    "train_loss": losses.reshape(-1, LOG_EVERY).mean(axis=1),
    "train_norm": np.linalg.norm(w[ends], axis=1),
    "val_distance": np.linalg.norm(w[ends], axis=1),
  }


def _bound(name: str) -> float:
  """Relative error of float32 GD against the closed form, derived.

  A step ``w − lr·w`` rounds twice (the product, the difference): relative to
  ``|w_{t+1}| = (1 − lr)|w_t|`` that adds at most ``u·(lr/(1 − lr) + 1) ≤ 2u``
  for ``lr ≤ 1/2``, so after ``T`` steps a component is within ``2Tu``. A
  squared norm doubles that and adds 3 roundings (squares, sum); the mean of
  ``LOG_EVERY`` losses adds ``LOG_EVERY`` more; a norm adds its square
  root's and the sum's (3u).
  """
  weights = 2 * STEPS * U
  if name == "train_loss":
    return 2 * weights + (3 + LOG_EVERY + 1) * U
  return weights + 3 * U


def test_a_grid_sweep_logs_the_closed_form():
  result = sweep.run(CONFIG, quiet=True)
  assert len(result.summary) == len(RATES) * 2
  assert not result.summary["diverged"].any()
  assert "grad_norm" not in result.curves.columns  # a Trainable logs its own metrics
  for row in result.summary.itertuples():
    expected = _closed_form(row.learning_rate, row.seed)
    curve = result.curves[result.curves["config_id"] == row.config_id]
    assert list(curve["step"]) == list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))
    for name, values in expected.items():
      np.testing.assert_allclose(curve[name], values, rtol=_bound(name), atol=0)
    np.testing.assert_allclose(
      row.final_loss, expected["train_loss"][-1], rtol=_bound("train_loss")
    )
    np.testing.assert_allclose(
      row.best_loss, expected["train_loss"].min(), rtol=_bound("train_loss")
    )
    np.testing.assert_allclose(row.start_val_distance, np.linalg.norm(_w0(row.seed)), rtol=3 * U)
  # lr = 1/2 halves w exactly in binary: no rounding at all.
  halved = result.summary[result.summary["learning_rate"] == 0.5]
  for row in halved.itertuples():
    assert row.val_distance == np.float32(np.linalg.norm(np.float32(_w0(row.seed)) * 2.0**-STEPS))


def test_segments_and_widths_change_nothing():
  """Bit for bit at one width whatever the chunks; the same program compiled alike."""
  whole = sweep.run(CONFIG, quiet=True, width=1)
  chunked = sweep.run(CONFIG, quiet=True, width=1, chunk_size=2)
  pd.testing.assert_frame_equal(chunked.curves, whole.curves, check_exact=True)
  pd.testing.assert_frame_equal(chunked.summary, whole.summary, check_exact=True)


def test_a_diverging_run_is_frozen_and_disturbs_no_other():
  config = copy.deepcopy(CONFIG)
  config["hyperparameters"]["learning_rate"] = [0.2, 1e30]
  result = sweep.run(config, quiet=True, width=1)
  blown = result.summary[result.summary["learning_rate"] > 1]
  # Step 0's loss is |w₀|²/2; step 1 starts from −1e30·w₀, whose square overflows.
  assert blown["diverged"].all() and (blown["diverged_at_step"] == 1).all()
  for row in blown.itertuples():  # the state kept is the one before the interval: w₀
    np.testing.assert_allclose(row.val_distance, np.linalg.norm(_w0(row.seed)), rtol=3 * U)
  alone = sweep.run({**config, "hyperparameters": {"learning_rate": [0.2]}}, quiet=True, width=1)
  kept = result.summary[result.summary["learning_rate"] < 1]
  assert len(kept) == 2  # the same program at one width: bit for bit
  np.testing.assert_array_equal(kept["val_distance"], alone.summary["val_distance"])


SEARCHES = {
  "halving": {
    "method": "grid",
    "scheduler": {"name": "successive_halving", "eta": 3, "min_steps": 5, "metric": "val_distance"},
  },
  "quasirandom": {"method": "quasirandom", "samples": 4, "seed": 0},
  "optuna": {"method": "optuna", "trials": 4, "batch": 2, "seed": 0},
  "pbt": {
    "method": "pbt",
    "population": 4,
    "interval": 10,
    "fraction": 0.25,
    "metric": "val_distance",
  },
}


@pytest.mark.parametrize("name", SEARCHES)
def test_every_search_sweeps_a_trainable(name, tmp_path, monkeypatch):
  """Each search trains the quadratic, and killed inside a batch resumes to the same results."""
  config = copy.deepcopy(CONFIG)
  config["search"] = SEARCHES[name]
  if name != "halving":
    config["hyperparameters"]["learning_rate"] = {"loguniform": [0.01, 0.5]}
  whole = sweep.run(config, tmp_path / "whole", quiet=True, width=2)
  summary = whole.summary
  if name == "halving":  # eta 3 over 3 rates: only the best by val_distance (lr 1/2) goes on
    finished = summary[summary["stopped_at_step"] == STEPS]
    assert set(finished["learning_rate"]) == {0.5}
    # Its programs (all rows, then the survivors) split the group's training between them.
    programs = whole.manifest["programs"]
    assert len(programs) == 2, programs
    assert all(p["compiler_options_reason"].startswith("0.5 of the group's") for p in programs)
  if name == "pbt":  # the worst member copied the best's state at the first exploit
    copied = summary[summary["lineage"] != "[]"]
    assert len(copied) == 2 and json.loads(copied["lineage"].iloc[0])[0][0] == 10
  for row in summary.itertuples():  # a run never copied follows the closed form
    if name != "pbt" or row.lineage == "[]":
      expected = _closed_form(row.learning_rate, row.seed)["val_distance"]
      last = (getattr(row, "stopped_at_step", STEPS) or STEPS) // LOG_EVERY - 1
      np.testing.assert_allclose(row.val_distance, expected[last], rtol=_bound("val_distance"))

  run_killed_after_a_save(
    monkeypatch,
    lambda: sweep.run(config, tmp_path / "out", quiet=True, width=2, checkpoint_every=1e-9),
    lambda position, step: step >= 2 * LOG_EVERY,
  )
  resumed = sweep.run(config, tmp_path / "out", quiet=True, width=2)
  assert resumed.manifest["checkpoint"]["chunks_resumed_mid_training"]
  pd.testing.assert_frame_equal(resumed.summary, whole.summary, check_exact=True)
  pd.testing.assert_frame_equal(resumed.curves, whole.curves, check_exact=True)


def test_the_best_trainable_is_kept_and_loaded(tmp_path):
  config = {**CONFIG, "keep": {"models": 1, "metric": "val_distance"}}
  result = sweep.run(config, quiet=True)
  result.save(tmp_path)
  for seed in (0, 1):
    loaded = results.load_model(tmp_path, rank=0, seed=seed)  # rebuilt from the manifest
    assert set(loaded) == {"w"}  # the Trainable's model(state)
    exact = np.float32(_w0(seed)) * np.float32(2.0**-STEPS)  # lr 1/2: exact in binary
    np.testing.assert_array_equal(loaded["w"], exact)
  assert json.loads((tmp_path / "models" / "rank_0" / "model.json").read_text())[
    "hyperparameters"
  ] == {"learning_rate": 0.5}


def test_a_trainable_from_yaml_through_the_command(tmp_path, capsys):
  path = tmp_path / "sweep.yaml"
  path.write_text(
    yaml.safe_dump(
      {
        "name": "quadratic",
        "problem": {"name": "quadratic_trainable:quadratic"},
        "hyperparameters": {"learning_rate": {"logspace": [0.01, 0.5, 3]}},
        "train": {"steps": 10, "log_every": 5},
      }
    )
  )
  assert cli.main(["check", str(path)]) == 0
  assert cli.main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 0
  summary = pd.read_csv(tmp_path / "out" / "summary.csv")
  assert len(summary) == 3 and "val_distance" in summary.columns
  # A distance is no return or reward: the report ranks by final_loss, lowest first.
  assert "final_loss" in (tmp_path / "out" / "summary.md").read_text()
  capsys.readouterr()


BAD = {
  "a Trainable given optimizers": (
    {"optimizer": {"name": "momentum", "learning_rate": 0.1}},
    "optimizer: quadratic is a Trainable: give its hyperparameters under 'hyperparameters:'",
  ),
  "a Problem given hyperparameters": (
    {"problem": {"name": "linear_regression"}},
    "is a Problem: sweep its optimizers under ",
  ),
  "both": (
    {
      "optimizer": {"name": "momentum", "learning_rate": 0.1},
      "hyperparameters": {"learning_rate": 0.1},
    },
    "hyperparameters: give exactly one of 'optimizer'",
  ),
  "a name the Trainable does not read": (
    {"hyperparameters": {"lr": [0.1]}},
    "problem.train: reads the hyperparameter 'learning_rate' that the sweep does not give",
  ),
  "a word for a number": (
    {"hyperparameters": {"learning_rate": "fast"}},
    "hyperparameters.learning_rate: expected",
  ),
  "a batch size": (
    {"train": {"steps": 10, "batch_size": 8}},
    "train.batch_size: a Trainable draws",
  ),
  "gradient norms": (
    {"train": {"steps": 10, "grad_norms": True}},
    "train.grad_norms: a Trainable logs its own metrics",
  ),
  "no loss": (
    {"problem": {"name": "quadratic_trainable:no_loss"}},
    "problem.train: its metrics must hold 'loss'",
  ),
  "a matrix metric": (
    {"problem": {"name": "quadratic_trainable:matrix_metric"}},
    "problem.train: metric 'loss' must be a real number (a float, an integer or a bool) of shape () or (10,), got shape (2, 2)",
  ),
  "a shape from a value": (
    {"problem": {"name": "quadratic_trainable:shape_from_value"}},
    "problem.init: depends on a hyperparameter's value",
  ),
  "not pure": (
    {"problem": {"name": "quadratic_trainable:impure"}},
    "problem.train: traced twice, it gave two different programs: it is not pure",
  ),
  "not a Trainable": (
    {"problem": {"name": "quadratic_trainable:not_a_trainable"}},
    "problem.name: quadratic_trainable:not_a_trainable returned a value of type int",
  ),
  "an unknown keep metric": (
    {"keep": {"models": 1, "metric": "val_return"}},
    "keep.metric: quadratic logs no 'val_return'",
  ),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_naming_the_key(case, tmp_path, capsys):
  changes, says = BAD[case]
  config = {
    "problem": {"name": "quadratic_trainable:quadratic"},
    "hyperparameters": {"learning_rate": [0.1]},
    "train": {"steps": 10, "log_every": 10},
    **changes,
  }
  if "optimizer" in changes and "hyperparameters" not in changes:
    del config["hyperparameters"]
  path = tmp_path / "sweep.yaml"
  path.write_text(yaml.safe_dump(config))
  code = cli.main(["check", str(path)])
  err = capsys.readouterr().err.strip()
  assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
  assert says in err, err


def test_two_hosts_train_what_one_does(tmp_path, monkeypatch):
  """Sharded over two processes of 2 CPU devices each, at one width: bit for bit one process's."""
  config = copy.deepcopy(CONFIG)
  config["hyperparameters"]["learning_rate"] = [0.05, 0.1, 0.2, 0.5]
  config["keep"] = {"models": 2, "metric": "val_distance"}
  tests = str(Path(__file__).parent)
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]))
  out, _ = sweep_on_two_hosts(config, tmp_path, "--width", "1")
  single = sweep.run(config, quiet=True, width=1)
  pd.testing.assert_frame_equal(
    pd.read_parquet(out / "curves.parquet"), single.curves, check_exact=True, check_dtype=False
  )
  for model in single.models:
    for run, state in zip(model.runs, model.states):
      loaded = results.load_model(out, rank=model.rank, seed=run["seed"])
      np.testing.assert_array_equal(loaded["w"], state["model['w']"])


def test_a_trainable_step_is_counted_with_its_loops():
  """The planning's FLOPs count a scan's body once per iteration (XLA's cost analysis, once)."""
  matrix = jax.ShapeDtypeStruct((3, 3), np.float32)
  product = 2 * 3 * 3 * 3  # a 3x3 matrix product: 27 multiply-adds

  def nested(x):
    inner = lambda c, _: (c @ c, None)
    outer = lambda c, _: (jax.lax.scan(inner, c, None, length=4)[0], None)
    return jax.lax.scan(outer, x, None, length=3)[0]

  assert flops(nested, matrix) == 12 * product

  def branches(x):
    return jax.lax.cond(x[0, 0] > 0, lambda: x @ x @ x, lambda: x + 1.0)

  # The costlier branch, and a few scalar operations (the element read, the comparison) choosing it.
  assert 2 * product <= flops(branches, matrix) <= 2 * product + 8
  run = train_lib.TrainableRun(
    quadratic(), train_lib.TrainConfig(steps=10, log_every=10), ("learning_rate",)
  )
  # One step of the quadratic: lr·w, w − lr·w, w·w, its sum and its half, the step count:
  # a handful of 3-vectors, not 0 or the 10 steps a log interval scans.
  assert 5 <= run.flops_per_step() <= 40
