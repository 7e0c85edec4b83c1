"""2-D landscapes as sweep problems: by name, against run_on_landscape, starts, divergence, figures."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest
from flax import nnx

import _tolerances
from _landscapes import hessian64
from _rounding import rounding_bound
import momentum_jax as mj
from momentum_jax import problems, report, results, sweep
from momentum_jax.report import plots
from momentum_jax.data import LANDSCAPES, get_landscape, run_on_landscape
from momentum_jax.train import TrainConfig, build_train


def _config(name, steps=40, log_every=1, seeds=1, **options):
  return {
    "problem": {"name": name, **options},
    "optimizer": {
      "name": "momentum",
      "ema": False,
      "learning_rate": [1e-3, 2e-3],
      "beta": [0.0, 0.9],
    },
    "train": {"steps": steps, "log_every": log_every},
    "seeds": seeds,
  }


@pytest.mark.parametrize("name", sorted(LANDSCAPES))
def test_every_landscape_is_a_problem_by_name(name):
  landscape = get_landscape(name)
  problem = problems.get_problem(name)
  assert problem.name == name
  U32 = _tolerances.U32
  start32, minima32 = landscape.start.astype(np.float32), landscape.global_minima.astype(np.float32)
  with jax.enable_x64(True):
    exact = lambda point: float(landscape.value(jnp.asarray(point, jnp.float64)))
    floor, at_start = min(map(exact, landscape.global_minima)), exact(landscape.start)
    slope = np.abs(np.asarray(landscape.grad(jnp.asarray(start32, jnp.float64))))
    curvature = max(np.linalg.norm(hessian64(landscape, m), 2) for m in minima32)
  # The floor: float32 values at the global minima rounded to float32, each within
  # its rounding (_rounding.rounding_bound) of f there, which lies within
  # ½·‖H‖·(U32·‖m‖)² of f at the minimum itself (flat there to first order).
  floor_bound = max(float(rounding_bound(landscape.fn, m)[1]) for m in minima32)
  floor_bound += (
    0.5 * curvature * (U32 * np.linalg.norm(landscape.global_minima, axis=1).max()) ** 2
  )
  assert abs(problem.loss_floor - floor) <= floor_bound, (problem.loss_floor, floor, floor_bound)
  model = problem.make_model(nnx.Rngs(0))
  np.testing.assert_array_equal(np.asarray(model.xy[...]), start32)
  x, y = problem.data.x_val, problem.data.y_val  # placeholders: a landscape has no data
  # The loss at the start: f in float32 at the start rounded to float32 (U32 on
  # each coordinate, times the slope there).
  loss_bound = float(rounding_bound(landscape.fn, start32)[1]) + U32 * slope @ np.abs(start32)
  assert abs(float(problem.loss(model, x, y)) - at_start) <= loss_bound
  where = problem.metrics(model, x, y)
  np.testing.assert_array_equal([where["x"], where["y"]], start32)  # the point as stored
  # The distance: a float32 norm (rounding_bound) between points rounded to float32
  # (the norm is 1-Lipschitz: U32 of each).
  norm = lambda xy: jnp.min(jnp.linalg.norm(jnp.asarray(minima32) - xy, axis=-1))
  distance_bound = float(rounding_bound(norm, start32)[1])
  distance_bound += U32 * (np.linalg.norm(start32) + np.linalg.norm(minima32, axis=1).max())
  distance = np.min(np.linalg.norm(landscape.global_minima - landscape.start, axis=1))
  assert abs(float(where["distance_to_minimum"]) - distance) <= distance_bound


def _path_bound(landscape, tx, steps):
  """How far a float32 descent's points may lie from the exact ones: 0 at the start."""
  start = {"xy": jnp.asarray(landscape.start, jnp.float32)}
  grad = jax.grad(landscape.value)
  _, bound = _tolerances.run_and_bound(tx, lambda p: {"xy": grad(p["xy"])}, start, steps)
  return np.concatenate([np.zeros((1, 2)), bound["xy"]])


