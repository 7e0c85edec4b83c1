"""How many configurations a device trains at once: chosen, forced, measured, never visible."""

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
from jax.sharding import Mesh

from _sweep_configs import REGRESSION  # K = 18
from _training_bounds import assert_summaries_within, summary_bound
import momentum_jax as mj
from momentum_jax import cli, problems, sweep
from momentum_jax.sweep import _devices, _execute, _plan
from momentum_jax.train import TrainConfig, build_train, setup

DIGITS = {
  "problem": {"name": "digits_mlp", "hidden": [16]},
  "optimizer": {"name": "momentum", "ema": False, "learning_rate": [0.03, 0.3], "beta": [0.0, 0.9]},
  "train": {"steps": 20, "batch_size": 32, "log_every": 10},
  "seeds": 1,
}  # K = 4
HEAVY_BALL = functools.partial(mj.momentum, ema=False)


@pytest.fixture(scope="module")
def swept():
  """``swept(config, width=None)``: ``sweep.run``'s results, each sweep run once in this
  module (several tests read the same ones)."""
  results = {}

  def get(config, width=None):
    key = (json.dumps(config, sort_keys=True), width)
    if key not in results:
      results[key] = sweep.run(config, quiet=True, width=width)
    return results[key]

  return get


@pytest.fixture(scope="module")
def bound_of(swept):
  """``bound_of(config)``: how far two programs' summaries of ``config`` may lie apart
  (_training_bounds.summary_bound: the rounding's measured reach), computed once."""

  @functools.cache
  def of(config_json):
    config = json.loads(config_json)
    loaded = sweep.load_config(config)
    problem = problems.get_problem(loaded.problem, **loaded.problem_options)
    summary = swept(config).summary
    return summary_bound(problem, HEAVY_BALL, loaded.train, summary, ["learning_rate", "beta"])

  return lambda config: of(json.dumps(config, sort_keys=True))


@pytest.mark.parametrize(
  "config, full", [(REGRESSION, 18), (DIGITS, 4)], ids=["regression", "digits"]
)
def test_results_do_not_depend_on_the_width(config, full, swept, bound_of):
  runs = {1: swept(config, 1), 2: swept(config, 2), full: swept(config)}  # the model's: all
  for w, result in runs.items():
    assert result.manifest["execution"]["width"] == {"momentum(ema=false)": w}
  # Another width is another program: XLA rounds the batched reductions
  # otherwise. The losses lie within the rounding's measured reach; the rest
  # (settings, divergence, accuracy) is equal.
  for w in (1, 2):
    assert_summaries_within(runs[w].summary, runs[full].summary, bound_of(config))


def test_the_model_chooses_and_the_manifest_says_how(swept):
  result = swept(REGRESSION)
  execution = result.manifest["execution"]
  assert execution["strategy"] == "model"
  # 12000 FLOPs a step: far too little to fill the CPU, so the whole group
  assert "every configuration of the group at once" in execution["reason"]["momentum(ema=false)"]
  assert execution["width"] == {"momentum(ema=false)": 18}
  assert execution["shared_seed"] == {"momentum(ema=false)": None}  # seeds 0 and 1
  assert result.manifest["compilations"] == 1 and result.manifest["probe_compilations"] == 0


def test_a_forced_width_is_respected_and_the_chunk_rounded_up_to_it():
  result = sweep.run(REGRESSION, quiet=True, width=4)
  assert result.manifest["execution"]["strategy"] == "forced"
  assert result.manifest["execution"]["width"] == {"momentum(ema=false)": 4}
  assert result.manifest["chunk_size"] == {"momentum(ema=false)": 20}  # 18 padded to 5 x 4
  assert len(result.summary) == 18


