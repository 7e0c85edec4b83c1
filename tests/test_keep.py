"""keep: {models: K}: the K best configurations' models, kept across chunks, resumed, reloaded."""

from __future__ import annotations

import copy
import json

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from _keep_configs import DIGITS, WIDTH
from momentum_jax import problems, report, results, sweep
from momentum_jax.sweep import _checkpoint, _keep
from momentum_jax.sweep._config import KeepSpec


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
