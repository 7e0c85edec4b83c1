"""optax's contract in a sweep: extra arguments and evaluation parameters, against hand loops.

Each sweep here is compared with the loop an optax user writes by hand for
one configuration (optax run live): the same initial parameters (the model
built from the run's key), the same batches (:func:`minibatch_indices`'s
documented order), the same steps, each step a jitted
``value_and_grad`` → ``tx.update(..., value=, grad=, value_fn=)`` →
``apply_updates``.
"""

from __future__ import annotations

import pathlib
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import _optax_optimizers
import _user_optimizers
from momentum_jax import problems, sweep
from momentum_jax.train import TrainConfig, build_train, minibatch_indices, run_keys

EPS32 = float(np.finfo(np.float32).eps)


def _hand_loop(problem, tx, seed, steps, batch_size=None, eval_params=None):
  """One configuration trained by hand: ``(train_losses, val_losses)``, one per step.

  ``train_losses[t]`` is step t's batch loss (before its update), ``val_losses[t]``
  the validation loss after it (empty without a validation split), at
  ``eval_params(state, params)`` when given. The model's other state
  (BatchNorm statistics) moves with each step's forward pass only.
  """
  init_key, data_key = run_keys(jax.random.key(seed))
  model = problem.make_model(nnx.Rngs(init_key))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  eval_graphdef = (
    nnx.graphdef(nnx.view(model, use_running_average=True))
    if any(isinstance(n, nnx.BatchNorm) for _, n in nnx.iter_graph(model))
    else graphdef
  )
  data = problem.data

  def loss(p, rest, x, y):
    model = nnx.merge(graphdef, p, rest, copy=True)
    value = problem.loss(model, x, y)
    return value, nnx.split(model, nnx.Param, ...)[2]

  state = tx.init(params)

  @jax.jit
  def step(params, rest, state, x, y):
    (value, new_rest), grad = jax.value_and_grad(loss, has_aux=True)(params, rest, x, y)
    updates, state = tx.update(
      grad, state, params, value=value, grad=grad, value_fn=lambda p: loss(p, rest, x, y)[0]
    )
    params = optax.apply_updates(params, updates)
    if data.x_val is None:
      return params, new_rest, state, value, jnp.zeros([])
    evaluated = params if eval_params is None else eval_params(state, params)
    val = problem.loss(
      nnx.merge(eval_graphdef, evaluated, new_rest, copy=True), data.x_val, data.y_val
    )
    return params, new_rest, state, value, val

  train_losses, val_losses = [], []
  for t in range(steps):
    if batch_size is None:
      x, y = data.x_train, data.y_train
    else:
      index = minibatch_indices(data_key, jnp.int32(t), data.num_train, batch_size)
      x, y = data.x_train[index], data.y_train[index]
    params, rest, state, value, val = step(params, rest, state, x, y)
    train_losses.append(float(value))
    val_losses.append(float(val))
  return np.array(train_losses), np.array(val_losses if data.x_val is not None else [])


def _compare(logged, train_losses, val_losses):
  """The largest relative error of the logged train and validation losses."""
  errors = [_max_relative_error(logged.train_loss.to_numpy(), train_losses)]
  if len(val_losses):
    errors.append(_max_relative_error(logged.val_loss.to_numpy(), val_losses))
  return max(errors)


def _sweep(problem, optimizer, steps, batch_size=None, seeds=1):
  config = {
    "problem": {"name": problem} if isinstance(problem, str) else problem,
    "optimizer": optimizer,
    "seeds": seeds,
    "train": {"steps": steps, "log_every": 1, "batch_size": batch_size},
  }
  return sweep.run(config, quiet=True, width=2)


def _per_config(result, hyperparameter=None):
  """``{(value, seed): curves sorted by step}`` of a sweep's result."""
  summary, curves = result.summary, result.curves
  out = {}
  for _, row in summary.iterrows():
    key = (None if hyperparameter is None else float(row[hyperparameter]), int(row.seed))
    out[key] = curves[curves.config_id == row.config_id].sort_values("step")
  return out


