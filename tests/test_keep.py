"""keep: {models: K}: the K best configurations' models, kept across chunks, resumed, reloaded."""

from __future__ import annotations

import copy
import json

import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from flax import nnx

from _sweep_configs import HALVING as _SHARED_HALVING
from _sweep_configs import ROSENBROCK_PBT, TWO_GROUPS
from _two_hosts import sweep_on_two_hosts
from momentum_jax import cli, problems, report, results, sweep
from momentum_jax import train as train_lib
from momentum_jax.train import _kept
from momentum_jax.sweep import _checkpoint, _keep
from momentum_jax.sweep._config import KeepSpec

# Four learning rates x 3 seeds of a BatchNorm MLP (its running statistics are
# model state a kept model must carry). With chunks of 2 rows, a setting's
# 3 seeds straddle two chunks: its rank is known only after the second.
DIGITS = {
  "problem": {"name": "digits_mlp", "hidden": [16], "batch_norm": True},
  "optimizer": {"name": "momentum", "learning_rate": [0.01, 0.03, 0.1, 0.3], "beta": 0.9},
  "train": {"steps": 40, "batch_size": 32, "log_every": 20},
  "seeds": 3,
  "keep": {"models": 2},
}
WIDTH = 1  # results are bit-identical whatever the chunk size at one width


@pytest.fixture(scope="module")
def kept(tmp_path_factory):
  """DIGITS in chunks of 2, written to a folder: ``(result, folder)``."""
  out = tmp_path_factory.mktemp("kept")
  result = sweep.run(DIGITS, out, quiet=True, width=WIDTH, chunk_size=2)
  report.save(result, out, figures=False)
  return result, out


@pytest.fixture(scope="module")
def one_chunk():
  """DIGITS in one chunk, in memory."""
  return sweep.run(DIGITS, quiet=True, width=WIDTH, chunk_size=12)


def _same_models(a: list, b: list) -> None:
  assert [m.describe() for m in a] == [m.describe() for m in b]
  for x, y in zip(a, b):
    for one, other in zip(x.states, y.states):
      assert one.keys() == other.keys()
      for name in one:
        np.testing.assert_array_equal(one[name], other[name], err_msg=name)


def test_the_kept_are_the_report_s_best_by_the_mean_over_seeds(kept):
  result, _ = kept
  best = report.best_configurations(result.summary, n=2)
  assert [m.hyperparameters["learning_rate"] for m in result.models] == best[
    "learning_rate"
  ].tolist()
  for model, (_, row) in zip(result.models, best.iterrows()):
    assert model.metric == "val_accuracy"  # the report's default ranking
    assert model.mean == row["val_accuracy_mean"]
    runs = result.summary[result.summary["learning_rate"] == row["learning_rate"]]
    assert [r["config_id"] for r in model.runs] == runs["config_id"].tolist()
    assert [r["seed"] for r in model.runs] == [0, 1, 2]
    assert [r["metrics"]["val_accuracy"] for r in model.runs] == runs["val_accuracy"].tolist()


def test_kept_across_chunks_equals_kept_in_one_chunk(kept, one_chunk):
  _same_models(kept[0].models, one_chunk.models)
  # Only the held rows of the kept settings stay in the checkpoint (4 settings, 2 kept).
  held = sorted(p.name for p in (kept[1] / "chunks" / "kept").iterdir())
  ids = sorted(r["config_id"] for m in kept[0].models for r in m.runs)
  assert held == [f"g000-r{i:07d}.npz" for i in ids]


