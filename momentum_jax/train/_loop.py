"""A training: segments of steps scanned, and a whole training as one pure function."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from momentum_jax import optim
from momentum_jax.problems import Problem
from momentum_jax.train._batches import draw_batch, first_order, run_keys
from momentum_jax.train._config import TrainConfig, compiler_options
from momentum_jax.train._evaluate import evaluate, evaluation_params
from momentum_jax.train._state import (
  EvalParams,
  OptimizerFactory,
  Setup,
  TrainResult,
  TrainState,
  setup,
)
from momentum_jax.train._step import init_state, train_step


def train_segment(
  run: Setup,
  hyperparameters: Mapping[str, jax.Array],
  state: TrainState,
  data_key: jax.Array,
  first_step: jax.Array,
  num_logs: int,
  batches: tuple[jax.Array, jax.Array] | None = None,
  on_log: Callable[[jax.Array], None] | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
  """``num_logs × log_every`` steps from ``first_step``, and the metrics logged on the way.

  The metrics, one entry per log step:

  * ``train_loss``: the mean minibatch loss over the last ``log_every`` steps,
    at the parameters the gradients were taken at (for a schedule-free
    optimizer its iterate ``y``, not the evaluated average);
  * ``grad_norm``: the global gradient norm at the log step;
  * :func:`evaluate`'s validation metrics;
  * ``grad_norms`` (with ``config.grad_norms``): per-leaf gradient norms as a
    nested dict shaped like the params (``mj.named_norms`` flattens it to
    ``{"layers/0/kernel": …}``).

  ``batches``: a stream's ``(x, y)`` for these steps, stacked (leading axis
  ``num_logs × log_every``); ``None`` draws them from the on-device data.
  ``on_log``, when given, is called on the host (``jax.debug.callback``) after
  each log interval with the number of steps taken so far: a progress report
  that changes no value. Its argument does not vary with the configuration,
  so under ``jax.vmap`` it is called once per interval for the whole batch.
  """
  config = run.config
  tx = run.optimizer(hyperparameters)
  steps = first_step + jnp.arange(num_logs * config.log_every).reshape(num_logs, -1)

  def step(carry, inputs):
    state, order = carry
    index, *batch = inputs
    if batches is None:
      x, y, order = draw_batch(run, data_key, index, order)
    else:
      x, y = batch
    state, loss = train_step(run, tx, state, x, y, index)
    return (state, order), loss

  def interval(carry, inputs):
    carry, losses = jax.lax.scan(step, carry, inputs)
    state = carry[0]
    norms = optim.grad_norms(state.opt_state)
    metrics = {"train_loss": jnp.mean(losses), "grad_norm": norms.global_norm}
    if config.grad_norms:  # plain dicts: paths read layers/0/kernel (see mj.named_norms)
      metrics["grad_norms"] = nnx.to_pure_dict(norms.leaf_norms)
    metrics.update(evaluate(run, evaluation_params(run, state.opt_state, state.params), state.rest))
    if on_log is not None:
      jax.debug.callback(on_log, inputs[0][-1] + 1)
    return carry, metrics

  inputs = (steps,)
  if batches is not None:
    inputs += tuple(b.reshape(num_logs, config.log_every, *b.shape[1:]) for b in batches)
  (state, _), metrics = jax.lax.scan(
    interval, (state, first_order(run, data_key, first_step)), inputs
  )
  return state, metrics


def build_train(
  problem: Problem,
  make_optimizer: OptimizerFactory,
  config: TrainConfig,
  on_log: Callable[[jax.Array], None] | None = None,
  eval_params: EvalParams | None = None,
) -> Callable[[Mapping[str, jax.Array], jax.Array], TrainResult]:
  """Returns the pure function ``train(hyperparameters, key) -> TrainResult``: a whole run.

  ``train`` builds the model from the first half of ``key`` and draws the
  minibatches from the second (:func:`run_keys`), so one key fixes a run,
  then trains :func:`train_segment` over every step. ``make_optimizer`` is
  called as ``make_optimizer(**hyperparameters)`` inside the trace, e.g.
  ``mj.momentum`` with ``{"learning_rate": ..., "beta": ...}`` (bind
  non-numeric options with ``functools.partial``). The metrics are
  :func:`train_segment`'s, and the problem's metrics of the initial model
  as scalars named ``start_<name>``; the validation metrics are measured at
  :func:`evaluation_params` (``eval_params``: ``(opt_state, params) ->
  params``, for an optimizer that evaluates elsewhere than its iterate). A
  stream's batches cannot be drawn inside a pure function: train on one
  with the sweep engine.

  Raises:
    ValueError: if the batch size exceeds the training set, or the data is
      a stream.
  """
  run = setup(problem, make_optimizer, config, eval_params)
  if problem.is_stream:
    raise ValueError(
      f"{problem.name}: a Stream's batches come from the host; sweep it with "
      "momentum_jax.sweep.run (build_train draws batches on the device)"
    )

  def train(hyperparameters: Mapping[str, jax.Array], key: jax.Array) -> TrainResult:
    init_key, data_key = run_keys(key)
    state = init_state(run, hyperparameters, init_key)
    state, metrics = train_segment(
      run, hyperparameters, state, data_key, jnp.int32(0), config.num_logs, on_log=on_log
    )
    metrics.update({f"start_{name}": value for name, value in state.start.items()})
    return TrainResult(
      metrics=metrics, params=state.params, rest=state.rest, diverged_at_step=state.diverged_at
    )

  return train


def train(
  problem: Problem,
  make_optimizer: OptimizerFactory,
  hyperparameters: Mapping[str, Any],
  key: jax.Array,
  config: TrainConfig,
  eval_params: EvalParams | None = None,
) -> TrainResult:
  """Builds, jits and runs one training; see :func:`build_train`.

  Compiled with :func:`compiler_options`, as the sweep engine compiles.
  """
  run = jax.jit(
    build_train(problem, make_optimizer, config, eval_params=eval_params),
    compiler_options=compiler_options(jax.default_backend()),
  )
  return run({k: jnp.asarray(v, jnp.float32) for k, v in hyperparameters.items()}, key)
