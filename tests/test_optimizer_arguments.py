"""The arguments users bring from torch and optax, where the registry's tests do not reach.

Swept through the engine, state dtypes, the parameters that weight decay
needs, and gradient norms of complex parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_jax as mj
from _optimizers import OPTIMIZERS
from _problems import least_squares
from _training_bounds import summary_bound
from momentum_jax import problems, sweep
from momentum_jax.train import TrainConfig, build_train

SWEPT = {
  "problem": {"name": "linear_regression"},
  "optimizer": {
    "name": "adagrad",
    "learning_rate": 0.5,
    "weight_decay": [0.0, 0.5],
    "lr_decay": {"linspace": [0.0, 0.5, 2]},
    "maximize": False,
  },
  "train": {"steps": 20, "log_every": 10},
  "seeds": 1,
}


def test_weight_decay_and_lr_decay_are_swept_by_the_engine():
  result = sweep.run(SWEPT, quiet=True)
  summary = result.summary
  assert len(summary) == 4
  # Each configuration alone: one program, the hyperparameters its arguments.
  problem, config = problems.get_problem("linear_regression"), TrainConfig(steps=20, log_every=10)
  alone = jax.jit(build_train(problem, mj.adagrad, config))
  # The engine's program and this one round otherwise: within the rounding's
  # measured reach (_training_bounds.summary_bound).
  names = ("learning_rate", "weight_decay", "lr_decay")
  bound = summary_bound(problem, mj.adagrad, config, summary, names)["final_loss"]
  for row, limit in zip(summary.itertuples(), bound):
    hyperparameters = {k: jnp.float32(getattr(row, k)) for k in names}
    result = alone(hyperparameters, jax.random.key(row.seed))
    assert abs(row.final_loss - float(result.metrics["train_loss"][-1])) <= limit, (row, limit)
  # Each swept value changes the run.
  assert summary.final_loss.nunique() == 4


@pytest.mark.parametrize("argument", ["weight_decay", "lr_decay"])
def test_negative_values_are_refused_by_the_sweep_config_by_name(argument):
  config = {**SWEPT, "optimizer": {**SWEPT["optimizer"], argument: [0.1, -0.1]}}
  with pytest.raises(sweep.ConfigError, match=rf"optimizer\.{argument}: {argument} must be >= 0"):
    sweep.load_config(config)


# name -> (factory, the argument naming the state's dtype, the state's field it sets)
STATE_DTYPES = {
  "momentum": (OPTIMIZERS["momentum_heavy_ball"].factory, "accumulator_dtype", "velocity"),
  "nesterov": (mj.nesterov, "accumulator_dtype", "velocity"),
  "adam": (mj.adam, "mu_dtype", "mu"),
  "adamw": (mj.adamw, "mu_dtype", "mu"),
}


@pytest.mark.parametrize(
  "name, params_dtype, state_dtype",
  [
    *((name, jnp.bfloat16, jnp.float32) for name in sorted(STATE_DTYPES)),
    ("momentum", jnp.float32, jnp.bfloat16),
    ("adam", jnp.float32, jnp.bfloat16),
    ("nesterov", jnp.bfloat16, None),
    ("adamw", jnp.bfloat16, None),
  ],
)
def test_state_dtype(name, params_dtype, state_dtype):
  factory, argument, field = STATE_DTYPES[name]
  loss_fn, params = least_squares(0, params_dtype)
  tx = factory(0.01, **{argument: state_dtype})
  state = tx.init(params)
  step = jax.jit(lambda p, s: tx.update(jax.grad(loss_fn)(p), s, p))
  for _ in range(3):
    updates, state = step(params, state)
    params = optax.apply_updates(params, updates)
  expected = jnp.dtype(params_dtype if state_dtype is None else state_dtype)
  assert {x.dtype for x in jax.tree.leaves(optax.tree.get(state, field))} == {expected}
  assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype(params_dtype)}
  assert {x.dtype for x in jax.tree.leaves(updates)} == {jnp.dtype(params_dtype)}
  if name.startswith("adam"):  # The second moment keeps the parameters' dtype, as optax's.
    assert {x.dtype for x in jax.tree.leaves(optax.tree.get(state, "nu"))} == {
      jnp.dtype(params_dtype)
    }


def test_float32_state_carries_bfloat16_parameters_closer_to_float32():
  # What the state dtype is for: a float32 velocity keeps the small gradients
  # that a bfloat16 one rounds away.
  finals = {}
  for params_dtype, accumulator in [
    (jnp.float32, None),
    (jnp.bfloat16, None),
    (jnp.bfloat16, jnp.float32),
  ]:
    loss_fn, params = least_squares(0, params_dtype)
    tx = mj.momentum(0.05, 0.95, ema=False, accumulator_dtype=accumulator)
    state = tx.init(params)
    step = jax.jit(lambda p, s, tx=tx, loss_fn=loss_fn: tx.update(jax.grad(loss_fn)(p), s, p))
    for _ in range(100):
      updates, state = step(params, state)
      params = optax.apply_updates(params, updates)
    finals[(params_dtype, accumulator)] = np.asarray(params["w"], np.float32)
  reference = finals[(jnp.float32, None)]
  error_bf16 = np.abs(finals[(jnp.bfloat16, None)] - reference).max()
  error_mixed = np.abs(finals[(jnp.bfloat16, jnp.float32)] - reference).max()
  assert error_mixed < error_bf16


def test_weight_decay_needs_the_parameters():
  tx = mj.adam(0.1, weight_decay=0.1)
  g = jnp.ones(2)
  with pytest.raises(
    ValueError,
    match=r"weight_decay needs the parameters: call "
    r"tx.update\(grads, state, params\)",
  ):
    tx.update(g, tx.init(g))
  # A concrete 0 adds nothing and needs none.
  plain = mj.adam(0.1, weight_decay=0.0)
  np.testing.assert_array_equal(
    plain.update(g, plain.init(g))[0], mj.adam(0.1).update(g, mj.adam(0.1).init(g))[0]
  )


def test_adamw_decays_even_when_maximizing():
  # torch: the decoupled decay shrinks w whichever way the step goes.
  w, g = jnp.array([2.0]), jnp.array([0.0])
  tx = mj.adamw(0.1, weight_decay=0.5, maximize=True)
  updates, _ = tx.update(g, tx.init(w), w)
  # g = 0: Adam's term is 0/(0 + eps) = 0, and lr·weight_decay·w multiplies
  # 0.1 (rounded to float32 once) by powers of two: exact in any order.
  np.testing.assert_array_equal(updates, np.float32([-0.1 * 0.5 * 2.0]))


def test_grad_norms_of_complex_parameters():
  tx = mj.record_grad_norms()
  g = {"z": jnp.array([3.0 + 4.0j, 0.0]), "x": jnp.array([12.0], jnp.bfloat16)}
  _, state = tx.update(g, tx.init(g))
  # Small integers: |3 + 4j|² = 25, √25 = 5, 5² + 12² = 169 and √169 = 13 are
  # exact in float32 (and bfloat16's 12); a square root is correctly rounded.
  np.testing.assert_array_equal(state.leaf_norms["z"], 5.0)
  np.testing.assert_array_equal(state.global_norm, 13.0)