def _rounded(value):
  """A float32 formula's own rounding: ``UPDATE_ROUNDINGS`` ulps of its value."""
  return _tolerances.UPDATE_ROUNDINGS * _tolerances.U32 * np.abs(value)


def _value_bound(landscape, path, where):
  """How far two programs' values at ``path`` may lie apart, their points ``where`` apart:
  the gradient times the distance (first order), and each one's rounding of the formula
  (as its point off by ``UPDATE_ROUNDINGS`` ulps, and its value)."""
  gradient = np.abs(np.asarray(jax.vmap(jax.grad(landscape.value))(path), np.float64))
  off = where + 2 * _rounded(path)
  return np.sum(gradient * off, axis=1) + 2 * _rounded(landscape.value(path))


def test_a_landscape_sweep_follows_run_on_landscape():
  """Every configuration's logged path is the optimizer's own descent, step by step."""
  steps = 40
  result = sweep.run(_config("rosenbrock", steps=steps), quiet=True)
  summary, curves = result.summary, result.curves
  assert set(results.swept_hyperparameters(summary)) == {"learning_rate", "beta"}
  landscape = get_landscape("rosenbrock")
  for _, row in summary.iterrows():
    tx = mj.momentum(row.learning_rate, row.beta, ema=False)
    path = np.asarray(run_on_landscape(landscape, tx, steps=steps))
    logged = curves[curves.config_id == row.config_id].sort_values("step")
    np.testing.assert_array_equal(logged.step, np.arange(1, steps + 1))
    # Two float32 programs: each point within its rounding bound of the exact
    # descent (_tolerances.run_and_bound), twice the bound apart.
    where = 2 * _path_bound(landscape, tx, steps)
    np.testing.assert_array_equal([row.start_x, row.start_y], path[0])
    within = _tolerances.assert_within
    within({"xy": logged[["val_x", "val_y"]].to_numpy()}, {"xy": path[1:]}, {"xy": where[1:]})
    within({"xy": np.array([row.val_x, row.val_y])}, {"xy": path[-1]}, {"xy": where[-1]})
    distance = np.linalg.norm(path[-1] - landscape.global_minima[0])
    assert abs(row.val_distance_to_minimum - distance) <= np.linalg.norm(where[-1]) + _rounded(
      distance
    )
    # The loss logged at step t is the value at the point before step t's update;
    # the validation loss, the value after it.
    values = _value_bound(landscape, path, where)
    exact = np.asarray(landscape.value(path))
    within(
      {"train_loss": logged.train_loss}, {"train_loss": exact[:-1]}, {"train_loss": values[:-1]}
    )
    within({"val_loss": logged.val_loss}, {"val_loss": exact[1:]}, {"val_loss": values[1:]})
  assert not summary.diverged.any()


def test_seeds_start_around_the_start_with_a_spread():
  spread = sweep.run(_config("saddle", steps=2, seeds=3, start_spread=0.5), quiet=True).summary
  starts = spread[["seed", "start_x", "start_y"]]
  # Each seed has its own start, the same for every hyperparameter setting.
  assert starts.groupby("seed").nunique().max().max() == 1
  per_seed = starts.drop_duplicates("seed")
  assert len(per_seed) == 3 and per_seed[["start_x", "start_y"]].drop_duplicates().shape[0] == 3
  assert np.all(np.abs(per_seed[["start_x", "start_y"]].to_numpy() - [1.5, 1e-3]) < 5 * 0.5)
  fixed = sweep.run(_config("saddle", steps=2, seeds=3, start=[0.5, -0.25]), quiet=True).summary
  np.testing.assert_array_equal(fixed.start_x, 0.5)
  np.testing.assert_array_equal(fixed.start_y, -0.25)


