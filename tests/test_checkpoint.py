"""Resumable sweeps: finished chunks on disk, a partial run resumed, refusal of a foreign sweep."""

from __future__ import annotations

import json

import jax
import numpy as np
import pandas as pd
import pytest

from _sweep_configs import TWO_GROUPS
from _tolerances import assert_within
from _training_bounds import training_bound
from _two_hosts import sweep_on_two_hosts
from _chunks import _chunk_files, _same_results
import momentum_jax as mj
from momentum_jax import cli, problems, results, sweep
from momentum_jax.sweep import _checkpoint
from momentum_jax.sweep.strategies import Batch
from momentum_jax.train import TrainConfig, train


REGRESSION = TWO_GROUPS


def test_each_finished_chunk_is_a_file_of_its_configurations(tmp_path):
  result = sweep.run(REGRESSION, tmp_path, quiet=True, width=2, chunk_size=4)
  files = _chunk_files(tmp_path)
  assert len(files) == 5 + 2  # 18 configurations in chunks of 4, and 6
  assert files[4].name == "g000-0000016-p000.npz"
  with np.load(files[4]) as last_momentum:  # 2 real configurations; the 2 of padding dropped
    assert last_momentum["index"].tolist() == [16, 17]
    assert last_momentum['metrics:["train_loss"]'].shape == (2, 2)
  state = json.loads((tmp_path / "chunks" / "sweep.json").read_text())
  assert state["widths"] == {"momentum(ema=false)": 2, "adam": 2}
  assert state["fingerprint"] == result.manifest["checkpoint"]["fingerprint"]
  assert result.manifest["checkpoint"]["configs_trained"] == 24
  # The tables and figures are the caller's to write (result.save; the CLI does).
  assert sorted(p.name for p in tmp_path.iterdir()) == ["chunks"]


def test_a_partial_run_resumes_without_recomputing_and_gives_the_same_results(tmp_path):
  whole = sweep.run(REGRESSION, quiet=True, width=2, chunk_size=4)
  out = tmp_path / "partial"
  sweep.run(REGRESSION, out, quiet=True, width=2, chunk_size=4).save(out)
  # As if it had stopped after three chunks: later chunks and the tables are gone.
  for path in _chunk_files(out)[3:]:
    path.unlink()
  for name in ("summary.csv", "curves.parquet", "manifest.json"):
    (out / name).unlink()
  resumed = sweep.run(REGRESSION, out, quiet=True)  # the width is the recorded one
  assert resumed.manifest["checkpoint"]["configs_resumed"] == 12
  assert resumed.manifest["checkpoint"]["configs_trained"] == 12
  assert resumed.manifest["execution"]["strategy"] == "resumed"
  _same_results(whole, resumed)
  resumed.save(out)
  _same_results(whole, results.load_results(out))


def test_a_finished_sweep_run_again_trains_nothing(tmp_path):
  first = sweep.run(REGRESSION, tmp_path, quiet=True)
  again = sweep.run(REGRESSION, tmp_path, quiet=True, chunk_size=6)  # chunking is free
  assert again.manifest["compilations"] == 0
  assert again.manifest["checkpoint"]["configs_trained"] == 0
  _same_results(first, again)


def test_a_different_config_is_refused_unless_overwrite(tmp_path, capsys):
  sweep.run(REGRESSION, tmp_path, quiet=True).save(tmp_path)
  other = json.loads(json.dumps(REGRESSION))
  other["train"]["steps"] = 60
  with pytest.raises(
    sweep.OutputDirError, match="holds a sweep of a different config.*--overwrite"
  ):
    sweep.run(other, tmp_path, quiet=True)
  assert json.loads((tmp_path / "manifest.json").read_text())["steps"] == 40  # untouched

  config = tmp_path / "other.yaml"
  config.write_text(json.dumps(other))
  assert cli.main(["sweep", str(config), "--out", str(tmp_path), "--quiet"]) == 2
  error = capsys.readouterr().err
  assert "different config" in error and "Traceback" not in error

  result = sweep.run(other, tmp_path, quiet=True, overwrite=True)
  assert result.manifest["checkpoint"]["configs_trained"] == 24
  assert not (tmp_path / "manifest.json").exists()  # the replaced sweep's results are gone
  result.save(tmp_path)
  assert json.loads((tmp_path / "manifest.json").read_text())["steps"] == 60