@pytest.mark.parametrize("width, batches, batch_shape", [(1, 12, ()), (4, 3, (4,)), (12, 1, (12,))])
def test_each_device_scans_over_batches_of_width_configurations(width, batches, batch_shape):
  config = TrainConfig(steps=2, log_every=1)
  run = setup(
    problems.get_problem("linear_regression"), functools.partial(mj.momentum, ema=False), config
  )
  group = _plan.Group(None, {"learning_rate": np.zeros(12), "beta": np.zeros(12)}, np.arange(12))
  program, abstract = _execute.build_program(
    run, group, width, Mesh(np.array(jax.devices()), ("config",)), 12, _execute.Segments(1, config)
  )
  jaxpr = jax.make_jaxpr(program)(*abstract)
  (shard,) = jaxpr.eqns
  (scan,) = [e for e in shard.params["jaxpr"].eqns if e.primitive.name == "scan"]
  assert scan.params["length"] == batches
  seeds = scan.params["jaxpr"].jaxpr.invars[-1]  # the scanned inputs come last
  assert seeds.aval.shape == batch_shape


def test_a_width_beyond_the_group_is_the_whole_group_and_the_chunk_grows_to_it():
  result = sweep.run(REGRESSION, quiet=True, width=1000, chunk_size=6)
  assert result.manifest["execution"]["width"] == {"momentum(ema=false)": 18}
  assert result.manifest["chunk_size"] == {"momentum(ema=false)": 18}
  assert (
    "cut to the group's 18 configurations"
    in (result.manifest["execution"]["reason"]["momentum(ema=false)"])
  )


def test_measuring_times_the_candidates_and_counts_their_compilations_apart():
  result = sweep.run(REGRESSION, quiet=True, width="measure")
  manifest = result.manifest
  execution = manifest["execution"]
  assert execution["strategy"] == "measured"
  assert set(execution["candidates"]) == {"1", "18"}  # the model's width is the whole chunk
  assert all(seconds > 0 for seconds in execution["candidates"].values())
  chosen = execution["width"]["momentum(ema=false)"]
  assert execution["candidates"][str(chosen)] == min(execution["candidates"].values())
  assert manifest["compilations"] == 1
  assert manifest["probe_compilations"] == 2
  assert manifest["timings"]["probe_seconds"] > 0


@pytest.mark.parametrize(
  "config", [dict(REGRESSION, seeds=1), DIGITS], ids=["regression", "digits"]
)
def test_a_seed_shared_by_the_group_is_a_constant_and_changes_nothing(config, swept, bound_of):
  result = swept(config)
  assert result.manifest["execution"]["shared_seed"] == {"momentum(ema=false)": 0}
  loaded = sweep.load_config(config)
  problem = problems.get_problem(loaded.problem, **loaded.problem_options)
  alone = jax.jit(build_train(problem, HEAVY_BALL, loaded.train))
  # The group's program and the one alone round otherwise: within the
  # rounding's measured reach (_training_bounds.summary_bound).
  for row, limit in zip(result.summary.itertuples(), bound_of(config)["final_loss"]):
    hyperparameters = {"learning_rate": np.float32(row.learning_rate), "beta": np.float32(row.beta)}
    expected = alone(hyperparameters, jax.random.key(0)).metrics["train_loss"][-1]
    assert abs(row.final_loss - float(expected)) <= limit, (row, expected, limit)


def test_the_cli_passes_the_width_on(tmp_path, capsys):
  config = tmp_path / "tiny.yaml"
  config.write_text(json.dumps(REGRESSION))  # JSON is YAML
  out = tmp_path / "out"
  assert cli.main(["sweep", str(config), "--out", str(out), "--quiet", "--width", "4"]) == 0
  manifest = json.loads((out / "manifest.json").read_text())
  assert manifest["execution"]["width"] == {"momentum(ema=false)": 4}
  with pytest.raises(SystemExit):
    cli.main(["sweep", str(config), "--width", "fastest"])
  assert "--width: must be a positive integer or 'measure'" in capsys.readouterr().err


@pytest.mark.parametrize("width", [0, -2, 1.5, True, "fastest"])
def test_a_bad_width_is_refused(width):
  with pytest.raises(sweep.ConfigError, match="width: expected a positive integer or 'measure'"):
    sweep.run(REGRESSION, quiet=True, width=width)


