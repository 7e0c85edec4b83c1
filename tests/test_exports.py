"""A sweep in TensorBoard, MLflow and W&B, read back through each one's own library.

One small sweep (two optimizer groups on the regression, one learning rate
diverging, two seeds: 6 configurations, so two batches end one after the
other) is logged live to all three trackers and exported again from its
folder; each tracker's copy is read back (TensorBoard's event accumulator,
MlflowClient, W&B's offline run files) and compared with ``curves.parquet``
and ``summary.csv`` value for value; and what ``export`` refuses.
"""

from __future__ import annotations

import glob
import json
import shutil
import sys
import time

import numpy as np
import pytest

from momentum_jax import cli, report, results, sweep
from momentum_jax.report import exports

from _wandb_records import run_contents
from _trackers import CONFIG, METRICS, _curve, _main, _tensorboard_curves


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
  """The sweep's folder, logged live to every tracker, and what each tracker held at each
  segment boundary before the batch ended (its 4 logs make 4 segments: 3 boundaries inside
  each of its 2 batches), read back by the tracker's own library."""
  out = tmp_path_factory.mktemp("sweep")
  live = exports.LiveLog("tensorboard,mlflow,wandb", out, "tiny")
  batches, segments = [], []

  def on_segment(rows):  # what each tracker holds once the segment's rows are logged
    live.segment(rows)
    segments.append((rows.curves, _held_at_boundary(out, rows.curves)))

  def on_rows(batch):
    batches.append(batch)
    live(batch)

  # W&B writes a running run's file every 15 s by default: at once here, to read it back.
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv("WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL", "0.05")
    result = sweep.run(CONFIG, out, quiet=True, on_rows=on_rows, on_segment=on_segment)
  report.save(result, out)  # the tables, summary.md and the figures MLflow attaches
  live.close(out)
  assert len(batches) == 2 and result.summary["diverged"].sum() == 2  # what the tests cover
  return out, batches, segments


@pytest.fixture(scope="module")
def swept(live_run):
  return live_run[0]


@pytest.fixture(scope="module")
def exported(swept, tmp_path_factory):
  """A copy of the sweep's files (no tracker's), exported to every tracker (to MLflow at a
  URI given: ``given.db``)."""
  out = tmp_path_factory.mktemp("exported")
  for path in [*glob.glob(str(swept / "*.*"))]:
    if not path.endswith(".db"):
      shutil.copy(path, out)
  for to in exports.TRACKERS:
    exports.export(out, to, f"sqlite:///{out / 'given.db'}" if to == "mlflow" else None)
  return out


def _mlflow_curves(client, out, name):
  experiment = client.get_experiment_by_name("tiny")
  (run,) = client.search_runs([experiment.experiment_id], f"attributes.run_name = '{name}'")
  return {
    metric: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, metric)]
    for metric in run.data.metrics
  }


def _wandb_curves(out, names, last_step, patience=20.0):
  """Each named run's history once its file holds ``last_step`` (W&B writes it every 0.05 s
  here: read again until it does, for ``patience`` seconds at most)."""
  deadline = time.perf_counter() + patience
  while True:
    found = {}
    for path in glob.glob(str(out / "wandb/offline-run-*/run-*.wandb")):
      contents = run_contents(path)
      if contents.get("name") in names:
        history = contents["history"]
        found[contents["name"]] = {
          metric: [(step, history[step][metric]) for step in sorted(history)] for metric in METRICS
        }
    # A run's file may exist with no step yet (just opened): not done, read again.
    done = all((found.get(n, {}).get(METRICS[0]) or [(None,)])[-1][0] == last_step for n in names)
    if done or time.perf_counter() > deadline:
      return found
    time.sleep(0.05)


def _held_at_boundary(out, curves):
  """What each tracker holds now of the configurations in ``curves``: ``{tracker: {name:
  {metric: [(step, value), ...]}}}``."""
  from mlflow import MlflowClient

  names = [f"config_{i:04d}" for i in sorted(set(curves["config_id"]))]
  client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
  held = {
    "tensorboard": {n: _tensorboard_curves(out / "tensorboard" / n) for n in names},
    "mlflow": {n: _mlflow_curves(client, out, n) for n in names},
  }
  if _wandb_writes_running_runs():
    held["wandb"] = _wandb_curves(out, names, int(curves["step"].max()))
  return held


def _wandb_writes_running_runs():
  """Whether W&B writes a running offline run's file as it goes: from wandb 0.31 on, every
  ``x_transaction_log_flush_interval`` seconds; before, only when the run ends (what the
  W&B server gets live is sent as it is logged, in every version)."""
  import wandb

  return "x_transaction_log_flush_interval" in wandb.Settings.model_fields


def _expected(out):
  saved = results.load_results(out)
  return saved.summary.set_index("config_id"), saved.curves


