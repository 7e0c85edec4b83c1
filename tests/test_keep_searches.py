"""keep under schedule-free evaluation parameters, successive halving, PBT and two hosts.

What is kept is what was evaluated: an optimizer's evaluation parameters, the
members a scheduler let finish, PBT's members as they ended, one process's copy
of what two processes trained.
"""

from __future__ import annotations

import copy
import json

import numpy as np
from flax import nnx

from _sweep_configs import ROSENBROCK_PBT, TWO_GROUPS
from _two_hosts import sweep_on_two_hosts
from _keep_configs import HALVING, WIDTH
from momentum_jax import problems, report, results, sweep
from momentum_jax import train as train_lib
from momentum_jax.train import _kept


# Schedule-free AdamW: its validation metrics are measured at the average x,
# not at the iterate y the gradients are taken at (train.evaluation_params).
SCHEDULE_FREE = {
  "problem": {"name": "digits_mlp", "hidden": [16]},
  "optimizer": {
    "name": "optax.contrib.schedule_free_adamw",
    "learning_rate": [0.01, 0.03],
    "warmup_steps": 5,
  },
  "train": {"steps": 30, "batch_size": 64, "log_every": 15},
  "seeds": 1,
  "keep": {"models": 1, "metric": "val_loss"},
}


def _raw_iterates(config: dict, monkeypatch) -> list:
  """``config`` swept again, keeping the parameters as the optimizer left them (the old way)."""
  with monkeypatch.context() as patched:
    raw = lambda run, state: _kept.flat_arrays(state.params, state.rest)
    patched.setattr(train_lib.Setup, "kept", raw)
    return sweep.run(config, quiet=True, width=WIDTH).models


def _abs_mlp(arrays: dict, x: np.ndarray) -> np.ndarray:
  """An MLP's ``Linear`` layers (``params.layers.<i>.kernel`` / ``bias``) on ``x``, in float64."""
  h = np.asarray(x, np.float64)
  for i in range(sum(name.endswith(".kernel") for name in arrays)):
    h = h @ arrays[f"params.layers.{i}.kernel"] + arrays[f"params.layers.{i}.bias"]
  return h


def _load_arrays(model: nnx.Module) -> dict:
  return {
    k: np.asarray(v, np.float64)
    for k, v in _kept.flat_arrays(*nnx.split(model, nnx.Param, ...)[1:]).items()
  }


def test_a_schedule_free_model_is_kept_at_the_parameters_it_was_evaluated_at(tmp_path, monkeypatch):
  result = sweep.run(SCHEDULE_FREE, tmp_path, quiet=True, width=WIDTH)
  result.save(tmp_path)
  (model,) = result.models
  (raw,) = _raw_iterates(SCHEDULE_FREE, monkeypatch)
  problem = problems.digits_mlp(hidden=[16])
  x, y = problem.data.x_val, problem.data.y_val
  loaded = results.load_model(tmp_path)
  expected = model.runs[0]["metrics"]["val_loss"]
  u, b1 = 2.0**-24, 0.9  # float32's unit roundoff; schedule_free_adamw's b1
  # The sweep's program and the keeper's each compute x = (y - (1 - b1) z) / b1
  # (optax.contrib.schedule_free_eval_params), maybe fused otherwise: each
  # within 2u(|y| + |(1 - b1) z|) / b1 + u|x| of the exact value, and
  # |(1 - b1) z| = |y - b1 x| <= |y| + b1 |x|; so the two differ by at most
  # u (8 |y| / b1 + 6 |x|) per weight, which D bounds.
  kept = _load_arrays(loaded)
  iterate = {k: np.abs(np.asarray(v, np.float64)) for k, v in raw.states[0].items()}
  weights = {k: np.abs(v) for k, v in kept.items()}
  moved = {k: w + 8 * u * (iterate[k] / b1 + w) for k, w in weights.items()}
  # Weights within D of each other move a ReLU MLP's logits by at most
  # A(|w| + D) - A(|w|) on |x| (A: the network with |weights|, no ReLU); each
  # program's float32 dot products of 64 + 16 terms on the path to a logit
  # add at most 80 u A(|w| + D) (Higham's n u sum|terms|), twice.
  bound_net = _abs_mlp(moved, np.abs(x))
  slack = np.max(bound_net - _abs_mlp(weights, np.abs(x)) + 2 * 80 * u * bound_net, -1)
  # Log-softmax is 1-Lipschitz in each logit, both ways: an example's loss
  # moves by at most 2 slack; plus the mean's own rounding over n examples.
  tolerance = 2 * np.max(slack) + len(y) * u * abs(expected)
  loss = float(problem.loss(loaded, x, y))
  assert abs(loss - expected) <= tolerance, (loss, expected, tolerance)
  # The iterate itself scores outside the bound (0.039 off, the bound 0.003,
  # mostly the worst-case dot product rounding): kept the old way, it fails.
  graph, params, rest = nnx.split(problem.make_model(nnx.Rngs(0)), nnx.Param, ...)
  for path, variable in nnx.to_flat_state(params):
    variable[...] = raw.states[0][".".join(("params", *map(str, path)))]
  at_iterate = float(problem.loss(nnx.merge(graph, params, rest), x, y))
  assert abs(at_iterate - expected) > tolerance, (at_iterate, expected, tolerance)