def _max_relative_error(ours, reference):
  return float(np.max(np.abs(ours - reference) / np.maximum(np.abs(reference), 1e-30)))


# Both programs compute each step's loss, gradient and update with the same
# float32 operations, fused differently by XLA (one vmapped, sharded program
# against one jitted step): each step's result may differ by a few ulps, and
# a stable descent carries the differences forward without amplifying them
# (the iteration is a contraction on these problems). Bound: 8 ulps of
# rounding per step (the regression's mean over its 1000 examples sums in
# another order: log2(1000) ≈ 10 additions deep, half of them rounding on
# average), accumulated over the steps.
def _bound(steps):
  return 8 * EPS32 * steps


DIGITS = {"name": "digits_mlp", "hidden": [16]}


@pytest.fixture(scope="module")
def regression():
  return problems.get_problem("linear_regression")


@pytest.fixture(scope="module")
def digits():
  return problems.get_problem("digits_mlp", hidden=(16,))


def test_reduce_on_plateau_by_import_path_equals_its_hand_loop(regression):
  steps, batch_size = 60, 50
  result = _sweep(
    "linear_regression",
    {"name": "_user_optimizers:sgd_reduced_on_plateau", "learning_rate": [0.1, 0.3]},
    steps,
    batch_size,
  )
  for (learning_rate, seed), logged in _per_config(result, "learning_rate").items():
    tx = optax.chain(
      optax.sgd(learning_rate),
      optax.contrib.reduce_on_plateau(factor=0.5, patience=2, accumulation_size=5),
    )
    train_losses, val_losses = _hand_loop(regression, tx, seed, steps, batch_size)
    error = _compare(logged, train_losses, val_losses)
    assert error <= _bound(steps), (learning_rate, error)
    # The plateau must be reached for the test to say anything: plain sgd moves on.
    plain, _ = _hand_loop(regression, optax.sgd(learning_rate), seed, steps, batch_size)
    assert _max_relative_error(plain, train_losses) > 100 * _bound(steps)


def test_polyak_sgd_equals_its_hand_loop(regression):
  steps, batch_size = 30, 100
  result = _sweep(
    "linear_regression",
    {"name": "optax.polyak_sgd", "max_learning_rate": [0.1, 1.0]},
    steps,
    batch_size,
  )
  for (rate, seed), logged in _per_config(result, "max_learning_rate").items():
    train_losses, val_losses = _hand_loop(
      regression, optax.polyak_sgd(max_learning_rate=rate), seed, steps, batch_size
    )
    error = _compare(logged, train_losses, val_losses)
    assert error <= _bound(steps), (rate, error)
    assert train_losses[-1] < 0.5 * train_losses[0]  # it trained


@pytest.mark.parametrize(
  "problem, options, steps",
  [
    ("linear_regression", {}, 10),
    ("rosenbrock", {"start": [-1.2, 1.0], "start_spread": 0.3}, 25),
    # BatchNorm: the line search's evaluations must not move its statistics.
    ("digits_mlp", {"hidden": [16], "batch_norm": True}, 10),
  ],
)
def test_lbfgs_full_batch_equals_its_hand_loop(problem, options, steps):
  built = problems.get_problem(problem, **options)
  result = _sweep(
    {"name": problem, **options}, {"name": "optax.lbfgs", "memory_size": 5}, steps, seeds=2
  )
  for (_, seed), logged in _per_config(result).items():
    train_losses, val_losses = _hand_loop(built, optax.lbfgs(memory_size=5), seed, steps)
    error = _compare(logged, train_losses, val_losses)
    assert error <= _bound(steps), (seed, error)
    assert train_losses[-1] < 0.1 * train_losses[0]  # L-BFGS trains on each