@pytest.mark.parametrize(
  "platform, configs, flops, cores, fit, devices, width",
  [
    ("gpu", 64, 10**9, 1, None, 1, 64),  # 1e11 / 1e9 = 100 needed: the whole group
    ("gpu", 1000, 10**10, 1, None, 1, 10),  # a big model: 10 fill the accelerator
    ("tpu", 7, 10**3, 1, None, 1, 7),
    ("gpu", 64, 10**3, 1, 16, 1, 16),  # memory binds
    ("gpu", 64, 10**9, 1, None, 4, 16),  # four GPUs: a quarter of the group each
    ("cpu", 64, 12_000, 1, None, 1, 64),  # overhead-bound: the whole group
    ("cpu", 64, 12_000, 1, 20, 1, 20),  # ... unless memory binds
    ("cpu", 64, 12_000, 1, None, 2, 32),  # ... or split over two devices, not padded
    ("cpu", 18, 12_000, 1, None, 8, 3),  # eight devices: 18 need 3 a device
    ("cpu", 64, 2 * 10**7, 1, None, 1, 8),  # 1e8 / 2e7 = 5 configurations; 8 divides 64
    ("cpu", 64, 2 * 10**7, 2, None, 1, 16),  # twice the cores, twice the work per batched step
    ("cpu", 61, 2 * 10**7, 1, None, 1, 5),  # no divisor of 61 near 5: 5, and the group pads
    ("cpu", 64, 10**10, 4, None, 1, 1),
    ("cpu", 64, 20_061_696, 2, None, 1, 16),  # digits MLP 64-128-128-10, batch 128, 2 cores
    ("cpu", 64, 20_061_696, 1, None, 1, 8),  # the same, pinned to one core
    ("cpu", 64, 20_061_696, 1, None, 2, 8),  # the same, one device on each of 2 cores
  ],
)
def test_model_width(platform, configs, flops, cores, fit, devices, width):
  chosen, reason = _devices.model_width(platform, configs, flops, cores, fit, devices)
  assert chosen == width
  assert reason


def test_flops_per_step_counts_the_dense_layers():
  config = sweep.load_config(DIGITS)
  problem = problems.get_problem("digits_mlp", hidden=[16])
  params = 64 * 16 + 16 + 16 * 10 + 10
  assert _devices.flops_per_step(problem, config.train) == 6 * params * 32


def _cpu_env(**extra: str) -> dict[str, str]:
  """This process's environment on the CPU, with no device count chosen, plus ``extra``."""
  clean = {k: v for k, v in os.environ.items() if k not in ("JAX_NUM_CPU_DEVICES", "XLA_FLAGS")}
  return {**clean, "JAX_PLATFORMS": "cpu", **extra}


_DEVICES_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    from momentum_jax import sweep
    if sys.argv[1] == "late":
      jax.numpy.zeros(1).block_until_ready()  # JAX has started
    print(json.dumps([sweep.use_cpu_cores(), len(jax.devices())]))