@pytest.mark.parametrize("where", ["swept", "exported"])
def test_tensorboard_holds_every_scalar_and_an_hparams_session(where, request):
  from tensorboard.backend.event_processing import event_accumulator
  from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

  out = request.getfixturevalue(where)
  summary, curves = _expected(out)
  groups = {}
  for config_id, row in summary.iterrows():
    events = event_accumulator.EventAccumulator(
      str(out / "tensorboard" / f"config_{config_id:04d}"),
      size_guidance={event_accumulator.SCALARS: 0},
    )
    events.Reload()
    assert sorted(events.Tags()["scalars"]) == sorted(METRICS)
    for metric in METRICS:
      steps, values = _curve(curves, config_id, metric)
      read = events.Scalars(metric)
      assert [e.step for e in read] == steps.tolist()
      # TensorBoard keeps a scalar as float32; the metrics were float32 before the
      # tables widened them, so the round trip is exact.
      np.testing.assert_array_equal([e.value for e in read], values.astype(np.float32))
    sessions = {
      tag: plugin_data_pb2.HParamsPluginData.FromString(content)
      for tag, content in events.PluginTagToContent("hparams").items()
    }
    start = sessions["_hparams_/session_start_info"].session_start_info
    end = sessions["_hparams_/session_end_info"].session_end_info
    hparams = {k: v.string_value or v.number_value for k, v in start.hparams.items()}
    expected = {
      "optimizer": row["optimizer"],
      "learning_rate": row["learning_rate"],
      **({} if np.isnan(row["beta"]) else {"beta": row["beta"]}),
    }
    assert hparams == expected
    assert end.status == (api_pb2.STATUS_FAILURE if row["diverged"] else api_pb2.STATUS_SUCCESS)
    groups[config_id] = start.group_name
  # The seeds of one setting share a session group; other settings do not.
  setting = summary["optimizer"] + summary["learning_rate"].astype(str)
  for one in summary.index:
    for other in summary.index:
      assert (groups[one] == groups[other]) == (setting[one] == setting[other])
  assert len(set(groups.values())) == 3  # 3 settings x 2 seeds


def _hparams_session_groups(logdir):
  """The HParams view's session groups, asked of TensorBoard's own app (no server, no port)."""
  import time
  from tensorboard import default, program
  from tensorboard.backend import application
  from tensorboard.backend.event_processing import data_ingester
  from werkzeug.test import Client

  board = program.TensorBoard(plugins=default.get_plugins())
  board.configure(argv=[None, "--logdir", str(logdir), "--load_fast", "false"])
  ingester = data_ingester.LocalDataIngester(board.flags)
  ingester.start()  # reads the logdir in a thread: ask until the sessions are there
  app = application.TensorBoardWSGIApp(
    board.flags,
    board.plugin_loaders,
    ingester.data_provider,
    board.assets_zip_provider,
    ingester.deprecated_multiplexer,
  )
  request = {
    "experimentName": "",
    "allowedStatuses": ["STATUS_SUCCESS", "STATUS_FAILURE"],
    "colParams": [],
    "startIndex": 0,
    "sliceSize": 100,
  }
  for _ in range(100):
    answer = Client(app).post("/data/plugin/hparams/session_groups", json=request)
    if groups := json.loads(answer.data)["sessionGroups"]:
      return groups
    time.sleep(0.1)
  raise AssertionError(f"TensorBoard showed no HParams session in {logdir}")


def test_tensorboard_hparams_view_groups_each_settings_seeds(swept):
  summary, _ = _expected(swept)
  groups = _hparams_session_groups(swept / "tensorboard")
  assert len(groups) == 3
  for group in groups:
    ids = [int(s["name"].removeprefix("config_")) for s in group["sessions"]]
    rows = summary.loc[ids]
    assert len(ids) == 2 and rows["seed"].tolist() == [0, 1]
    assert rows["optimizer"].nunique() == 1 and rows["learning_rate"].nunique() == 1
    assert group["hparams"]["learning_rate"] == rows["learning_rate"].iloc[0]
    # The view shows the mean over seeds of each session's last train_loss (float32
    # values averaged in float64: one rounding in the sum, none in the halving).
    (shown,) = [m["value"] for m in group["metricValues"] if m["name"]["tag"] == "train_loss"]
    assert shown == pytest.approx(
      rows["final_loss"].astype(np.float32).astype(float).mean(), rel=2**-52
    )