def test_the_running_top_k_ranks_by_the_mean_and_holds_only_what_may_be_kept():
  # Four settings x 3 seeds offered two rows at a time (settings straddle
  # chunks), no training: setting 0 has the best single run but the worst
  # mean; setting 3 the best mean of its healthy seeds but a diverged one.
  accuracy = np.array([0.99, 0.1, 0.1, 0.8, 0.8, 0.8, 0.7, 0.7, 0.7, 0.9, 0.9, np.nan])
  metrics = {
    "train_loss": np.ones((12, 2)),
    "grad_norm": np.ones((12, 2)),
    "val_accuracy": np.stack([accuracy] * 2, 1),
  }
  diverged = np.where(np.arange(12) == 11, 5, -1)
  keeper = _keep.Keeper(KeepSpec(models=2), "val_accuracy", [12], seeds=3, steps=20)
  pulled = []

  def pull(rows):
    pulled.extend(rows.tolist())
    return [{"params.w": np.full(1, row)} for row in rows]

  held = []
  for first in range(0, 12, 2):
    rows = np.arange(first, first + 2)
    keeper.offer(
      0,
      rows,
      {k: v[rows] for k, v in metrics.items()},
      diverged[rows],
      lambda positions: pull(rows[positions]),
    )
    keeper.prune()
    held.append(sorted(row for _, row in keeper.held))
  assert pulled == list(range(10))  # not 10 and 11: a setting that lost a seed ranks last
  assert held[4] == [3, 4, 5, 6, 7, 8, 9]  # settings 1 and 2 beat 0; 3 is not complete
  assert held[5] == [3, 4, 5, 6, 7, 8]
  result = results.tables(
    [
      results.GroupOutcome(
        "momentum",
        {"learning_rate": np.repeat([1.0, 2, 3, 4], 3)},
        np.tile([0, 1, 2], 4),
        metrics,
        diverged,
      )
    ],
    np.array([10, 20]),
    {},
  )
  kept = keeper.finish(result).models
  assert [m.hyperparameters["learning_rate"] for m in kept] == [2.0, 3.0]
  assert [[int(s["params.w"][0]) for s in m.states] for m in kept] == [[3, 4, 5], [6, 7, 8]]


def _abs_bound_model(model: nnx.Module) -> nnx.Module:
  """``model`` with every weight made |w| and BatchNorm's means -|mean|: on |x| it gives
  an upper bound of the sums of |terms| each layer adds up, for the rounding bound below."""
  bound = nnx.clone(model)
  state = nnx.state(bound)
  for path, variable in nnx.to_flat_state(state):
    flip = -1.0 if path[-1] == "mean" else 1.0
    variable[...] = flip * jnp.abs(variable[...])
  nnx.update(bound, state)
  return bound


def test_a_reloaded_model_scores_the_summary_s_validation_metrics(kept):
  result, out = kept
  problem = problems.digits_mlp(hidden=[16], batch_norm=True)
  x, y = problem.data.x_val, problem.data.y_val
  u = 2.0**-24  # float32's unit roundoff
  for model in result.models:
    for run in model.runs:
      loaded = results.load_model(out, rank=model.rank, seed=run["seed"])
      assert isinstance(loaded, type(problem.make_model(nnx.Rngs(0))))
      logits = loaded(x)
      # Evaluated outside the sweep's compiled program, the logits may differ
      # from the sweep's in rounding only: a float32 dot product of n terms is
      # off by at most n·u·Σ|terms| whatever its order (Higham), so with
      # 64 + 16 terms on the path to each logit, two programs' logits differ
      # by at most 2·80·u·A (A: the same network on |x| with |weights|).
      slack = 2 * (64 + 16) * u * np.max(np.asarray(_abs_bound_model(loaded)(jnp.abs(x))), -1)
      top2 = np.sort(np.asarray(logits), -1)[:, -2:]
      unsure = np.sum(top2[:, 1] - top2[:, 0] <= 2 * slack)  # argmax could flip
      accuracy = float(np.mean(np.argmax(np.asarray(logits), -1) == np.asarray(y)))
      expected = run["metrics"]["val_accuracy"]
      assert abs(accuracy - expected) <= unsure / len(y) + u, (model.rank, run["seed"])
      # The loss moves by at most 2·slack per example (log-softmax is
      # 1-Lipschitz in each logit, both ways), plus the mean's own rounding.
      loss = float(problem.loss(loaded, x, y))
      assert abs(loss - run["metrics"]["val_loss"]) <= (
        2 * np.max(slack) + len(y) * u * abs(loss)
      ), (model.rank, run["seed"])
  first = results.load_model(out)  # rank 0, its first seed
  second = results.load_model(out, rank=0, seed=result.models[0].runs[1]["seed"])
  assert not np.array_equal(first.layers[0].kernel[...], second.layers[0].kernel[...])
  # Evaluation mode: BatchNorm uses its trained running statistics, which moved.
  assert first.norms[0].use_running_average
  assert np.any(np.asarray(first.norms[0].var[...]) != 1.0)


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


