"""The jitted training run: correctness, determinism, vmap, batches, BatchNorm."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from _tolerances import U32, assert_within
from _training_bounds import sum_bound, training_bound
import momentum_jax as mj
from momentum_jax import problems
from momentum_jax.train import TrainConfig, build_train, minibatch_indices, train

HEAVY_BALL = functools.partial(mj.momentum, ema=False)


@pytest.fixture(scope="module")
def regression():
  return problems.get_problem("linear_regression")


@pytest.fixture(scope="module")
def digits():
  return problems.get_problem("digits_mlp", hidden=(64,))


# Every optimizer at a sensible setting for the 1000-sample regression.
REGRESSION_SETTINGS = {
  "sgd": (mj.sgd, {"learning_rate": 0.1}),
  "momentum_ema": (mj.momentum, {"learning_rate": 0.1, "beta": 0.9}),
  "momentum_heavy_ball": (HEAVY_BALL, {"learning_rate": 0.01, "beta": 0.9}),
  "nesterov": (mj.nesterov, {"learning_rate": 0.01, "beta": 0.9}),
  "rmsprop": (mj.rmsprop, {"learning_rate": 0.01}),
  "adagrad": (mj.adagrad, {"learning_rate": 0.5}),
  "adam": (mj.adam, {"learning_rate": 0.05}),
}


@pytest.mark.parametrize("name", sorted(REGRESSION_SETTINGS))
def test_linear_regression_recovers_slope_and_intercept(regression, name):
  factory, hyperparameters = REGRESSION_SETTINGS[name]
  result = train(
    regression, factory, hyperparameters, jax.random.key(0), TrainConfig(steps=600, log_every=100)
  )
  layer = result.params["layers"][0]
  data = regression.data
  x, y = (np.asarray(a, np.float64).ravel() for a in (data.x_train, data.y_train))
  fit, (n, mean_x) = np.polyfit(x, y, 1), (len(x), x.mean())
  # y = 3x + 2 + 0.5·noise: its least-squares line (float64) within 6 standard
  # errors, 0.5/√Sxx and 0.5·√(1/n + x̄²/Sxx): wrong for fewer than 2e-9 of seeds.
  sxx = np.sum((x - mean_x) ** 2)
  errors = 0.5 * np.array([1 / np.sqrt(sxx), np.sqrt(1 / n + mean_x**2 / sxx)])
  assert np.all(np.abs(fit - [3.0, 2.0]) <= 6 * errors), fit
  # Each optimizer ends on that line, but for RMSProp's 2-cycle at its constant
  # rate η = 0.01 (each coordinate ±η/2 about it, test_demo.py), the furthest of
  # these settings; and float32's gradient, whose n-term sums round by (n + 3)·U32
  # of Σ|2·r_i·(x_i, 1)|/n (|r_i| ≤ |w·x_i| + |b| + |y_i|), vanishes off the line
  # by that over the mse's least curvature 2·λ_min(A), A = [[E x², x̄], [x̄, 1]].
  a = np.array([[np.mean(x**2), mean_x], [mean_x, 1.0]])
  terms = np.abs(fit[0] * x) + abs(fit[1]) + np.abs(y)
  gradient = (n + 3) * U32 * 2 * np.hypot(np.mean(terms * np.abs(x)), np.mean(terms))
  half_cycle = REGRESSION_SETTINGS["rmsprop"][1]["learning_rate"] / 2
  reach = half_cycle + gradient / (2 * np.linalg.eigvalsh(a).min())
  trained = np.array([layer["kernel"][...][0, 0], layer["bias"][...][0]], np.float64)
  assert np.all(np.abs(trained - fit) <= reach), (trained - fit, reach)
  # Its loss: the least squares' mse, plus the cycle's excess (at most
  # (η/2)²·(E x² + 2|x̄| + 1)); logged as a float32 mean of n squares, then of
  # the log interval's 100 such (sum_bound).
  optimum = np.mean((fit[0] * x + fit[1] - y) ** 2)
  excess = half_cycle**2 * (np.mean(x**2) + 2 * abs(mean_x) + 1) + sum_bound(optimum, n + 100)
  assert float(result.metrics["train_loss"][-1]) - optimum <= excess


def test_digits_mlp_reaches_95_percent_with_adam():
  problem = problems.get_problem("digits_mlp")
  result = train(
    problem,
    mj.adam,
    {"learning_rate": 1e-3},
    jax.random.key(0),
    TrainConfig(steps=300, batch_size=128, log_every=100),
  )
  assert float(result.metrics["val_accuracy"][-1]) >= 0.95


def test_cnn_learns_digits():
  problem = problems.get_problem("digits_cnn")
  result = train(
    problem,
    mj.adam,
    {"learning_rate": 3e-3},
    jax.random.key(1),
    TrainConfig(steps=200, batch_size=64, log_every=100),
  )
  accuracy = np.asarray(result.metrics["val_accuracy"])
  assert accuracy[-1] >= 0.9, accuracy


def test_same_key_and_config_give_bit_identical_results(digits):
  config = TrainConfig(steps=40, batch_size=32, log_every=20)
  run = jax.jit(build_train(digits, HEAVY_BALL, config))
  hyperparameters = {"learning_rate": jnp.float32(0.05), "beta": jnp.float32(0.9)}
  first = run(hyperparameters, jax.random.key(7))
  second = run(hyperparameters, jax.random.key(7))
  other = run(hyperparameters, jax.random.key(8))
  chex.assert_trees_all_equal(first, second)
  assert not np.array_equal(first.metrics["train_loss"], other.metrics["train_loss"])


def test_vmap_over_hyperparameters_and_seeds_equals_single_runs(digits):
  config = TrainConfig(steps=30, batch_size=32, log_every=10)
  run = build_train(digits, HEAVY_BALL, config)
  batch = {"learning_rate": jnp.array([0.01, 0.05, 0.1]), "beta": jnp.array([0.0, 0.5, 0.9])}
  keys = jax.random.split(jax.random.key(3), 3)
  batched = jax.jit(jax.vmap(run))(batch, keys)
  single = jax.jit(run)
  # Vmapped and alone are two programs: the losses and norms within the
  # rounding's measured reach (_training_bounds.training_bound), the accuracy equal.
  _, bound = training_bound(digits, HEAVY_BALL, config, batch, keys)
  for k in range(3):
    alone = single(jax.tree.map(lambda v: v[k], batch), keys[k])
    vmapped = jax.tree.map(lambda v: v[k], batched.metrics)
    assert_within(vmapped, alone.metrics, {name: b[k] for name, b in bound.items()})
    np.testing.assert_array_equal(vmapped["val_accuracy"], alone.metrics["val_accuracy"])


def test_minibatches_cover_each_epoch_without_repeats():
  key = jax.random.key(0)
  indices = jax.vmap(lambda s: minibatch_indices(key, s, 10, 3))(jnp.arange(6))
  first, second = np.asarray(indices[:3]).ravel(), np.asarray(indices[3:]).ravel()
  assert len(set(first)) == 9 and len(set(second)) == 9
  assert not np.array_equal(first, second)
  assert np.all((first >= 0) & (first < 10))


def test_training_steps_on_the_minibatches_minibatch_indices_draws():
  # The run carries each epoch's permutation from its first step; a plain
  # loop drawing every step's batch afresh must see the same batches, over
  # several epochs (breast cancer: 455 examples, 7 steps of 64 an epoch).
  problem = problems.get_problem("breast_cancer", hidden=(8,))
  config = TrainConfig(steps=21, batch_size=64, log_every=1)
  key = jax.random.key(5)
  run = train(problem, mj.sgd, {"learning_rate": 0.1}, key, config)

  init_key, data_key = jax.random.split(key)
  graphdef, params, rest = nnx.split(problem.make_model(nnx.Rngs(init_key)), nnx.Param, ...)
  data = problem.data

  @jax.jit
  def step(params, index):
    x, y = data.x_train[index], data.y_train[index]
    loss, grads = jax.value_and_grad(
      lambda p: problem.loss(nnx.merge(graphdef, p, rest, copy=True), x, y)
    )(params)
    return jax.tree.map(lambda w, g: w - 0.1 * g, params, grads), loss

  losses = []
  for i in range(config.steps):
    params, loss = step(params, minibatch_indices(data_key, i, data.num_train, 64))
    losses.append(float(loss))
  assert data.num_train // 64 == 7
  # train's program and this loop's round otherwise: within the rounding's
  # measured reach (_training_bounds.training_bound).
  _, bound = training_bound(problem, mj.sgd, config, {"learning_rate": [0.1]}, key[None])
  assert_within(
    {"train_loss": run.metrics["train_loss"]},
    {"train_loss": losses},
    {"train_loss": bound["train_loss"][0]},
  )


@pytest.mark.parametrize("batch_size", [1, 16, None])
def test_sgd_minibatch_and_full_batch_all_learn(batch_size):
  problem = problems.get_problem("breast_cancer")
  steps = 200
  result = train(
    problem,
    mj.sgd,
    {"learning_rate": 0.05 if batch_size else 0.5},
    jax.random.key(0),
    TrainConfig(steps=steps, batch_size=batch_size, log_every=50),
  )
  losses = np.asarray(result.metrics["train_loss"])
  assert losses[-1] < 0.5 * losses[0]
  assert float(result.metrics["val_accuracy"][-1]) > 0.9


def test_batch_norm_statistics_are_trained_and_used_in_eval_mode():
  problem = problems.get_problem("digits_mlp", hidden=(32, 32), batch_norm=True)
  config = TrainConfig(steps=20, batch_size=64, log_every=20)
  result = train(problem, mj.adam, {"learning_rate": 1e-3}, jax.random.key(0), config)
  mean = np.asarray(result.rest["norms"][0]["mean"][...])
  assert np.abs(mean).max() > 1e-3  # the running statistics moved from their init of 0
  # The logged validation loss is the evaluation-mode loss (running statistics).
  template = problem.make_model(nnx.Rngs(0))
  model = nnx.merge(nnx.graphdef(template), result.params, result.rest)
  model.eval()
  val_loss = problem.loss(model, problem.data.x_val, problem.data.y_val)
  # The same weights, evaluated by another program: the mean of the
  # validation split's losses summed otherwise (_training_bounds.sum_bound).
  error = abs(float(result.metrics["val_loss"][-1]) - float(val_loss))
  assert error <= sum_bound(val_loss, problem.data.num_val)
  model.train()
  train_mode_loss = problem.loss(model, problem.data.x_val, problem.data.y_val)
  assert abs(float(train_mode_loss) - float(val_loss)) > 1e-6


def test_per_layer_gradient_norms_are_logged(digits):
  config = TrainConfig(steps=20, batch_size=32, log_every=10, grad_norms=True)
  result = train(digits, mj.sgd, {"learning_rate": 0.1}, jax.random.key(0), config)
  norms = result.metrics["grad_norms"]
  assert norms["layers"][0]["kernel"].shape == (2,)
  leaves = jnp.stack([n for n in jax.tree.leaves(norms)])
  # The squares of every parameter's gradient summed in another order (the
  # root halves their error): _training_bounds.sum_bound.
  parameters = sum(p.size for p in jax.tree.leaves(result.params))
  assert np.all(
    np.abs(jnp.sqrt(jnp.sum(leaves**2, axis=0)) - result.metrics["grad_norm"])
    <= sum_bound(result.metrics["grad_norm"], parameters // 2)
  )
  assert sorted(mj.named_norms(norms)) == [
    "layers/0/bias",
    "layers/0/kernel",
    "layers/1/bias",
    "layers/1/kernel",
  ]


def test_bad_configuration_is_refused(digits):
  with pytest.raises(ValueError, match="batch_size must be at most the 1437"):
    build_train(digits, mj.sgd, TrainConfig(steps=10, batch_size=5000, log_every=10))
  with pytest.raises(ValueError, match="steps must be a multiple of log_every"):
    TrainConfig(steps=15, log_every=10)
  with pytest.raises(ValueError, match="steps must be a positive integer"):
    TrainConfig(steps=0)
  with pytest.raises(ValueError, match="did you mean 'digits_mlp'"):
    problems.get_problem("digit_mlp")


def test_a_diverging_configuration_is_flagged_frozen_and_isolated(regression):
  config = TrainConfig(steps=60, log_every=20)
  run = build_train(regression, HEAVY_BALL, config)
  batch = {"learning_rate": jnp.array([0.01, 5.0, 0.01]), "beta": jnp.array([0.9, 0.9, 0.5])}
  keys = jax.random.split(jax.random.key(0), 3)
  batched = jax.jit(jax.vmap(run))(batch, keys)
  diverged = np.asarray(batched.diverged_at_step)
  assert diverged[0] == -1 and diverged[2] == -1
  assert 0 < diverged[1] < 20
  # The others are untouched: finite, and bit-identical to a batch without it.
  assert np.isfinite(np.asarray(batched.metrics["train_loss"][0])).all()
  without = jax.jit(jax.vmap(run))(jax.tree.map(lambda v: v[::2], batch), keys[::2])
  jax.tree.map(
    lambda a, b: np.testing.assert_array_equal(a[::2], b), batched.metrics, without.metrics
  )


def test_a_diverged_run_keeps_its_parameters_and_model_state(regression):
  # Its update is masked from the step it diverges at: 40 steps or 60, the same
  # parameters (bit for bit), though its optimizer state goes on.
  batch = {"learning_rate": jnp.array([5.0]), "beta": jnp.array([0.9])}
  keys = jax.random.split(jax.random.key(0), 1)
  short, long = (
    jax.jit(jax.vmap(build_train(regression, HEAVY_BALL, TrainConfig(steps=steps, log_every=20))))(
      batch, keys
    )
    for steps in (40, 60)
  )
  assert 0 < int(short.diverged_at_step[0]) < 20
  jax.tree.map(np.testing.assert_array_equal, short.params, long.params)
  jax.tree.map(np.testing.assert_array_equal, short.rest, long.rest)
  assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(long.params))