def test_schedule_free_adamw_is_evaluated_at_its_eval_params(digits):
  steps, batch_size = 30, 64
  result = _sweep(
    DIGITS,
    {"name": "optax.contrib.schedule_free_adamw", "learning_rate": [0.01, 0.03], "warmup_steps": 5},
    steps,
    batch_size,
  )
  for (learning_rate, seed), logged in _per_config(result, "learning_rate").items():
    tx = optax.contrib.schedule_free_adamw(learning_rate, warmup_steps=5)
    train_losses, evaluated = _hand_loop(
      digits, tx, seed, steps, batch_size, optax.contrib.schedule_free_eval_params
    )
    _, raw = _hand_loop(digits, tx, seed, steps, batch_size)
    assert _compare(logged, train_losses, evaluated) <= _bound(steps)  # train loss: y's
    assert _max_relative_error(logged.val_loss.to_numpy(), raw) > 100 * _bound(steps)


def test_an_optimizer_names_its_eval_params_by_import_path(digits):
  steps = 10
  result = _sweep(
    DIGITS,
    {"name": "optax.sgd", "learning_rate": 0.1, "eval_params": "_user_optimizers:half_params"},
    steps,
    64,
  )
  logged = _per_config(result)[(None, 0)]
  train_losses, halved = _hand_loop(
    digits, optax.sgd(0.1), 0, steps, 64, _user_optimizers.half_params
  )
  assert _compare(logged, train_losses, halved) <= _bound(steps)
  assert result.manifest["config"]["optimizer"]["eval_params"] == "_user_optimizers:half_params"


def test_eval_params_in_a_dict_config_and_build_train(digits):
  half = _user_optimizers.half_params
  config = sweep.load_config(
    {
      "problem": DIGITS,
      "train": {"steps": 10},
      "optimizer": {"name": "sgd", "learning_rate": 0.1, "eval_params": half},
    }
  )
  assert config.optimizers[0].eval_params is half
  assert config.raw["optimizer"]["eval_params"] == "_user_optimizers:half_params"
  settings = TrainConfig(steps=5, log_every=5, batch_size=64)
  key, rate = jax.random.key(0), {"learning_rate": jnp.float32(0.1)}
  halved = build_train(digits, optax.sgd, settings, eval_params=half)(rate, key)
  plain = build_train(digits, optax.sgd, settings)(rate, key)
  np.testing.assert_array_equal(halved.metrics["train_loss"], plain.metrics["train_loss"])
  assert not np.allclose(halved.metrics["val_loss"], plain.metrics["val_loss"])


@pytest.mark.parametrize(
  "value, fragment",
  [
    ("_user_optimizers.half_params", "expected 'package.module:function'"),
    ("_user_optimizers:half_param", "did you mean"),
    ("_user_optimizers:NOT_CALLABLE", "expected 'package.module:function'"),
    (3, "expected 'package.module:function'"),
  ],
)
def test_a_bad_eval_params_is_a_config_error_naming_it(value, fragment):
  with pytest.raises(sweep.ConfigError) as error:
    sweep.load_config(
      {
        "problem": {"name": "linear_regression"},
        "optimizer": {"name": "sgd", "learning_rate": 0.1, "eval_params": value},
        "train": {"steps": 5},
      }
    )
  assert error.value.path == "optimizer.eval_params"
  assert fragment in str(error.value)


# Where optax's test arguments (for its parabola) do not descend the regression:
# LARS's trust ratio is 1 on the zero-initialized bias, where a learning rate of
# 1 with momentum 0.9 oscillates and grows.
_ON_THE_REGRESSION = {"optax.lars": {"learning_rate": 0.03}}