def test_a_finished_sweep_without_its_chunks_still_guards_its_folder(tmp_path):
  sweep.run(REGRESSION, tmp_path, quiet=True).save(tmp_path)
  for path in (tmp_path / "chunks").iterdir():
    path.unlink()
  (tmp_path / "chunks").rmdir()
  other = dict(REGRESSION, seeds=1)
  with pytest.raises(sweep.OutputDirError, match="different config"):
    sweep.run(other, tmp_path, quiet=True)
  assert sweep.run(REGRESSION, tmp_path, quiet=True).manifest["checkpoint"]["configs_trained"] == 24


def test_other_package_versions_are_refused(tmp_path):
  sweep.run(REGRESSION, tmp_path, quiet=True)
  state_file = tmp_path / "chunks" / "sweep.json"
  state = json.loads(state_file.read_text())
  state["versions"]["jax"] = "0.0.1"
  state_file.write_text(json.dumps(state))
  with pytest.raises(sweep.OutputDirError, match=r"other package versions \(jax 0.0.1 ->"):
    sweep.run(REGRESSION, tmp_path, quiet=True)


def test_resuming_at_another_width_is_refused(tmp_path):
  sweep.run(REGRESSION, tmp_path, quiet=True, width=2)
  with pytest.raises(sweep.OutputDirError, match="at width"):
    sweep.run(REGRESSION, tmp_path, quiet=True, width=3)
  assert sweep.run(REGRESSION, tmp_path, quiet=True, width=2).manifest["compilations"] == 0


def test_the_chunk_metrics_round_trip_nested_dicts(tmp_path):
  state = {"fingerprint": "f", "config": {}, "versions": {}}
  checkpoint = _checkpoint.Checkpoint.open(tmp_path, state, overwrite=False)
  metrics = {
    "train_loss": np.arange(6.0).reshape(3, 2),
    "grad_norms": {"layers": {0: {"kernel": np.ones((3, 2), np.float32)}}},
  }
  rows = np.array([2, 0, 1])
  batch = Batch(rows, {"learning_rate": np.array([0.1, 0.2, 0.3])}, np.zeros(3, np.int64), 0)
  checkpoint.save_batch(
    0,
    batch,
    {"next": 3},
    {
      "rows": rows,
      "metrics": metrics,
      "diverged_at_step": np.array([-1, 5, -1], np.int32),
      "stopped_at_step": np.full(3, 2),
      "values": dict(batch.values),
      "history": {"copied_from": np.full((3, 2), -1)},
    },
    (4, 2),
  )
  ((saved, state, ended, widths),) = checkpoint.batches(0)
  assert (saved.record(), state, widths.tolist()) == (batch.record(), {"next": 3}, [4, 2])
  np.testing.assert_array_equal(ended["rows"], rows)
  np.testing.assert_array_equal(ended["metrics"]["train_loss"], metrics["train_loss"])
  kernel = ended["metrics"]["grad_norms"]["layers"][0]["kernel"]  # an int key stays one
  assert kernel.dtype == np.float32
  np.testing.assert_array_equal(ended["diverged_at_step"], [-1, 5, -1])


