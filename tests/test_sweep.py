"""The sweep engine: configs, grids, one compilation, chunking, sharding, isolation."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pandas as pd
import pytest

import momentum_jax as mj
from momentum_jax import cli, problems, sweep
from momentum_jax.train import TrainConfig, train

REGRESSION = {
    "problem": {"name": "linear_regression"},
    "optimizer": {"name": "momentum", "ema": False,
                  "learning_rate": {"logspace": [0.003, 0.3, 3]},
                  "beta": {"linspace": [0.0, 0.9, 3]}},
    "train": {"steps": 40, "log_every": 20},
    "seeds": 2,
}


def _with(base, **changes):
  config = json.loads(json.dumps(base))
  for path, value in changes.items():
    node = config
    *parents, last = path.split("__")
    for key in parents:
      node = node[key]
    node[last] = value
  return config


def test_grid_values():
  np.testing.assert_allclose(sweep.grid_values("x", {"logspace": [1e-3, 0.1, 3]}), [1e-3, 1e-2, 0.1])
  np.testing.assert_allclose(sweep.grid_values("x", {"linspace": [0, 0.9, 4]}), [0, 0.3, 0.6, 0.9])
  np.testing.assert_array_equal(sweep.grid_values("x", [0.1, 0.2]), [0.1, 0.2])
  np.testing.assert_array_equal(sweep.grid_values("x", 0.5), [0.5])


def test_the_grid_is_the_product_times_the_seeds():
  config = sweep.load_config(_with(REGRESSION, optimizer__learning_rate=[0.1, 0.2]))
  assert config.num_configs == 2 * 3 * 2
  result = sweep.run(config, quiet=True)
  assert len(result.summary) == 12
  assert sorted(set(zip(result.summary.learning_rate, result.summary.beta, result.summary.seed))) \
      == sorted((lr, b, s) for lr in (0.1, 0.2) for b in (0.0, 0.45, 0.9) for s in (0, 1))
  assert len(result.curves) == 12 * 2


@pytest.mark.parametrize(
    "config, path, fragment",
    [
        (_with(REGRESSION, problem__name="linear_regresion"), "problem.name",
         "did you mean 'linear_regression'"),
        (_with(REGRESSION, optimizer__name="adamw"), "optimizer.name", "did you mean 'adam'"),
        (_with(REGRESSION, optimizer__betta=0.9), "optimizer.betta", "did you mean 'beta'"),
        (_with(REGRESSION, optimizer__beta=[0.5, 1.2]), "optimizer.beta", "beta must be in [0, 1)"),
        (_with(REGRESSION, optimizer__beta=[]), "optimizer.beta", "empty"),
        (_with(REGRESSION, optimizer__beta={"linspace": [0, 1]}), "optimizer.beta.linspace",
         "[start, stop, count]"),
        (_with(REGRESSION, optimizer__learning_rate={"logspace": [0, 1, 3]}),
         "optimizer.learning_rate.logspace", "not exponents"),
        (_with(REGRESSION, optimizer__learning_rate=[0.1, 0.0]), "optimizer.learning_rate",
         "must be > 0"),
        (_with(REGRESSION, optimizer__ema="no"), "optimizer.ema", "true or false"),
        (_with(REGRESSION, train__steps=0), "train.steps", "positive integer"),
        (_with(REGRESSION, train__stepz=3), "train.stepz", "did you mean 'steps'"),
        (_with(REGRESSION, seeds=0), "seeds", ">= 1"),
        (_with(REGRESSION, problem__width=3), "problem.width", "unknown key"),
        (_with(REGRESSION, optimizer__schedule={"name": "cosine"}), "optimizer.schedule.name",
         "did you mean 'cosine_annealing'"),
        (_with(REGRESSION, optimizer__schedule={"name": "step_decay", "decay_rate": 0.5}),
         "optimizer.schedule.step_size", "required"),
    ],
)
def test_bad_configs_name_the_field(config, path, fragment):
  with pytest.raises(sweep.ConfigError) as error:
    sweep.load_config(config)
  assert error.value.path == path
  assert fragment in str(error.value)
  assert isinstance(error.value, ValueError)


def test_batch_larger_than_the_data_is_refused_before_compiling():
  with pytest.raises(sweep.ConfigError, match="train.batch_size: must be at most the 1000"):
    sweep.run(_with(REGRESSION, train__batch_size=5000), quiet=True)


def _count_compilations(fn):
  events = []
  def listener(event, duration, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
      events.append(event)
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    result = fn()
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
  return result, len(events)


def test_one_compilation_whatever_the_number_of_configurations():
  small = _with(REGRESSION, optimizer__beta=[0.5], seeds=1)   # K = 3, one chunk
  large = _with(REGRESSION, optimizer__beta={"linspace": [0, 0.9, 10]}, seeds=4)  # K = 120
  sweep.run(small, quiet=True, chunk_size=4)  # warm up jax's own helpers
  small_result, small_count = _count_compilations(
      lambda: sweep.run(small, quiet=True, chunk_size=4))
  large_result, large_count = _count_compilations(
      lambda: sweep.run(large, quiet=True, chunk_size=4))
  assert small_result.manifest["compilations"] == large_result.manifest["compilations"] == 1
  assert large_count == small_count  # 30 chunks through the one executable


def test_results_do_not_depend_on_the_chunk_size():
  summaries = [sweep.run(REGRESSION, quiet=True, chunk_size=c).summary for c in (1, 4, 18)]
  for other in summaries[1:]:
    pd.testing.assert_frame_equal(summaries[0], other, check_exact=False, rtol=1e-6)


def test_each_configuration_equals_its_sequential_run():
  result = sweep.run(REGRESSION, quiet=True)
  problem = problems.get_problem("linear_regression")
  factory = functools.partial(mj.momentum, ema=False)
  for row in result.summary.itertuples():
    alone = train(problem, factory, {"learning_rate": row.learning_rate, "beta": row.beta},
                  jax.random.key(row.seed), TrainConfig(steps=40, log_every=20))
    np.testing.assert_allclose(row.final_loss, alone.metrics["train_loss"][-1], rtol=1e-5)


def test_a_diverging_configuration_never_disturbs_the_others():
  stable = _with(REGRESSION, optimizer__learning_rate=[0.01, 0.1])
  with_bad = _with(REGRESSION, optimizer__learning_rate=[0.01, 0.1, 50.0])
  # The same chunk shape for both: then the kept rows are bit-identical. (Two
  # chunk shapes compile two programs, whose float32 rounding can differ in
  # the last bit; see test_results_do_not_depend_on_the_chunk_size.)
  good = sweep.run(stable, quiet=True, chunk_size=6).summary
  mixed = sweep.run(with_bad, quiet=True, chunk_size=6).summary
  bad_rows = mixed[mixed.learning_rate == 50.0]
  assert bad_rows.diverged.all()
  assert (bad_rows.diverged_at_step < 40).all()
  kept = mixed[mixed.learning_rate != 50.0].drop(columns="config_id").reset_index(drop=True)
  pd.testing.assert_frame_equal(kept, good.drop(columns="config_id"), check_exact=True)
  assert not good.diverged.any()


def test_schedule_parameters_are_swept():
  config = _with(REGRESSION, optimizer__schedule={"name": "step_decay", "decay_rate": [0.1, 0.5],
                                                  "step_size": 10}, seeds=1)
  result = sweep.run(config, quiet=True)
  assert "schedule.decay_rate" in result.summary.columns
  problem = problems.get_problem("linear_regression")
  row = result.summary.iloc[-1]
  factory = lambda learning_rate, beta: mj.momentum(
      mj.step_decay(learning_rate, row["schedule.decay_rate"], 10), beta, ema=False)
  alone = train(problem, factory, {"learning_rate": row.learning_rate, "beta": row.beta},
                jax.random.key(0), TrainConfig(steps=40, log_every=20))
  np.testing.assert_allclose(row.final_loss, alone.metrics["train_loss"][-1], rtol=1e-5)


def test_sharded_over_eight_simulated_devices_gives_the_same_results(tmp_path):
  script = textwrap.dedent(f"""
      import json, sys
      from momentum_jax import sweep
      result = sweep.run(json.loads(sys.argv[1]), quiet=True, chunk_size=8)
      result.summary.to_csv(sys.argv[2], index=False)
      print(json.dumps(result.manifest["devices"]))
  """)
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  out = subprocess.run(
      [sys.executable, "-c", script, json.dumps(REGRESSION), str(tmp_path / "s.csv")],
      env=env, capture_output=True, text=True, check=True, timeout=300)
  assert len(json.loads(out.stdout.strip().splitlines()[-1])) == 8
  sharded = pd.read_csv(tmp_path / "s.csv")
  single = sweep.run(REGRESSION, quiet=True, chunk_size=8).summary
  np.testing.assert_allclose(sharded.final_loss, single.final_loss, rtol=1e-6)
  np.testing.assert_array_equal(sharded.beta, single.beta)


def test_cli_sweep_writes_results_and_figures(tmp_path, capsys):
  config = tmp_path / "tiny.yaml"
  config.write_text(json.dumps(REGRESSION))  # JSON is YAML
  out = tmp_path / "out"
  assert cli.main(["sweep", str(config), "--out", str(out), "--quiet"]) == 0
  printed = capsys.readouterr().out
  assert "18 configurations" in printed and "best 5 configurations" in printed
  for name in ("summary.csv", "curves.parquet", "manifest.json",
               "heatmap_momentum_ema_false.png"):  # the group's label, made a file name
    assert (out / name).stat().st_size > 0
  manifest = json.loads((out / "manifest.json").read_text())
  assert manifest["compilations"] == 1 and manifest["num_configs"] == 18
  assert cli.main(["report", str(out)]) == 0
  assert "momentum" in capsys.readouterr().out


def test_cli_reports_a_bad_config_in_one_line_with_status_2(tmp_path, capsys):
  config = tmp_path / "bad.yaml"
  config.write_text(json.dumps(_with(REGRESSION, optimizer__beta=1.5)))
  assert cli.main(["sweep", str(config), "--quiet"]) == 2
  err = capsys.readouterr().err
  assert err.strip() == "momentum-jax sweep: error: optimizer.beta: beta must be in [0, 1), got [1.5]"
  assert cli.main(["sweep", str(tmp_path / "missing.yaml")]) == 2


def test_groups_are_labelled_by_their_static_options():
  config = {**REGRESSION, "optimizer": None}
  del config["optimizer"]
  config["optimizers"] = [
      dict(REGRESSION["optimizer"]), dict(REGRESSION["optimizer"], ema=True),
      {"name": "adam", "learning_rate": 0.01,
       "schedule": {"name": "cosine_annealing", "t_max": 40}}]
  parsed = sweep.load_config(config)
  assert [o.label for o in parsed.optimizers] == [
      "momentum(ema=false)", "momentum(ema=true)", "adam(schedule=cosine_annealing)"]
  result = sweep.run(parsed, quiet=True)
  assert list(dict.fromkeys(result.summary.optimizer)) == [o.label for o in parsed.optimizers]
  assert result.manifest["compilations"] == 3
  config["optimizers"].append(dict(REGRESSION["optimizer"]))
  with pytest.raises(sweep.ConfigError, match=r"optimizers\[3\]: repeats optimizers\[0\]"):
    sweep.load_config(config)