def _trained_together(names, problem):
  """Each optimizer ``names`` names trained a few steps, two configurations each, in ONE program.

  Each starts from the arguments optax's own tests give it (a learning rate
  of 0.1 where they give none), every other positive float argument at its
  default; every float is swept (the value, then half of it), full batch,
  traced as the engine traces it: the group's factory of
  ``sweep.load_config``, vmapped over the two configurations by
  :func:`build_train`, the engine's step, segment and evaluation. One
  program for them all: XLA compiles 40 small trainings together in a
  quarter of the time it takes one by one.

  Returns:
    ``{name: train losses}``, each ``(configuration, log)``.
  """
  settings = TrainConfig(steps=40, log_every=20)
  trains, values = {}, {}
  for name in names:
    factory, _ = sweep._optimizers.resolve_optimizer("name", name)
    parameters, _ = sweep._optimizers.keyword_parameters(factory)
    given = {
      k: p.default for k, p in parameters.items() if isinstance(p.default, float) and p.default > 0
    }
    if "learning_rate" in parameters:
      given["learning_rate"] = 0.1
    given.update(_optax_optimizers.tested_arguments(name))
    given.update(_ON_THE_REGRESSION.get(name, {}))
    config = sweep.load_config(
      {
        "problem": {"name": "linear_regression"},
        "optimizer": {"name": name, **given},
        "train": {"steps": 40, "log_every": 20},
      }
    )
    spec = config.optimizers[0]
    floats = {k for k, v in given.items() if isinstance(v, float)}
    assert floats <= set(spec.grid), name  # every float traced
    trains[name] = jax.vmap(
      build_train(problem, sweep.make_optimizer_factory(spec, problem, settings), settings)
    )
    values[name] = {
      k: np.array([given[k], given[k] / 2 if k in floats else given[k]], np.float32)
      for k in spec.grid
    }
  keys = jax.random.split(jax.random.key(0), 2)
  losses = jax.jit(
    lambda values: {
      name: train(values[name], keys).metrics["train_loss"] for name, train in trains.items()
    }
  )(values)
  return {name: np.asarray(loss) for name, loss in losses.items()}


@pytest.mark.filterwarnings("ignore:Specifying a key")  # optax.noisy_sgd
@pytest.mark.filterwarnings("ignore:.*optimistic_adam_v2")  # optax.optimistic_adam, deprecated
@pytest.mark.parametrize("family", ["aliases", "contrib"])
def test_every_optax_optimizer_trains_by_name_with_traced_hyperparameters(family, regression):
  names = [
    n for n in getattr(_optax_optimizers, family)() if n not in _optax_optimizers.NOT_BY_NAME
  ]
  if family == "contrib":  # sophia, given its obj_fn by a user's function
    names.append("_user_optimizers:sophia")
  assert len(names) > 15  # optax's tests were read
  losses = _trained_together(names, regression)
  assert all(np.all(np.isfinite(loss)) for loss in losses.values())
  untrained = {
    name: loss.tolist() for name, loss in losses.items() if not np.all(loss[:, -1] < loss[:, 0])
  }
  assert not untrained  # each configuration of each optimizer trained


def test_the_docs_list_every_optimizer_a_config_cannot_name_alone():
  page = (pathlib.Path(__file__).parents[1] / "docs" / "sweeps.md").read_text(encoding="utf-8")
  section = page[page.index("## Any optax optimizer") :]
  section = section[: section.index("\n## ")]
  for name in _optax_optimizers.NOT_BY_NAME:
    assert f"`{name}`" in section, name


def test_schedule_free_is_found_inside_a_chain_and_two_are_refused():
  from momentum_jax.train import evaluation_params

  run = types.SimpleNamespace(eval_params=None)
  params = {"w": jnp.array([1.0, -2.0])}
  inner = optax.chain(optax.clip(1.0), optax.contrib.schedule_free_adamw(0.1, b1=0.5))
  state = inner.init(params)
  _, state = inner.update({"w": jnp.array([0.3, 0.4])}, state, params)
  moved = {"w": params["w"] + 1.0}
  expected = optax.contrib.schedule_free_eval_params(state[1], moved)
  # The engine's state: (record_grad_norms's, the optimizer's).
  got = evaluation_params(run, (None, state), moved)
  np.testing.assert_array_equal(got["w"], expected["w"])
  assert not np.allclose(got["w"], moved["w"])
  with pytest.raises(ValueError, match="2 schedule-free states in one optimizer"):
    evaluation_params(run, (None, (state, state)), moved)
  assert evaluation_params(run, (None, optax.sgd(0.1).init(params)), moved) is moved