@pytest.mark.parametrize("where", ["swept", "exported"])
def test_mlflow_holds_a_parent_run_with_a_nested_run_per_configuration(where, request):
  from mlflow import MlflowClient

  out = request.getfixturevalue(where)
  summary, curves = _expected(out)
  store = {"swept": "mlflow.db", "exported": "given.db"}[where]
  client = MlflowClient(tracking_uri=f"sqlite:///{out / store}")
  experiment = client.get_experiment_by_name("tiny")
  # A local store's artifacts are in the sweep's folder (MLflow's default: the working folder).
  assert experiment.artifact_location == (out / "mlartifacts").as_uri()
  (parent,) = client.search_runs([experiment.experiment_id], "attributes.run_name = 'tiny'")
  artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
  assert {"summary.md", "summary.csv"} <= artifacts and any(a.endswith(".png") for a in artifacts)
  nested = client.search_runs(
    [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
  )
  assert sorted(r.info.run_name for r in nested) == [f"config_{i:04d}" for i in summary.index]
  for run in nested:
    config_id = int(run.info.run_name.removeprefix("config_"))
    row = summary.loc[config_id]
    params = run.data.params
    assert params.pop("optimizer") == row["optimizer"] and int(params.pop("seed")) == row["seed"]
    # Parameters are strings: Python's float repr reads back to the same float64.
    assert {k: float(v) for k, v in params.items()} == {
      k: row[k] for k in ("learning_rate", "beta") if not np.isnan(row[k])
    }
    assert run.info.status == ("FAILED" if row["diverged"] else "FINISHED")
    for metric in METRICS:
      steps, values = _curve(curves, config_id, metric)
      history = sorted(client.get_metric_history(run.info.run_id, metric), key=lambda m: m.step)
      assert [m.step for m in history] == steps.tolist()
      np.testing.assert_array_equal([m.value for m in history], values)  # float64 stored


@pytest.mark.parametrize("where", ["swept", "exported"])
def test_wandb_offline_runs_hold_config_and_metrics_per_step(where, request):
  out = request.getfixturevalue(where)
  summary, curves = _expected(out)
  runs = [run_contents(path) for path in glob.glob(str(out / "wandb/offline-run-*/run-*.wandb"))]
  assert sorted(r["name"] for r in runs) == [f"config_{i:04d}" for i in summary.index]
  for run in runs:
    config_id = int(run["name"].removeprefix("config_"))
    row = summary.loc[config_id]
    assert run["group"] == "tiny" and run["job_type"] == row["optimizer"]
    assert run["config"] == {
      "optimizer": row["optimizer"],
      "seed": row["seed"],
      **{k: row[k] for k in ("learning_rate", "beta") if not np.isnan(row[k])},
    }
    steps, _ = _curve(curves, config_id, METRICS[0])
    assert sorted(run["history"]) == steps.tolist()
    for metric in METRICS:
      steps, values = _curve(curves, config_id, metric)
      # JSON's shortest float repr reads back to the same float64.
      np.testing.assert_array_equal([run["history"][s][metric] for s in steps], values)


def test_trackers_hold_each_segment_before_its_batch_ends(live_run):
  out, batches, segments = live_run
  # 3 boundaries inside each batch; at each, its rows' curves up to the boundary.
  assert [curves["step"].max() for curves, _ in segments] == [5, 10, 15] * 2
  ids = [sorted(b.summary["config_id"]) for b in batches]
  assert [sorted(set(curves["config_id"])) for curves, _ in segments] == [ids[0]] * 3 + [ids[1]] * 3
  final = _expected(out)[1].set_index(["config_id", "step"])
  for curves, held in segments:
    # What a boundary saw is what the finished sweep's curves hold at those steps.
    np.testing.assert_array_equal(
      curves.set_index(["config_id", "step"])[list(METRICS)],
      final.loc[curves.set_index(["config_id", "step"]).index, list(METRICS)],
    )
    live_files = {"wandb"} if _wandb_writes_running_runs() else set()
    assert set(held) == {"tensorboard", "mlflow"} | live_files
    for tracker, runs in held.items():
      assert sorted(runs) == [f"config_{i:04d}" for i in sorted(set(curves["config_id"]))]
      for name, read in runs.items():
        for metric in METRICS:
          steps, values = _curve(curves, int(name.removeprefix("config_")), metric)
          assert [step for step, _ in read[metric]] == steps.tolist(), (tracker, name, metric)
          if tracker == "tensorboard":  # float32 there: exact for float32 metrics (see above)
            values = values.astype(np.float32)
          np.testing.assert_array_equal([value for _, value in read[metric]], values)


def test_export_of_a_folder_without_a_sweep_names_it(tmp_path, capsys):
  code, err = _main(capsys, "export", tmp_path, "--to", "tensorboard")
  assert code == 2 and str(tmp_path) in err and "not a complete sweep result" in err


def test_export_to_an_unknown_tracker_is_refused(swept, capsys):
  with pytest.raises(SystemExit) as exit_:
    cli.main(["export", str(swept), "--to", "neptune"])
  assert exit_.value.code == 2 and "invalid choice: 'neptune'" in capsys.readouterr().err


@pytest.mark.parametrize(
  "to,module", [("mlflow", "mlflow"), ("wandb", "wandb"), ("tensorboard", "tensorboardX")]
)
def test_a_missing_extra_is_named(swept, to, module, capsys, monkeypatch):
  monkeypatch.setitem(sys.modules, module, None)  # as if not installed
  code, err = _main(capsys, "export", swept, "--to", to)
  assert code == 2 and f"pip install 'momentum_jax[{to}]'" in err


def test_a_second_tensorboard_export_into_the_same_folder_is_refused(swept, capsys):
  code, err = _main(capsys, "export", swept, "--to", "tensorboard")
  assert code == 2 and str(swept / "tensorboard" / "config_0000") in err


def test_uri_goes_to_mlflow_only(swept, capsys):
  code, err = _main(capsys, "export", swept, "--to", "wandb", "--uri", "http://localhost:5000")
  assert code == 2 and "MLflow's tracking URI" in err
