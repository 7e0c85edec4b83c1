"""The engine trains in segments: the same results as the engine before segments, however cut."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pandas as pd
import pytest
from jax.sharding import Mesh

import _reference_engine
from _training_bounds import sum_bound
import momentum_jax as mj
from momentum_jax import sweep
from momentum_jax.sweep import _execute, _plan
from momentum_jax.train import compiler_options

# Heavy-ball momentum on the digits MLP, minibatches of 32 (several epochs'
# permutations), 6 configurations x 2 seeds; a BatchNorm variant too.
DIGITS = {
  "problem": {"name": "digits_mlp", "hidden": [16]},
  "optimizer": {
    "name": "momentum",
    "ema": False,
    "learning_rate": [0.01, 0.1, 0.3],
    "beta": [0.0, 0.9],
  },
  "train": {"steps": 120, "batch_size": 32, "log_every": 10},
  "seeds": 2,
}


def _reference(config: dict, width: int) -> tuple[dict, np.ndarray]:
  """The sweep's metrics and divergence as the engine before segments computed them."""
  loaded = sweep.load_config(config)
  problem = sweep.build_problem(loaded)
  (group,) = _plan.groups(loaded)
  train = _reference_engine.build_train(
    problem, functools.partial(mj.momentum, ema=False), loaded.train
  )
  program = _reference_engine.program(train, width, Mesh(np.array(jax.devices()), ("config",)))
  hyperparameters = {n: v.astype(np.float32) for n, v in group.values.items()}
  seeds = group.seeds.astype(np.uint32)
  # Compiled as the engine compiles (and as it compiled then): at XLA's
  # default level the BatchNorm statistics' reductions round otherwise.
  compiled = jax.jit(program).lower(hyperparameters, seeds).compile(compiler_options("cpu"))
  metrics, diverged = compiled(hyperparameters, seeds)
  return jax.tree.map(np.asarray, metrics), np.asarray(diverged)


@pytest.mark.parametrize("batch_norm", [False, True], ids=["mlp", "batch_norm"])
def test_the_segmented_engine_equals_the_engine_before_segments(batch_norm):
  config = {**DIGITS, "problem": {**DIGITS["problem"], "batch_norm": batch_norm}}
  result = sweep.run(config, quiet=True, width=4)
  metrics, diverged = _reference(config, width=4)
  curves = result.curves.sort_values(["config_id", "step"])
  logs = config["train"]["steps"] // config["train"]["log_every"]
  for name in ("train_loss", "grad_norm", "val_accuracy"):  # bit for bit
    np.testing.assert_array_equal(
      curves[name].to_numpy().reshape(-1, logs), metrics[name], err_msg=name
    )
  # The validation loss is now the loss's own batch mean over the split:
  # the same sum, reduced in another order (_training_bounds.sum_bound).
  error = np.abs(curves["val_loss"].to_numpy().reshape(-1, logs) - metrics["val_loss"])
  validation = sweep.build_problem(sweep.load_config(config)).data.num_val
  assert np.all(error <= sum_bound(metrics["val_loss"], validation))
  np.testing.assert_array_equal(result.summary.diverged_at_step.fillna(-1), diverged)


def test_results_do_not_depend_on_how_the_training_is_cut(monkeypatch):
  one_piece = sweep.run(DIGITS, quiet=True, width=4)
  assert one_piece.manifest["execution"]["logs_per_segment"] == 2  # 12 logs: 6 segments
  monkeypatch.setattr(_plan, "SEGMENTS_PER_CHUNK", 1)
  whole = sweep.run(DIGITS, quiet=True, width=4)
  assert whole.manifest["execution"]["logs_per_segment"] == 12
  monkeypatch.setattr(_plan, "SEGMENTS_PER_CHUNK", 12)
  finest = sweep.run(DIGITS, quiet=True, width=4)
  assert finest.manifest["execution"]["logs_per_segment"] == 1
  for other in (whole, finest):
    pd.testing.assert_frame_equal(one_piece.summary, other.summary, check_exact=True)
    pd.testing.assert_frame_equal(one_piece.curves, other.curves, check_exact=True)


def test_the_state_is_donated_to_each_segment():
  loaded = sweep.load_config(DIGITS)
  problem = sweep.build_problem(loaded)
  (group,) = _plan.groups(loaded)
  run = mj.train.setup(
    problem, _plan.make_optimizer_factory(group.spec, problem, loaded.train), loaded.train
  )
  mesh = Mesh(np.array(jax.devices()), ("config",))
  program = _execute.compile_program(run, group, 4, mesh, 12, _execute.Segments(2, loaded.train))
  carry = _execute.zeros(program.carry)
  inputs = _execute.chunk_inputs(group, np.arange(12), 12, mesh)
  after = program.compiled(carry, *inputs, program.replicated(np.int32(0)), ())
  jax.block_until_ready(after)
  assert all(leaf.is_deleted() for leaf in jax.tree.leaves(carry))  # donated: reused in place


@pytest.mark.parametrize("num_logs, expected", [(30, 3), (31, 1), (8, 1), (64, 8), (1, 1)])
def test_a_segment_is_a_divisor_of_the_logs(num_logs, expected):
  assert _plan.logs_per_segment(num_logs) == expected
  assert num_logs % expected == 0