def test_negative_losses_are_not_divergence_but_blowing_up_is():
  # Near the double well's global minimum every loss is negative (floor -0.515).
  calm = sweep.run(
    _config("tilted_double_well", steps=50, log_every=10, start=[-1.0, 0.1]), quiet=True
  ).summary
  assert (calm.final_loss < 0).all() and not calm.diverged.any()
  assert (calm.val_distance_to_minimum < calm.start_distance_to_minimum).all()
  # The narrow valley's curvature is 100: lr 0.03 > 2/100 makes y grow 2x a step.
  config = _config("narrow_valley", steps=200, log_every=10)
  config["optimizer"]["learning_rate"] = [0.01, 0.03]
  config["optimizer"]["beta"] = [0.0]
  wild = sweep.run(config, quiet=True).summary.set_index("learning_rate")
  assert not wild.loc[0.01, "diverged"]
  assert wild.loc[0.03, "diverged"] and 0 < wild.loc[0.03, "diverged_at_step"] < 200


def test_the_divergence_threshold_is_measured_from_the_floor():
  """A run diverges when (loss - floor) > factor · (first loss - floor)."""
  problem = problems.get_problem("tilted_double_well", start=[-1.0, 0.1])
  floor, first = problem.loss_floor, float(get_landscape("tilted_double_well").value([-1.0, 0.1]))
  assert floor < first < 0
  # Gradient ascent, by a step that moves the point 0.1 a step: the loss climbs out of the
  # well until it is 3x as far above the floor as at the start.
  ascent = lambda learning_rate: optax.scale(learning_rate)
  config = TrainConfig(steps=50, log_every=1, divergence_factor=3.0)
  result = build_train(problem, ascent, config)(
    {"learning_rate": np.float32(0.05)}, jax.random.key(0)
  )
  at = int(result.diverged_at_step)
  losses = np.asarray(result.metrics["train_loss"])
  assert 0 < at < 50
  assert losses[at] - floor > 3 * (first - floor) >= losses[at - 1] - floor


def test_a_landscape_refuses_a_batch_size_and_bad_options():
  # A landscape's data is one placeholder example: no batch of more.
  config = _config("plateau")
  config["train"]["batch_size"] = 2
  with pytest.raises(sweep.ConfigError, match=r"train.batch_size: must be at most the 1 training"):
    sweep.run(config, quiet=True)
  with pytest.raises(
    ValueError, match=r"batch_size must be at most the 1 training examples of plateau"
  ):
    build_train(
      problems.get_problem("plateau"), mj.sgd, TrainConfig(steps=2, batch_size=2, log_every=1)
    )
  with pytest.raises(sweep.ConfigError, match=r"problem\.start: start must be two finite numbers"):
    sweep.run(_config("plateau", start=[1.0, 2.0, 3.0]), quiet=True)
  with pytest.raises(
    sweep.ConfigError, match=r"problem\.start_spread: start_spread must be a finite number"
  ):
    sweep.run(_config("plateau", start_spread=-1.0), quiet=True)
  with pytest.raises(sweep.ConfigError, match=r"problem"):
    sweep.run(_config("plateau", hidden=[3]), quiet=True)


def test_landscape_results_round_trip_and_draw_the_paths(tmp_path):
  result = sweep.run(
    _config("tilted_double_well", steps=60, log_every=10, seeds=2, start_spread=0.2),
    tmp_path / "run",
    quiet=True,
  )
  written = report.save(result, tmp_path / "run")
  assert (tmp_path / "run" / "paths.png") in written["figures"]
  loaded = results.load_results(tmp_path / "run")
  pd.testing.assert_frame_equal(loaded.summary, result.summary)
  pd.testing.assert_frame_equal(loaded.curves, result.curves)
  assert {"val_x", "val_y", "val_distance_to_minimum"} <= set(loaded.curves.columns)
  assert (tmp_path / "run" / "paths.png").is_file()
  # Seeds pool into means of the landscape's metrics too.
  pooled = results.aggregate_over_seeds(result.summary)
  assert "val_distance_to_minimum_mean" in pooled.columns and len(pooled) == 4
  with pytest.raises(ValueError, match="curves must be a column"):
    plots.plot_landscape_paths(
      result.curves.drop(columns=["val_x"]), result.summary, get_landscape("tilted_double_well")
    )