def test_a_sweep_logging_per_layer_gradient_norms_checkpoints_and_tabulates_them(tmp_path):
  config = {
    "problem": {"name": "digits_mlp", "hidden": [8]},
    "optimizer": {"name": "sgd", "learning_rate": [0.01, 0.1]},
    "train": {"steps": 4, "batch_size": 16, "log_every": 2, "grad_norms": True},
    "seeds": 1,
  }
  saved = sweep.run(config, tmp_path, quiet=True)
  _same_results(sweep.run(config, quiet=True), saved)
  with np.load(_chunk_files(tmp_path)[0]) as chunk:
    assert chunk['metrics:["grad_norms", "layers", 0, "kernel"]'].shape == (2, 2)
  # ... and curves.parquet has a column per kernel and bias, the training run's values.
  columns = [c for c in saved.curves.columns if c.startswith("grad_norm/")]
  assert columns == [f"grad_norm/layers/{i}/{leaf}" for i in (0, 1) for leaf in ("bias", "kernel")]
  saved.save(tmp_path)
  _same_results(saved, results.load_results(tmp_path))
  problem = problems.get_problem("digits_mlp", hidden=[8])
  train_config = TrainConfig(steps=4, batch_size=16, log_every=2, grad_norms=True)
  alone = train(problem, mj.sgd, {"learning_rate": 0.1}, jax.random.key(0), train_config)
  swept = saved.curves[saved.curves.config_id == 1]  # learning rate 0.1
  # The engine's program and train's: within the rounding's measured reach.
  _, bound = training_bound(
    problem, mj.sgd, train_config, {"learning_rate": [0.1]}, jax.random.key(0)[None]
  )
  norms = {f"grad_norm/{p}": n for p, n in mj.named_norms(alone.metrics["grad_norms"]).items()}
  assert_within(
    {name: swept[name].to_numpy() for name in norms},
    norms,
    {name: bound[name][0] for name in norms},
  )


def test_two_processes_write_their_own_shares_and_one_merges(tmp_path):
  """Two hosts, simulated: two processes of 2 CPU devices each, through the CLI."""
  out, outputs = sweep_on_two_hosts(REGRESSION, tmp_path, "--width", "3")
  assert "best 5 configurations" in outputs[0][0]
  assert "configurations" not in outputs[1][0]  # one process speaks for all
  writers = {path.name[-7:-4] for path in _chunk_files(out)}
  assert writers == {"000"}  # every process holds every row (a strategy sees them all)
  merged = results.load_results(out)
  manifest = merged.manifest
  assert manifest["num_processes"] == 2 and len(manifest["devices"]) == 4
  single = sweep.run(REGRESSION, quiet=True, width=3)
  pd.testing.assert_frame_equal(merged.summary, single.summary, check_exact=True)


def test_resuming_with_other_data_or_another_model_is_refused(tmp_path):
  # Two problems of the same name, as a dict config records them
  # ("problem:toy"): the checkpoint tells them apart by their data's hash
  # and their parameters' shapes.
  from flax import nnx
  from momentum_jax import data

  rng = np.random.default_rng(0)
  x = rng.normal(size=(64, 3)).astype(np.float32)
  y = (x @ np.array([1.0, -2.0, 0.5], np.float32)).astype(np.float32)

  def config(targets, hidden=None):
    def make_model(rngs):
      if hidden is None:
        return nnx.Linear(3, 1, rngs=rngs)
      return nnx.Sequential(nnx.Linear(3, hidden, rngs=rngs), nnx.Linear(hidden, 1, rngs=rngs))

    problem = problems.Problem("toy", data.Dataset("toy", x, targets[:, None]), make_model)
    return {
      "problem": problem,
      "optimizer": {"name": "sgd", "learning_rate": [0.01, 0.1]},
      "train": {"steps": 20, "log_every": 10},
    }

  first = sweep.run(config(y), tmp_path, quiet=True)
  assert first.manifest["problem_record"]["parameter_shapes"] == {"kernel": [3, 1], "bias": [1]}
  again = sweep.run(config(y), tmp_path, quiet=True)
  assert again.manifest["checkpoint"]["configs_trained"] == 0  # the same problem: resumed
  # The same config, its problem's data or model changed: said so.
  with pytest.raises(sweep.OutputDirError, match="same config, but its problem changed"):
    sweep.run(config(y + 1.0), tmp_path, quiet=True)
  with pytest.raises(sweep.OutputDirError, match="same config, but its problem changed"):
    sweep.run(config(y, hidden=4), tmp_path, quiet=True)
