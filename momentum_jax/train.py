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
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from momentum_jax import optim
from momentum_jax.problems import Problem

OptimizerFactory = Callable[..., optax.GradientTransformation]
# (opt_state, params) -> the parameters the model is evaluated at.
EvalParams = Callable[[Any, Any], Any]

from momentum_jax._train_config import (  # noqa: F401  (part of this module's API)
    CPU_COMPILER_OPTIONS, TrainConfig, batch_size_error, chosen_compiler_options,
    compiler_options, steps_per_epoch)


class TrainState(NamedTuple):
  """What a training run carries from step to step, and the engine from segment to segment.

  Attributes:
    params: The model's parameters (``nnx.State``).
    rest: Its other state (BatchNorm statistics, …).
    opt_state: The optimizer's state.
    first_loss: The first step's training loss (divergence is measured from it).
    diverged_at: The number of updates taken when the run diverged, or -1.
    start: The problem's metrics of the initial model (``{name: scalar}``).
  """

  params: Any
  rest: Any
  opt_state: Any
  first_loss: jax.Array
  diverged_at: jax.Array
  start: dict[str, jax.Array]


class TrainResult(NamedTuple):
  """What a whole training run returns.

  Attributes:
    metrics: Arrays with one entry per log step (see :func:`train_segment`),
      and the problem's metrics of the initial model as ``start_<name>``.
    params: The final parameters (``nnx.State``).
    rest: The final non-parameter state (BatchNorm statistics, …).
    diverged_at_step: The number of updates taken when the loss first became
      non-finite or too large (see ``TrainConfig.divergence_factor``), or -1.
  """

  metrics: dict[str, Any]
  params: Any
  rest: Any
  diverged_at_step: jax.Array


@dataclasses.dataclass(frozen=True, eq=False)
class Setup:
  """What the step functions share: the problem, the config and the model's structure.

  Build it with :func:`setup`; it holds no array that varies by configuration.
  """

  problem: Problem
  config: TrainConfig
  make_optimizer: OptimizerFactory
  graphdef: Any
  eval_graphdef: Any
  per_epoch: int
  eval_params: EvalParams | None = None

  def optimizer(self, hyperparameters: Mapping[str, Any]
                ) -> optax.GradientTransformationExtraArgs:
    """The run's optimizer, prefixed with :func:`momentum_jax.record_grad_norms` (for logging).

    ``optax.chain`` passes optax's extra arguments (``value``, ``grad``,
    ``value_fn``) on to the transforms that take them.
    """
    return optax.chain(optim.record_grad_norms(), self.make_optimizer(**hyperparameters))


def setup(problem: Problem, make_optimizer: OptimizerFactory, config: TrainConfig,
          eval_params: EvalParams | None = None) -> Setup:
  """Checks the batch size and reads the model's structure (no weights computed).

  ``eval_params``: see :func:`evaluation_params`.

  Raises:
    ValueError: if the batch size exceeds the training set, or is given for
      a stream.
  """
  if (error := batch_size_error(problem, config.batch_size)) is not None:
    raise ValueError(f"batch_size {error}")
  template = problem.abstract_model()
  return Setup(problem, config, make_optimizer, nnx.graphdef(template),
               nnx.graphdef(_eval_mode(template)), steps_per_epoch(problem, config.batch_size),
               eval_params)