def test_an_optimizer_s_eval_params_are_what_is_kept(monkeypatch):
  config = copy.deepcopy(SCHEDULE_FREE)
  config["optimizer"] = {
    "name": "optax.sgd",
    "learning_rate": [0.1],
    "eval_params": "_user_optimizers:half_params",
  }
  (model,) = sweep.run(config, quiet=True, width=WIDTH).models
  (raw,) = _raw_iterates(config, monkeypatch)
  # The same training program both times, and halving is exact in float32.
  for name, value in model.states[0].items():
    halved = raw.states[0][name] / 2 if name.startswith("params.") else raw.states[0][name]
    np.testing.assert_array_equal(value, halved, err_msg=name)


def test_with_successive_halving_only_finished_members_are_kept(tmp_path):
  result = sweep.run(HALVING, tmp_path, quiet=True, width=2)
  finished = result.summary[result.summary["stopped_at_step"] == 90]
  assert len(finished) == 2  # one setting, both seeds
  (model,) = result.models  # 3 asked, 1 finished
  assert [r["config_id"] for r in model.runs] == finished["config_id"].tolist()
  assert model.metric == "final_loss"
  best = report.best_configurations(result.summary, n=1, by="final_loss")
  assert model.mean == best["final_loss_mean"].iloc[0]
  report.save(result, tmp_path, figures=False)
  assert [e["config_id"] for e in result.manifest.models] == finished["config_id"].tolist()
  assert (
    "The best configuration by the mean of final_loss over seeds"
    in (tmp_path / "summary.md").read_text()
  )
  # Its weights are those held, array for array.
  loaded = results.load_model(tmp_path, seed=1)
  arrays = _kept.flat_arrays(*nnx.split(loaded, nnx.Param, ...)[1:])
  assert arrays.keys() == model.states[1].keys()
  for name, value in arrays.items():
    np.testing.assert_array_equal(value, model.states[1][name], err_msg=name)


def test_with_pbt_the_best_members_are_kept_as_they_ended(tmp_path):
  config = {**ROSENBROCK_PBT, "keep": {"models": 2, "metric": "val_distance_to_minimum"}}
  result = sweep.run(config, tmp_path, quiet=True, width=2)
  result.save(tmp_path)
  best = report.best_configurations(result.summary, n=2, by="val_distance_to_minimum")
  assert [m.mean for m in result.models] == best["val_distance_to_minimum_mean"].tolist()
  assert any(json.loads(lineage) for lineage in result.summary["lineage"])  # members copied
  for model in result.models:
    for run in model.runs:
      # The point is the model's state: the one after the last exploit, where
      # the summary saw it, exactly (a float32 stored, no arithmetic since).
      loaded = results.load_model(tmp_path, rank=model.rank, seed=run["seed"])
      x, y = np.asarray(loaded.xy[...], np.float64)
      assert (x, y) == (run["metrics"]["val_x"], run["metrics"]["val_y"])


REGRESSION = {**TWO_GROUPS, "keep": {"models": 3}}


def test_two_processes_keep_one_process_s_models_and_the_command_says_where(tmp_path):
  """Two hosts, simulated: two processes of 2 CPU devices each, through the command.

  Each process holds only its devices' rows of a chunk: the keeper gathers
  the metrics and the rows it pulls from all of them; process 0 writes.
  """
  out, outputs = sweep_on_two_hosts(REGRESSION, tmp_path, "--width", "3", "--chunk-size", "6")
  assert f"best configurations' trained models (every seed) in {out / 'models'}/" in outputs[0][0]
  single = sweep.run(REGRESSION, quiet=True, width=3)
  for model in single.models:
    assert json.loads(
      (out / "models" / f"rank_{model.rank}" / "model.json").read_text()
    ) == json.loads(json.dumps(model.describe()))
    for run, state in zip(model.runs, model.states):
      loaded = results.load_model(out, rank=model.rank, seed=run["seed"])
      arrays = _kept.flat_arrays(*nnx.split(loaded, nnx.Param, ...)[1:])
      for name in state:
        np.testing.assert_array_equal(arrays[name], state[name], err_msg=name)


def test_a_halving_sweep_resumed_keeps_only_the_members_that_finished(tmp_path):
  # Resumed, the keeper reads the finished batches back: a member the
  # scheduler stopped early is not a candidate there either.
  first = sweep.run(HALVING, tmp_path, quiet=True, width=2)
  again = sweep.run(HALVING, tmp_path, quiet=True, width=2)
  (model,) = again.models  # 3 asked, 1 finished
  assert [m.describe() for m in again.models] == [m.describe() for m in first.models]
  for one, other in zip(model.states, first.models[0].states):
    for name in one:
      np.testing.assert_array_equal(one[name], other[name], err_msg=name)
