"""The sweep engine: configs, grids, one compilation, chunking, sharding, isolation."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from _sweep_configs import REGRESSION  # K = 18
from _sweep_configs import with_changes as _with
from _training_bounds import summary_bound
import momentum_jax as mj
from momentum_jax import cli, problems, sweep
from momentum_jax.train import TrainConfig, build_train, train


def test_grid_values():
  np.testing.assert_allclose(
    sweep.grid_values("x", {"logspace": [1e-3, 0.1, 3]}), [1e-3, 1e-2, 0.1]
  )
  np.testing.assert_allclose(sweep.grid_values("x", {"linspace": [0, 0.9, 4]}), [0, 0.3, 0.6, 0.9])
  np.testing.assert_array_equal(sweep.grid_values("x", [0.1, 0.2]), [0.1, 0.2])
  np.testing.assert_array_equal(sweep.grid_values("x", 0.5), [0.5])


def test_the_grid_is_the_product_times_the_seeds():
  config = sweep.load_config(_with(REGRESSION, optimizer__learning_rate=[0.1, 0.2]))
  assert config.num_configs == 2 * 3 * 2
  result = sweep.run(config, quiet=True)
  assert len(result.summary) == 12
  assert sorted(
    set(zip(result.summary.learning_rate, result.summary.beta, result.summary.seed))
  ) == sorted((lr, b, s) for lr in (0.1, 0.2) for b in (0.0, 0.45, 0.9) for s in (0, 1))
  assert len(result.curves) == 12 * 2


@pytest.mark.parametrize(
  "config, path, fragment",
  [
    (
      _with(REGRESSION, problem__name="linear_regresion"),
      "problem.name",
      "did you mean 'linear_regression'",
    ),
    (_with(REGRESSION, optimizer__name="adma"), "optimizer.name", "did you mean 'adam'"),
    (_with(REGRESSION, optimizer__betta=0.9), "optimizer.betta", "did you mean 'beta'"),
    (_with(REGRESSION, optimizer__beta=[0.5, 1.2]), "optimizer.beta", "beta must be in [0, 1)"),
    (_with(REGRESSION, optimizer__beta=[]), "optimizer.beta", "empty"),
    (
      _with(REGRESSION, optimizer__beta={"linspace": [0, 1]}),
      "optimizer.beta.linspace",
      "[start, stop, count]",
    ),
    (
      _with(REGRESSION, optimizer__learning_rate={"logspace": [0, 1, 3]}),
      "optimizer.learning_rate.logspace",
      "not exponents",
    ),
    (
      _with(REGRESSION, optimizer__learning_rate=[0.1, 0.0]),
      "optimizer.learning_rate",
      "must be > 0",
    ),
    (_with(REGRESSION, optimizer__ema="no"), "optimizer.ema", "true or false"),
    (_with(REGRESSION, train__steps=0), "train.steps", "must be >= 1, got 0"),
    (_with(REGRESSION, train__stepz=3), "train.stepz", "did you mean 'steps'"),
    (_with(REGRESSION, seeds=0), "seeds", ">= 1"),
    (_with(REGRESSION, problem__width=3), "problem.width", "unknown key"),
    (
      _with(REGRESSION, optimizer__schedule={"name": "cosine"}),
      "optimizer.schedule.name",
      "did you mean 'cosine_annealing'",
    ),
    (
      _with(REGRESSION, optimizer__schedule={"name": "step_decay", "decay_rate": 0.5}),
      "optimizer.schedule.step_size",
      "required",
    ),
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
  small = _with(REGRESSION, optimizer__beta=[0.5], seeds=1)  # K = 3, one chunk
  large = _with(REGRESSION, optimizer__beta={"linspace": [0, 0.9, 10]}, seeds=4)  # K = 120
  sweep.run(small, quiet=True, chunk_size=4)  # warm up jax's own helpers
  small_result, small_count = _count_compilations(
    lambda: sweep.run(small, quiet=True, chunk_size=4)
  )
  large_result, large_count = _count_compilations(
    lambda: sweep.run(large, quiet=True, chunk_size=4)
  )
  assert small_result.manifest["compilations"] == large_result.manifest["compilations"] == 1
  assert large_count == small_count  # 30 chunks through the one executable


@pytest.mark.parametrize("width", [1, 3])
def test_results_do_not_depend_on_the_chunk_size_to_the_bit(width):
  summaries = [
    sweep.run(REGRESSION, quiet=True, width=width, chunk_size=c).summary for c in (3, 9, 18)
  ]
  for other in summaries[1:]:
    pd.testing.assert_frame_equal(summaries[0], other, check_exact=True)


def test_each_configuration_equals_its_sequential_run():
  result = sweep.run(REGRESSION, quiet=True)
  problem = problems.get_problem("linear_regression")
  factory = functools.partial(mj.momentum, ema=False)
  config = TrainConfig(steps=40, log_every=20)
  # The engine's program and train's round otherwise: within the rounding's
  # measured reach (_training_bounds.summary_bound).
  bound = summary_bound(problem, factory, config, result.summary, ["learning_rate", "beta"])
  for row, limit in zip(result.summary.itertuples(), bound["final_loss"]):
    alone = train(
      problem,
      factory,
      {"learning_rate": row.learning_rate, "beta": row.beta},
      jax.random.key(row.seed),
      config,
    )
    assert abs(row.final_loss - float(alone.metrics["train_loss"][-1])) <= limit, (row, limit)


def test_diverging_configurations_never_disturb_the_others():
  stable = _with(REGRESSION, optimizer__learning_rate=[0.01, 0.1])
  # 3.0 grows the loss past 1000x its first value in a few steps; 1e30 overflows to
  # inf at the first update.
  with_bad = _with(REGRESSION, optimizer__learning_rate=[0.01, 0.1, 3.0, 1e30])
  # The same width for both (the model would take each whole group, 12 and
  # 24): then the kept rows are bit-identical.
  good = sweep.run(stable, quiet=True, width=6).summary
  mixed = sweep.run(with_bad, quiet=True, width=6).summary
  growing = mixed[mixed.learning_rate == 3.0]
  assert growing.diverged.all()
  assert (growing.diverged_at_step > 1).all() and (growing.diverged_at_step < 40).all()
  overflowing = mixed[mixed.learning_rate == np.float32(1e30)]
  assert overflowing.diverged.all()
  assert (overflowing.diverged_at_step == 1).all()  # after the first update
  kept = mixed[mixed.learning_rate < 1].drop(columns="config_id").reset_index(drop=True)
  pd.testing.assert_frame_equal(kept, good.drop(columns="config_id"), check_exact=True)
  assert not good.diverged.any()


def test_schedule_parameters_are_swept():
  config = _with(
    REGRESSION,
    optimizer__schedule={"name": "step_decay", "decay_rate": [0.1, 0.5], "step_size": 10},
    seeds=1,
  )
  result = sweep.run(config, quiet=True)
  assert "schedule.decay_rate" in result.summary.columns
  problem = problems.get_problem("linear_regression")
  row = result.summary.iloc[-1]
  factory = lambda learning_rate, beta: mj.momentum(
    mj.step_decay(learning_rate, row["schedule.decay_rate"], 10), beta, ema=False
  )
  config = TrainConfig(steps=40, log_every=20)
  alone = train(
    problem,
    factory,
    {"learning_rate": row.learning_rate, "beta": row.beta},
    jax.random.key(0),
    config,
  )
  # Two programs: within the rounding's measured reach (_training_bounds.summary_bound).
  (limit,) = summary_bound(
    problem, factory, config, result.summary.iloc[-1:], ["learning_rate", "beta"]
  )["final_loss"]
  assert abs(row.final_loss - float(alone.metrics["train_loss"][-1])) <= limit


def test_sharded_over_eight_simulated_devices_gives_bit_identical_results(tmp_path):
  script = textwrap.dedent("""
      import json, sys
      from momentum_jax import sweep
      config = json.loads(sys.argv[1])
      runs = {}
      for name, width, chunk in (("model", None, 8), ("two", 2, 30)):
        result = sweep.run(config, quiet=True, width=width, chunk_size=chunk)
        result.summary.to_csv(f"{sys.argv[2]}/{name}.csv", index=False)
        runs[name] = [result.manifest["execution"]["width"], result.manifest["chunk_size"]]
      print(json.dumps([result.manifest["devices"], runs]))
  """)
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  out = subprocess.run(
    [sys.executable, "-c", script, json.dumps(REGRESSION), str(tmp_path)],
    env=env,
    capture_output=True,
    text=True,
    check=True,
    timeout=300,
  )
  devices, runs = json.loads(out.stdout.strip().splitlines()[-1])
  assert len(devices) == 8
  label = "momentum(ema=false)"
  # The model splits the 18 configurations over the 8 devices, 3 each (not
  # 18 each, which would pad the chunk to 144); width 2 takes two batches.
  assert runs["model"] == [{label: 3}, {label: 24}]
  assert runs["two"] == [{label: 2}, {label: 32}]
  for name, width in (("model", 3), ("two", 2)):
    sharded = pd.read_csv(tmp_path / f"{name}.csv")
    single = sweep.run(REGRESSION, quiet=True, width=width).summary
    # Through CSV, which writes floats exactly (round-trip repr).
    np.testing.assert_array_equal(sharded.final_loss, single.final_loss)
    np.testing.assert_array_equal(sharded.best_loss, single.best_loss)
    np.testing.assert_array_equal(sharded.beta, single.beta)


def test_cli_sweep_writes_results_and_figures(tmp_path, capsys):
  config = tmp_path / "tiny.yaml"
  config.write_text(json.dumps(REGRESSION))  # JSON is YAML
  out = tmp_path / "out"
  assert cli.main(["sweep", str(config), "--out", str(out), "--quiet"]) == 0
  printed = capsys.readouterr().out
  assert "18 configurations" in printed and "best 5 configurations" in printed
  for name in (
    "summary.csv",
    "curves.parquet",
    "manifest.json",
    "heatmap_momentum_ema_false.png",
  ):  # the group's label, made a file name
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
  assert (
    err.strip() == "momentum-jax sweep: error: optimizer.beta: beta must be in [0, 1), got [1.5]"
  )
  assert cli.main(["sweep", str(tmp_path / "missing.yaml")]) == 2


def test_groups_are_labelled_by_their_static_options():
  config = {**REGRESSION, "optimizer": None}
  del config["optimizer"]
  config["optimizers"] = [
    dict(REGRESSION["optimizer"]),
    dict(REGRESSION["optimizer"], ema=True),
    {"name": "adam", "learning_rate": 0.01, "schedule": {"name": "cosine_annealing", "t_max": 40}},
  ]
  parsed = sweep.load_config(config)
  assert [o.label for o in parsed.optimizers] == [
    "momentum(ema=false)",
    "momentum(ema=true)",
    "adam(schedule=cosine_annealing)",
  ]
  result = sweep.run(parsed, quiet=True)
  assert list(dict.fromkeys(result.summary.optimizer)) == [o.label for o in parsed.optimizers]
  assert result.manifest["compilations"] == 3
  config["optimizers"].append(dict(REGRESSION["optimizer"]))
  with pytest.raises(sweep.ConfigError, match=r"optimizers\[3\]: repeats optimizers\[0\]"):
    sweep.load_config(config)


def test_the_progress_bar_advances_after_each_segment_and_changes_no_result(monkeypatch):
  from momentum_jax.sweep import _progress

  counted = []
  finish_chunk = _progress.Progress.finish_chunk

  def spy(self, amount):
    counted.append((self.bar.n - self._done, amount))  # what the segments advanced
    finish_chunk(self, amount)

  monkeypatch.setattr(_progress.Progress, "finish_chunk", spy)
  loud = sweep.run(REGRESSION, width=3, chunk_size=9)
  # 18 configurations in 2 chunks of 9, 40 steps each, in segments of 20 steps
  assert counted == [(9 * 40, 9 * 40)] * 2
  # The bar's programs call nothing back: they are as cacheable as a quiet run's.
  assert all("cacheable" not in p for p in loud.manifest["programs"])
  quiet = sweep.run(REGRESSION, quiet=True, width=3, chunk_size=9)
  pd.testing.assert_frame_equal(loud.summary, quiet.summary, check_exact=True)


def test_a_training_run_reports_each_logged_segment_to_on_log():
  problem = problems.get_problem("linear_regression")
  steps = []
  run = build_train(
    problem,
    mj.sgd,
    TrainConfig(steps=40, log_every=10),
    on_log=lambda step: steps.append(int(step)),
  )
  batched = jax.jit(jax.vmap(run))(
    {"learning_rate": jnp.full(4, 0.1)}, jax.random.split(jax.random.key(0), 4)
  )
  jax.block_until_ready(batched)
  jax.effects_barrier()
  assert sorted(steps) == [10, 20, 30, 40]  # once per segment for the batch of 4


def test_data_with_nan_is_refused_as_a_config_error_naming_the_problem(monkeypatch):
  from momentum_jax import data

  def poisoned(seed=0):
    x = np.linspace(-1, 1, 100, dtype=np.float32).reshape(-1, 1)
    y = 3 * x[:, 0] + 2
    y[7] = np.nan
    return data.Dataset(name="poisoned", x_train=x, y_train=y)

  monkeypatch.setattr(problems._builtin.data_lib, "regression_normal", poisoned)
  with pytest.raises(sweep.ConfigError, match=r"^problem: .*y_train contains 1 NaN"):
    sweep.run(REGRESSION, quiet=True)
