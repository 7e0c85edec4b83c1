"""Logging live (``--log-to``): TensorBoard along successive halving's rungs and across a
resume, and the tracker names the option reads or refuses.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from momentum_jax import sweep
from momentum_jax.report import exports

from _sweep_configs import HALVING
from _trackers import CONFIG, METRICS, _curve, _main, _tensorboard_curves


def test_a_halving_sweep_live_in_tensorboard_shows_each_rungs_survivors(tmp_path):
  """Successive halving stops rows at rungs 10 and 30 (boundaries of the strategy, between
  segments of one log): each boundary shows the rows still training, up to it."""
  out = tmp_path / "halving"
  live = exports.LiveLog("tensorboard", out, "halving")
  held = []

  def on_segment(rows):
    live.segment(rows)
    folders = {i: out / "tensorboard" / f"config_{i:04d}" for i in set(rows.curves["config_id"])}
    held.append((rows.curves, {i: _tensorboard_curves(f) for i, f in folders.items()}))

  result = sweep.run(HALVING, out, quiet=True, on_rows=live, on_segment=on_segment)
  summary, curves = result.summary, result.curves
  assert [c["step"].max() for c, _ in held] == list(range(10, 90, 10))
  for boundary, (so_far, read) in zip(range(10, 90, 10), held):
    # The rows training at a boundary: those stopped at it or later (at a rung, before the cut).
    training = summary.loc[summary["stopped_at_step"] >= boundary, "config_id"]
    assert sorted(read) == sorted(training)
    for config_id, metrics in read.items():
      for metric in METRICS:
        steps, values = _curve(so_far, config_id, metric)
        assert [step for step, _ in metrics[metric]] == steps.tolist() and steps[-1] == boundary
        np.testing.assert_array_equal([v for _, v in metrics[metric]], values.astype(np.float32))
  assert {len(read) for _, read in held} == {18, 6, 2}  # what the test covers
  for config_id in summary["config_id"]:  # the whole run, each step once, to where it stopped
    final = _tensorboard_curves(out / "tensorboard" / f"config_{config_id:04d}")
    for metric in METRICS:
      steps, values = _curve(curves, config_id, metric)
      assert [step for step, _ in final[metric]] == steps.tolist()
      np.testing.assert_array_equal([v for _, v in final[metric]], values.astype(np.float32))


class _Killed(Exception):
  pass


def test_a_resumed_live_sweep_replaces_what_the_killed_one_logged_to_tensorboard(tmp_path):
  out = tmp_path / "tiny"
  first = exports.LiveLog("tensorboard", out, "tiny")

  def killed_at_step_10(rows):
    first.segment(rows)
    if rows.curves["step"].max() == 10:  # the state of step 5 saved, that of 10 not yet
      raise _Killed

  with pytest.raises(_Killed):
    sweep.run(CONFIG, out, quiet=True, checkpoint_every=1e-9, on_segment=killed_at_step_10)
  logged = _tensorboard_curves(out / "tensorboard" / "config_0000")
  assert [step for step, _ in logged["train_loss"]] == [5, 10]
  again = exports.LiveLog("tensorboard", out, "tiny")
  result = sweep.run(CONFIG, out, quiet=True, on_rows=again, on_segment=again.segment)
  resumed = result.manifest["checkpoint"]["chunks_resumed_mid_training"]
  assert [r["from_step"] for r in resumed] == [5]  # what the test covers
  for config_id in result.summary["config_id"]:  # each step once: the killed run's hidden
    final = _tensorboard_curves(out / "tensorboard" / f"config_{config_id:04d}")
    for metric in METRICS:
      steps, values = _curve(result.curves, config_id, metric)
      assert [step for step, _ in final[metric]] == steps.tolist()
      np.testing.assert_array_equal([v for _, v in final[metric]], values.astype(np.float32))


def test_log_to_an_unknown_tracker_is_refused_before_training(tmp_path, capsys):
  config = tmp_path / "tiny.yaml"
  config.write_text(
    "problem: {name: linear_regression}\noptimizer: {name: sgd, "
    "learning_rate: 1e-3}\ntrain: {steps: 4, log_every: 2}\n"
  )
  code, err = _main(
    capsys, "sweep", config, "--out", tmp_path / "out", "--log-to", "mlflow,tensorbord"
  )
  assert code == 2 and "unknown tracker 'tensorbord'" in err and "'tensorboard'" in err
  assert not (tmp_path / "out" / "summary.csv").exists()


def test_log_to_without_its_extra_stops_the_sweep_before_training(tmp_path, capsys, monkeypatch):
  monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
  config = tmp_path / "tiny.yaml"
  config.write_text(
    "problem: {name: linear_regression}\noptimizer: {name: sgd, "
    "learning_rate: 1e-3}\ntrain: {steps: 4, log_every: 2}\n"
  )
  code, err = _main(capsys, "sweep", config, "--out", tmp_path / "out", "--log-to", "wandb")
  assert code == 2 and "pip install 'momentum_jax[wandb]'" in err
  assert not (tmp_path / "out" / "summary.csv").exists()


def test_tracker_names_read_as_users_write_them():
  assert exports.tracker_names(" TensorBoard, mlflow,mlflow") == ["tensorboard", "mlflow"]
  assert exports.tracker_names(["wandb"]) == ["wandb"]
  with pytest.raises(ValueError, match="did you mean 'wandb'"):
    exports.tracker_names("wandbb")