""")


@pytest.mark.parametrize(
  "case, env, expected",
  [
    ("fresh", {}, [True, "cores"]),
    ("late", {}, [False, 1]),  # too late: nothing changes, nothing raises
    ("fresh", {"JAX_NUM_CPU_DEVICES": "3"}, [False, 3]),  # the user's count is kept
    ("fresh", {"XLA_FLAGS": "--xla_force_host_platform_device_count=3"}, [False, 3]),
  ],
)
def test_use_cpu_cores_gives_one_device_per_core_unless_too_late_or_chosen(case, env, expected):
  out = subprocess.run(
    [sys.executable, "-c", _DEVICES_SCRIPT, case],
    env=_cpu_env(**env),
    capture_output=True,
    text=True,
    check=True,
    timeout=120,
  )
  cores = len(os.sched_getaffinity(0))
  assert json.loads(out.stdout.strip().splitlines()[-1]) == [
    e if e != "cores" else cores for e in expected
  ]


def test_the_cli_spreads_a_sweep_over_one_cpu_device_per_core(tmp_path):
  config = tmp_path / "tiny.yaml"
  config.write_text(json.dumps(REGRESSION))
  # As a user runs it: without the suite's MOMENTUM_JAX_CPU_DEVICES=1.
  env = {k: v for k, v in _cpu_env().items() if k != "MOMENTUM_JAX_CPU_DEVICES"}
  subprocess.run(
    [
      sys.executable,
      "-m",
      "momentum_jax",
      "sweep",
      str(config),
      "--out",
      str(tmp_path / "out"),
      "--quiet",
    ],
    env=env,
    capture_output=True,
    text=True,
    check=True,
    timeout=300,
  )
  manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
  cores = len(os.sched_getaffinity(0))
  assert len(manifest["devices"]) == cores
  width = manifest["execution"]["width"]["momentum(ema=false)"]
  assert width == -(-18 // cores)  # overhead-bound: the group split over the devices
  single = sweep.run(REGRESSION, quiet=True, width=width).summary  # this process: 1 device
  np.testing.assert_array_equal(
    pd.read_csv(tmp_path / "out" / "summary.csv").final_loss, single.final_loss
  )


# --- compiler options -----------------------------------------------------------


CPU_OPTIONS = {"xla_backend_optimization_level": 2, "xla_cpu_use_fusion_emitters": False}


def test_compiler_options_lower_the_llvm_level_on_a_cpu_only(monkeypatch):
  from momentum_jax.train import CPU_COMPILER_OPTIONS, compiler_options

  monkeypatch.delenv("XLA_FLAGS", raising=False)
  assert compiler_options("cpu") == CPU_COMPILER_OPTIONS == CPU_OPTIONS
  assert compiler_options("gpu") == {} and compiler_options("tpu") == {}
  # An option the user set in XLA_FLAGS is theirs to keep; the others still apply.
  monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=3")
  assert compiler_options("cpu") == {"xla_cpu_use_fusion_emitters": False}


def test_the_compiler_options_follow_the_expected_training_time(monkeypatch):
  from momentum_jax.train import chosen_compiler_options

  monkeypatch.delenv("XLA_FLAGS", raising=False)
  fast, why = chosen_compiler_options("cpu", 2.0)
  assert fast == CPU_OPTIONS and "~2 s of training expected" in why and "fast-compiling" in why
  assert chosen_compiler_options("cpu", None)[0] == CPU_OPTIONS
  slow, why = chosen_compiler_options("cpu", 60.0)
  assert slow == {} and "~60 s of training expected" in why and "XLA's defaults" in why
  assert chosen_compiler_options("gpu", 1.0) == ({}, "gpu: XLA's defaults")


def test_a_long_training_compiles_with_xla_defaults_and_says_why(monkeypatch):
  # A CPU some billion times slower: the regression's 18 configurations x 40
  # steps would train for hours, so their program gets XLA's defaults.
  monkeypatch.setattr(_devices, "CPU_TRAINING_FLOPS_PER_CORE_SECOND", 10.0)
  (program,) = sweep.run(REGRESSION, quiet=True, width=18).manifest["programs"]
  assert program["compiler_options"] == {}
  assert (
    "s of training expected, at least 10 s: XLA's defaults" in program["compiler_options_reason"]
  )


def test_the_engine_compiles_with_the_compiler_options_and_records_them(monkeypatch):
  from momentum_jax.runtime import compile_cache as _compile_cache

  result = sweep.run(REGRESSION, quiet=True, width=18)
  (program,) = result.manifest["programs"]
  assert program["compiler_options"] == CPU_OPTIONS
  assert "below 10 s: compilation dominates" in program["compiler_options_reason"]
  assert "unknown_options" not in program
  # The options reach XLA: one it does not know is refused there, then left
  # out (with a warning, and named in the program's record).
  monkeypatch.setattr(
    _execute,
    "chosen_compiler_options",
    lambda platform, seconds: ({"xla_no_such_option": 1, **CPU_OPTIONS}, ""),
  )
  monkeypatch.setattr(_compile_cache, "_warned", set())
  with pytest.warns(RuntimeWarning, match="does not know the compile option 'xla_no_such_option'"):
    again = sweep.run(REGRESSION, quiet=True, width=18)
  assert again.manifest["programs"][0]["unknown_options"] == ["xla_no_such_option"]
  np.testing.assert_array_equal(again.summary.final_loss, result.summary.final_loss)