def run_keys(key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(init_key, data_key)``: one run's key split for the model and for its minibatches."""
  init_key, data_key = jax.random.split(key)
  return init_key, data_key


def minibatch_indices(
    data_key: jax.Array, step: jax.Array, num_train: int, batch_size: int
) -> jax.Array:
  """The example indices of step ``step``'s minibatch, drawn on device.

  Each epoch is a fresh permutation of the training set (keyed by
  ``fold_in(data_key, epoch)``), cut into ``num_train // batch_size`` batches:
  within an epoch no example repeats.
  """
  epoch, within = jnp.divmod(step, num_train // batch_size)
  return _epoch_batch(epoch_order(data_key, epoch, num_train), within, batch_size)


def epoch_order(data_key: jax.Array, epoch: jax.Array, num_train: int) -> jax.Array:
  """The permutation of the training set that epoch ``epoch`` is cut from."""
  return jax.random.permutation(jax.random.fold_in(data_key, epoch), num_train)


def _epoch_batch(order: jax.Array, within: jax.Array, batch_size: int) -> jax.Array:
  return jax.lax.dynamic_slice(order, (within * batch_size,), (batch_size,))


def _split(model: nnx.Module):
  return nnx.split(model, nnx.Param, ...)


def _eval_mode(model: nnx.Module) -> nnx.Module:
  """A view of ``model`` whose BatchNorms use their running statistics."""
  has_batch_norm = any(
      isinstance(node, nnx.BatchNorm) for _, node in nnx.iter_graph(model))
  return nnx.view(model, use_running_average=True) if has_batch_norm else model


def init_state(run: Setup, hyperparameters: Mapping[str, Any], init_key: jax.Array
               ) -> TrainState:
  """The model built from ``init_key``, its optimizer's state, and the problem's metrics of it."""
  _, params, rest = _split(run.problem.make_model(nnx.Rngs(init_key)))
  opt_state = run.optimizer(hyperparameters).init(params)
  start = _problem_metrics(run, params, rest) if run.problem.metrics is not None else {}
  return TrainState(params, rest, opt_state, jnp.zeros([], jnp.float32), jnp.int32(-1), start)


def first_order(run: Setup, data_key: jax.Array, first_step: jax.Array) -> jax.Array:
  """The epoch permutation a segment starting at ``first_step`` begins with (empty if unused)."""
  if run.problem.is_stream or run.config.batch_size is None:
    return jnp.zeros([0], jnp.int32)
  return epoch_order(data_key, first_step // run.per_epoch, run.problem.data.num_train)


def draw_batch(run: Setup, data_key: jax.Array, step: jax.Array, order: jax.Array
               ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Step ``step``'s on-device minibatch (as :func:`minibatch_indices` draws it), and the order.

  The epoch's permutation is drawn at its first step and carried through the
  others rather than drawn again at every step: a sort of the whole training
  set (~0.4 ms for 1437 examples on a CPU core) costs more than a small
  model's step.
  """
  data = run.problem.data
  if run.config.batch_size is None:
    return data.x_train, data.y_train, order
  epoch, within = jnp.divmod(step, run.per_epoch)
  order = jax.lax.cond(within == 0, lambda: epoch_order(data_key, epoch, data.num_train),
                       lambda: order)
  index = _epoch_batch(order, within, run.config.batch_size)
  return data.x_train[index], data.y_train[index], order


def _loss(run: Setup, params, rest, x, y):
  model = nnx.merge(run.graphdef, params, rest, copy=True)
  loss = run.problem.loss(model, x, y)
  _, _, new_rest = _split(model)
  return loss, new_rest


def diverged(loss: jax.Array, first_loss: jax.Array, floor: float, factor: float) -> jax.Array:
  """Whether ``loss`` is non-finite or above ``factor ×`` the first loss, measured from ``floor``.

  (With floor 0, as for every data loss, this is ``loss > factor · first_loss``.)
  """
  return ~jnp.isfinite(loss) | ((first_loss > floor) & (
      loss - floor > factor * (first_loss - floor)))


def train_step(run: Setup, tx: optax.GradientTransformation, state: TrainState,
               x: jax.Array, y: jax.Array, step: jax.Array) -> tuple[TrainState, jax.Array]:
  """One optimizer update on the batch ``(x, y)``; a diverged run stays where it was.

  ``tx`` is given optax's extra arguments (transforms that take none ignore
  them, see ``optax.with_extra_args_support``): ``value``, the batch's loss;
  ``grad``, its gradient; ``value_fn``, the loss of this same batch as a
  function of the parameters (line searches, ``optax.lbfgs``), its model
  state (BatchNorm statistics, dropout keys) fixed at the step's: what it
  computes changes no state.
  """
  params, rest, opt_state, first_loss, diverged_at, start = state
  (loss, new_rest), grads = jax.value_and_grad(
      lambda p: _loss(run, p, rest, x, y), has_aux=True)(params)
  value_fn = lambda p: _loss(run, p, rest, x, y)[0]
  updates, opt_state = optax.with_extra_args_support(tx).update(
      grads, opt_state, params, value=loss, grad=grads, value_fn=value_fn)
  first_loss = jnp.where(step == 0, loss, first_loss)
  bad = diverged(loss, first_loss, run.problem.loss_floor, run.config.divergence_factor)
  diverged_at = jnp.where((diverged_at < 0) & bad, step, diverged_at)
  # A diverged run stops moving: its parameters and model state stay where
  # they were, so its overflowing arithmetic cannot spread to its metrics
  # (under vmap each run is independent anyway). Its optimizer state goes on:
  # what it holds is never applied again, and a select over it is work for
  # every run of the batch at every step.
  frozen = diverged_at >= 0
  params = jax.tree.map(lambda p, u: jnp.where(frozen, p, p + u).astype(p.dtype), params,
                        updates)
  rest = jax.tree.map(lambda old, new: jnp.where(frozen, old, new), rest, new_rest)
  return TrainState(params, rest, opt_state, first_loss, diverged_at, start), loss


def _batched_mean(function: Callable, x: jax.Array, y: jax.Array, size: int):
  """The mean of ``function``'s batch means over ``(x, y)`` cut in batches of at most ``size``.

  Whole batches run one at a time (``lax.map``, bounding memory); a last
  partial one after them; each weighs by its examples.
  """
  count = x.shape[0]
  if count <= size:
    return function(x, y)
  whole, remainder = divmod(count, size)
  cut = lambda a: a[:whole * size].reshape(whole, size, *a.shape[1:])
  means = jax.tree.map(lambda m: jnp.mean(m, axis=0),
                       jax.lax.map(lambda xy: function(*xy), (cut(x), cut(y))))
  if not remainder:
    return means
  last = function(x[whole * size:], y[whole * size:])
  return jax.tree.map(lambda m, r: (m * (whole * size) + r * remainder) / count, means, last)


def _problem_metrics(run: Setup, params, rest) -> dict[str, jax.Array]:
  data, size = run.problem.data, run.config.eval_batch_size
  model = nnx.merge(run.eval_graphdef, params, rest, copy=True)
  return _batched_mean(lambda x, y: run.problem.metrics(model, x, y), data.x_val, data.y_val,
                       size)


def _is_schedule_free(node: Any) -> bool:
  return isinstance(node, optax.contrib.ScheduleFreeState)


def evaluation_params(run: Setup, opt_state: Any, params: Any) -> Any:
  """The parameters a run is evaluated at: ``params`` unless its optimizer says otherwise.

  ``run.eval_params(state, params)`` when given, ``state`` being the
  optimizer's own state (without :meth:`Setup.optimizer`'s norm recorder);
  else, for optax's schedule-free family (a ``ScheduleFreeState`` anywhere in
  that state, inside a chain too),
  ``optax.contrib.schedule_free_eval_params``: its iterate ``y`` is where the
  gradients are taken, the average ``x`` the model it trains.
  """
  own = opt_state[1]  # optax.chain's state: (record_grad_norms's, the optimizer's)
  if run.eval_params is not None:
    return run.eval_params(own, params)
  found = [node for node in jax.tree.leaves(own, is_leaf=_is_schedule_free)
           if _is_schedule_free(node)]
  if not found:
    return params
  if len(found) > 1:
    raise ValueError(f"{len(found)} schedule-free states in one optimizer: name the parameters "
                     "to evaluate with eval_params")
  return optax.contrib.schedule_free_eval_params(found[0], params)


def evaluate(run: Setup, params, rest) -> dict[str, jax.Array]:
  """Validation metrics, the model in evaluation mode (BatchNorm's running statistics).

  ``val_loss`` (the problem's loss over the whole split), ``val_accuracy``
  for classification, and ``val_<name>`` for each of the problem's metrics;
  ``{}`` without a validation split. ``params`` are those to evaluate
  (:func:`evaluation_params`).
  """
  problem, data = run.problem, run.problem.data
  if data.x_val is None:
    return {}
  model = nnx.merge(run.eval_graphdef, params, rest, copy=True)

  def batch(x, y):
    metrics = {"val_loss": problem.loss(model, x, y)}
    if problem.is_classification:
      # The same forward pass as the default loss's: XLA computes it once.
      metrics["val_accuracy"] = jnp.mean(jnp.argmax(model(x), -1) == y)
    if problem.metrics is not None:
      metrics.update({f"val_{k}": v for k, v in problem.metrics(model, x, y).items()})
    return metrics

  return _batched_mean(batch, data.x_val, data.y_val, run.config.eval_batch_size)


def kept_state(run: Setup, state: TrainState) -> tuple[Any, Any]:
  """``(params, rest)``: what a trained run's model is kept with (a sweep's ``keep:``).

  The parameters it is evaluated at (:func:`evaluation_params`: for a
  schedule-free optimizer its average, not the iterate the gradients were
  taken at) and its model state (BatchNorm statistics, …). The one place
  that chooses them: a model saved by a sweep and loaded by
  :func:`momentum_jax.results.load_model` has these, and scores what the
  sweep's validation metrics say.
  """
  return evaluation_params(run, state.opt_state, state.params), state.rest


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
    metrics.update(evaluate(run, evaluation_params(run, state.opt_state, state.params),
                            state.rest))
    if on_log is not None:
      jax.debug.callback(on_log, inputs[0][-1] + 1)
    return carry, metrics

  inputs = (steps,)
  if batches is not None:
    inputs += tuple(b.reshape(num_logs, config.log_every, *b.shape[1:]) for b in batches)
  (state, _), metrics = jax.lax.scan(
      interval, (state, first_order(run, data_key, first_step)), inputs)
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
    raise ValueError(f"{problem.name}: a Stream's batches come from the host; sweep it with "
                     "momentum_jax.sweep.run (build_train draws batches on the device)")

  def train(hyperparameters: Mapping[str, jax.Array], key: jax.Array) -> TrainResult:
    init_key, data_key = run_keys(key)
    state = init_state(run, hyperparameters, init_key)
    state, metrics = train_segment(run, hyperparameters, state, data_key, jnp.int32(0),
                                   config.num_logs, on_log=on_log)
    metrics.update({f"start_{name}": value for name, value in state.start.items()})
    return TrainResult(metrics=metrics, params=state.params, rest=state.rest,
                       diverged_at_step=state.diverged_at)

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
  run = jax.jit(build_train(problem, make_optimizer, config, eval_params=eval_params),
                compiler_options=compiler_options(jax.default_backend()))
  return run({k: jnp.asarray(v, jnp.float32) for k, v in hyperparameters.items()}, key)
