"""The training run, as small pure functions that ``jax.vmap`` batches.

The story, top to bottom: a :class:`TrainState` (parameters, model state,
optimizer state, divergence flags) is made by :func:`init_state`; each
:func:`train_step` draws a minibatch (:func:`draw_batch`, on the device, or
takes one streamed from the host), applies one optimizer update and freezes
a run that :func:`diverged`; every ``log_every`` steps :func:`evaluate`
measures it. :func:`train_segment` scans a few log intervals of steps: the
sweep engine compiles it once and calls it again and again on the same
(donated) state, and :func:`build_train` composes a whole training as one
segment, a pure function ``train(hyperparameters, key) -> TrainResult``::

  train = build_train(problem, mj.momentum, TrainConfig(steps=500, batch_size=64))
  result = jax.jit(jax.vmap(train))(
      {"learning_rate": lrs, "beta": betas}, jax.random.split(key, len(lrs)))

Everything that varies (hyperparameters, keys, the first step) is an array,
and the model is handled as its split Flax state (``graphdef, params,
rest``), so ``jax.vmap`` over configurations is plain ``jax.vmap``. Nothing
here depends on the device: the same code runs on CPU, GPU and TPU.

The modules, bottom to top: ``_config`` (:class:`TrainConfig`), ``_state``
(the state, the result, the :class:`Setup`), ``_batches``, ``_evaluate``,
``_step``, ``_loop`` (:func:`train_segment`, :func:`build_train`), and
``_trainable`` (:class:`TrainableRun`: a :class:`~momentum_jax.problems.Trainable`
run by the same engine, through the same protocol as :class:`Setup`).
"""

from momentum_jax.train._batches import (
  draw_batch,
  epoch_order,
  first_order,
  minibatch_indices,
  run_keys,
)
from momentum_jax.train._config import (
  CPU_COMPILER_OPTIONS,
  TrainConfig,
  batch_size_error,
  chosen_compiler_options,
  compiler_options,
  steps_per_epoch,
)
from momentum_jax.train._evaluate import evaluate, evaluation_params, kept_state
from momentum_jax.train._loop import build_train, train, train_segment
from momentum_jax.train._state import (
  EvalParams,
  OptimizerFactory,
  Setup,
  TrainResult,
  TrainState,
  setup,
)
from momentum_jax.train._step import diverged, init_state, train_step
from momentum_jax.train._trainable import TrainableRun, TrainableState

__all__ = [
  "CPU_COMPILER_OPTIONS",
  "EvalParams",
  "OptimizerFactory",
  "Setup",
  "TrainConfig",
  "TrainResult",
  "TrainState",
  "TrainableRun",
  "TrainableState",
  "batch_size_error",
  "build_train",
  "chosen_compiler_options",
  "compiler_options",
  "diverged",
  "draw_batch",
  "epoch_order",
  "evaluate",
  "evaluation_params",
  "first_order",
  "init_state",
  "kept_state",
  "minibatch_indices",
  "run_keys",
  "setup",
  "steps_per_epoch",
  "train",
  "train_segment",
  "train_step",
]