def test_the_manifest_and_summary_md_name_the_kept_runs(kept):
  result, out = kept
  written = json.loads((out / "manifest.json").read_text())["models"]
  by_id = result.summary.set_index("config_id")
  expected = [
    {
      "rank": m.rank,
      "config_id": r["config_id"],
      "seed": r["seed"],
      "path": f"models/rank_{m.rank}/seed_{r['seed']}",
      "metric": "val_accuracy",
      "value": by_id.loc[r["config_id"], "val_accuracy"],
      "mean": m.mean,
    }
    for m in result.models
    for r in m.runs
  ]
  assert written == expected and len(written) == 2 * 3  # 2 settings x 3 seeds
  for entry in written:  # each path is the folder load_model reads
    assert (out / entry["path"]).is_dir()
  assert results.load_results(out).manifest.models == written
  report_text = (out / "summary.md").read_text()
  section = report_text[report_text.index("## Kept models") :]
  assert "The 2 best configurations by the mean of val_accuracy over seeds" in section
  lines = [line for line in section.splitlines() if line.startswith("| ")]
  assert lines[0] == ("| rank | config_id | seed | val_accuracy | val_accuracy mean | folder |")
  assert [line.split(" | ")[1:3] for line in lines[1:]] == [
    [str(e["config_id"]), str(e["seed"])] for e in written
  ]
  assert all(f"`{e['path']}/`" in line for e, line in zip(written, lines[1:]))


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


def test_load_model_refuses_what_was_not_kept(kept):
  _, out = kept
  with pytest.raises(FileNotFoundError, match=r"kept 2 model\(s\) \(ranks 0 to 1\)"):
    results.load_model(out, rank=2)
  with pytest.raises(ValueError, match=r"seeds \[0, 1, 2\], not 7"):
    results.load_model(out, seed=7)


def test_ranked_by_another_metric(one_chunk):
  config = copy.deepcopy(DIGITS)
  config["keep"] = {"models": 1, "metric": "val_loss"}
  result = sweep.run(config, quiet=True, width=WIDTH)
  best = report.best_configurations(result.summary, n=1, by="val_loss")
  (model,) = result.models
  assert model.metric == "val_loss" and model.mean == best["val_loss_mean"].iloc[0]
  assert model.hyperparameters["learning_rate"] == best["learning_rate"].iloc[0]


class _Killed(Exception):
  pass


def test_a_sweep_killed_mid_run_keeps_the_same_models_on_resume(tmp_path, monkeypatch, one_chunk):
  save, calls = _checkpoint.Checkpoint.save_batch, []

  def dies_at_the_last_chunk(self, *args, **kwargs):
    # Chunks of rows [0, 1] … [10, 11]: the keeper has written the last
    # chunk's held rows, which are never saved. Before it, the rows of the
    # second best setting (6, 7, 8) and the first seed of the best (9) were
    # saved: the resumed sweep must find them held, in the folder.
    calls.append(1)
    if len(calls) == 6:
      raise _Killed
    return save(self, *args, **kwargs)

  monkeypatch.setattr(_checkpoint.Checkpoint, "save_batch", dies_at_the_last_chunk)
  with pytest.raises(_Killed):
    sweep.run(DIGITS, tmp_path, quiet=True, width=WIDTH, chunk_size=2)
  monkeypatch.setattr(_checkpoint.Checkpoint, "save_batch", save)
  # Held: the two best of the three complete settings (rows 3 … 8), the
  # first seed of the fourth (9), and the unsaved chunk's rows (10, 11).
  held = sorted(p.name for p in (tmp_path / "chunks" / "kept").iterdir())
  assert held == [f"g000-r{i:07d}.npz" for i in range(3, 12)]
  resumed = sweep.run(DIGITS, tmp_path, quiet=True, chunk_size=2)
  assert resumed.manifest["checkpoint"]["configs_resumed"] == 10
  _same_models(resumed.models, one_chunk.models)


# Rungs at 10, 30, 90: 9 settings, then 3, then 1.
HALVING = {**_SHARED_HALVING, "keep": {"models": 3}}


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


def test_keep_written_as_a_number_is_refused_saying_how_to_write_it():
  config = {**DIGITS, "keep": 3}
  with pytest.raises(sweep.ConfigError, match=r"^keep: expected a mapping such as \{models: 3\}"):
    sweep.load_config(config)
