"""How many configurations a device trains at once: chosen, forced, measured, never visible."""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from jax.sharding import Mesh

from _sweep_configs import REGRESSION  # K = 18
import momentum_jax as mj
from momentum_jax import cli, problems, sweep
from momentum_jax.sweep import _engine
from momentum_jax.train import TrainConfig, build_train

DIGITS = {
    "problem": {"name": "digits_mlp", "hidden": [16]},
    "optimizer": {"name": "momentum", "ema": False, "learning_rate": [0.03, 0.3],
                  "beta": [0.0, 0.9]},
    "train": {"steps": 20, "batch_size": 32, "log_every": 10},
    "seeds": 1,
}  # K = 4


@pytest.mark.parametrize("config, full", [(REGRESSION, 18), (DIGITS, 4)],
                         ids=["regression", "digits"])
def test_results_do_not_depend_on_the_width(config, full):
  runs = {w: sweep.run(config, quiet=True, width=w) for w in (1, 2, full)}
  for w, result in runs.items():
    assert result.manifest["execution"]["width"] == {"momentum(ema=false)": w}
  for w in (2, full):
    pd.testing.assert_frame_equal(runs[1].summary, runs[w].summary, check_exact=False, rtol=1e-5)


def test_the_model_chooses_and_the_manifest_says_how():
  result = sweep.run(REGRESSION, quiet=True)
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
  training = build_train(problems.get_problem("linear_regression"),
                         functools.partial(mj.momentum, ema=False),
                         TrainConfig(steps=2, log_every=1))
  program = _engine._program(training, width, Mesh(np.array(jax.devices()), ("config",)))
  jaxpr = jax.make_jaxpr(program)({"learning_rate": jnp.zeros(12), "beta": jnp.zeros(12)},
                                  jnp.zeros(12, jnp.uint32))
  (shard,) = jaxpr.eqns
  (scan,) = [e for e in shard.params["jaxpr"].eqns if e.primitive.name == "scan"]
  assert scan.params["length"] == batches
  seeds = scan.params["jaxpr"].jaxpr.invars[-1]  # the scanned inputs come last
  assert seeds.aval.shape == batch_shape


def test_a_width_beyond_the_group_is_the_whole_group_and_the_chunk_grows_to_it():
  result = sweep.run(REGRESSION, quiet=True, width=1000, chunk_size=6)
  assert result.manifest["execution"]["width"] == {"momentum(ema=false)": 18}
  assert result.manifest["chunk_size"] == {"momentum(ema=false)": 18}
  assert "cut to the group's 18 configurations" in (
      result.manifest["execution"]["reason"]["momentum(ema=false)"])


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


@pytest.mark.parametrize("config", [dict(REGRESSION, seeds=1), DIGITS],
                         ids=["regression", "digits"])
def test_a_seed_shared_by_the_group_is_a_constant_and_changes_nothing(config):
  result = sweep.run(config, quiet=True)
  assert result.manifest["execution"]["shared_seed"] == {"momentum(ema=false)": 0}
  loaded = sweep.load_config(config)
  problem = problems.get_problem(loaded.problem, **loaded.problem_options)
  alone = jax.jit(build_train(problem, functools.partial(mj.momentum, ema=False), loaded.train))
  for row in result.summary.itertuples():
    hyperparameters = {"learning_rate": np.float32(row.learning_rate), "beta": np.float32(row.beta)}
    expected = alone(hyperparameters, jax.random.key(0)).metrics["train_loss"][-1]
    np.testing.assert_allclose(row.final_loss, expected, rtol=1e-5)


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
    "platform, configs, flops, cores, fit, width",
    [
        ("gpu", 64, 10**9, 1, None, 64),     # 1e11 / 1e9 = 100 needed: the whole group
        ("gpu", 1000, 10**10, 1, None, 10),  # a big model: 10 fill the accelerator
        ("tpu", 7, 10**3, 1, None, 7),
        ("gpu", 64, 10**3, 1, 16, 16),       # memory binds
        ("cpu", 64, 12_000, 1, None, 64),    # overhead-bound: the whole group
        ("cpu", 64, 12_000, 1, 20, 20),      # ... unless memory binds
        ("cpu", 64, 10**8, 1, None, 8),      # 5e8 / 1e8 = 5 configurations; 8 divides 64
        ("cpu", 64, 10**8, 2, None, 16),     # twice the cores, twice the work per batched step
        ("cpu", 61, 10**8, 1, None, 5),      # no divisor of 61 near 5: 5, and the group pads
        ("cpu", 64, 10**10, 4, None, 1),
        ("cpu", 64, 20_061_696, 2, None, 64),  # digits MLP 64-128-128-10, batch 128, 2 cores
        ("cpu", 64, 20_061_696, 1, None, 32),  # the same, pinned to one core
    ],
)
def test_model_width(platform, configs, flops, cores, fit, width):
  chosen, reason = _engine.model_width(platform, configs, flops, cores, fit)
  assert chosen == width
  assert reason


def test_flops_per_step_counts_the_dense_layers():
  config = sweep.load_config(DIGITS)
  problem = problems.get_problem("digits_mlp", hidden=[16])
  params = 64 * 16 + 16 + 16 * 10 + 10
  assert _engine.flops_per_step(problem, config.train) == 6 * params * 32
