"""The training run: a whole training as one ``jax.lax.scan`` inside ``jax.jit``.

The story, top to bottom: :func:`build_train` closes over a problem, an
optimizer factory and a :class:`TrainConfig`, and returns a pure function
``train(hyperparameters, key) -> TrainResult``. That function builds the model
from ``key``, builds the optimizer from ``hyperparameters`` (numbers, arrays or
tracers), and scans over the steps: minibatches are drawn on device, each
step is one optimizer update, and every ``log_every`` steps the metrics are
recorded. Because it works on the split Flax state (``graphdef, params,
rest``) and takes everything that varies as arrays, ``jax.vmap`` over a batch
of hyperparameters and keys is plain ``jax.vmap``::

  train = build_train(problem, mj.momentum, TrainConfig(steps=500, batch_size=64))
  result = jax.jit(jax.vmap(train))(
      {"learning_rate": lrs, "beta": betas}, jax.random.split(key, len(lrs)))

Nothing here depends on the device: the same code runs on CPU, GPU and TPU.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from momentum_jax import optim
from momentum_jax.problems import Problem

OptimizerFactory = Callable[..., optax.GradientTransformation]

# XLA's CPU backend runs LLVM at optimization level 3 unless told otherwise.
# At level 2 the training programs compile in about half the time and run as
# fast. Measured on the 2-core machine, one program each, compile (steady
# run) at level 3 against level 2: digits MLP 64-128-128-10 at width 8,
# 5.5-6.6 s (1.16-1.47 s) against 2.9-3.2 s (1.19-1.40 s); digits CNN at
# width 2, 8.5 s (3.60 s) against 3.5 s (3.57 s); the quickstart's MLP at
# width 24, 4.8-5.4 s against 2.2-2.5 s; linear regression at width 32,
# 1.0-1.1 s against 0.7-1.0 s. A sweep compiles one program per group and
# often trains it for seconds, so compilation is most of a short sweep.
# Results differ from level 3's in float32 rounding only (165 of 1936
# metrics of the MLP sweep above, none of the regression's).
CPU_COMPILER_OPTIONS = {"xla_backend_optimization_level": 2}


def compiler_options(platform: str) -> dict[str, Any]:
  """The XLA options the training programs are compiled with on ``platform``.

  :data:`CPU_COMPILER_OPTIONS` on a CPU, unless ``XLA_FLAGS`` sets the
  optimization level itself; nothing elsewhere (accelerators compile with
  XLA's defaults). Pass them as ``jax.jit(..., compiler_options=...)``.
  """
  if platform != "cpu" or "xla_backend_optimization_level" in os.environ.get("XLA_FLAGS", ""):
    return {}
  return dict(CPU_COMPILER_OPTIONS)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How long and on what batches to train, and how often to log.

  Attributes:
    steps: Optimizer steps, > 0, a multiple of ``log_every``.
    batch_size: Examples per step: ``None`` for full-batch gradient descent,
      1 for plain SGD, else mini-batch. Batches are drawn without replacement
      within an epoch (a fresh permutation per epoch); the remainder of an
      epoch that does not fill a batch is skipped.
    log_every: Steps between logged metrics, > 0.
    grad_norms: Also log the per-leaf gradient norms (per layer kernel and
      bias) at each log step, for vanishing-gradient studies.
    eval_batch_size: Validation examples evaluated at once (bounds memory).
    divergence_factor: A run diverges at the first step whose training loss
      is NaN, infinite, or above ``divergence_factor`` times the first step's
      loss, both measured from the problem's ``loss_floor`` (0 for the data
      losses, the minimum for a landscape, whose values may be negative);
      from then on it is frozen (no more updates) and its metrics are not to
      be trusted. > 1.
  """

  steps: int
  batch_size: int | None = None
  log_every: int = 10
  grad_norms: bool = False
  eval_batch_size: int = 1024
  divergence_factor: float = 1e3

  def __post_init__(self):
    for name in ("steps", "log_every", "eval_batch_size"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if self.batch_size is not None and (
        isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int)
        or self.batch_size <= 0):
      raise ValueError(
          f"batch_size must be a positive integer or None (full batch), got {self.batch_size!r}")
    if not self.divergence_factor > 1:
      raise ValueError(
          f"divergence_factor must be > 1, got {self.divergence_factor!r}")
    if self.steps % self.log_every:
      raise ValueError(
          f"steps must be a multiple of log_every, got steps={self.steps} and "
          f"log_every={self.log_every}")

  @property
  def num_logs(self) -> int:
    return self.steps // self.log_every

  @property
  def logged_steps(self) -> np.ndarray:
    """The step count at each log: ``log_every, 2·log_every, …, steps``."""
    return np.arange(1, self.num_logs + 1) * self.log_every


def batch_size_error(problem: Problem, batch_size: int | None) -> str | None:
  """What is wrong with ``batch_size`` for ``problem`` (to follow "batch_size "), or None.

  A landscape has no examples, so no batch size; a data problem's batch
  holds at most its training set.
  """
  if batch_size is None:
    return None
  if problem.landscape is not None:
    return (f"must be left out for {problem.name}, a landscape: it has no examples to "
            f"batch (the full gradient at every step), got {batch_size}")
  if batch_size > problem.data.num_train:
    return (f"must be at most the {problem.data.num_train} training examples of "
            f"{problem.name}, got {batch_size}")
  return None


def steps_per_epoch(problem: Problem, batch_size: int | None) -> int:
  """Optimizer steps in one pass over the training data."""
  if batch_size is None:
    return 1
  return problem.data.num_train // batch_size


class TrainResult(NamedTuple):
  """What a training run returns.

  Attributes:
    metrics: Arrays with one entry per log step (see :func:`build_train`).
    params: The final parameters (``nnx.State``).
    rest: The final non-parameter state (BatchNorm statistics, …).
    diverged_at_step: The number of updates taken when the loss first became
      non-finite or too large (see ``TrainConfig.divergence_factor``), or -1.
  """

  metrics: dict[str, Any]
  params: Any
  rest: Any
  diverged_at_step: jax.Array


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


def build_train(
    problem: Problem,
    make_optimizer: OptimizerFactory,
    config: TrainConfig,
    on_log: Callable[[jax.Array], None] | None = None,
) -> Callable[[Mapping[str, jax.Array], jax.Array], TrainResult]:
  """Returns the pure function ``train(hyperparameters, key) -> TrainResult``.

  ``train`` builds the model from the first half of ``key`` and draws the
  minibatches from the second, so one key fixes a run. ``make_optimizer`` is
  called as ``make_optimizer(**hyperparameters)`` inside the trace, e.g.
  ``mj.momentum`` with ``{"learning_rate": ..., "beta": ...}`` (bind non-numeric
  options with ``functools.partial``). The chain is prefixed with
  :func:`momentum_jax.record_grad_norms` to log gradient norms.

  ``TrainResult.metrics`` holds, one entry per log step (but ``start_*``):

  * ``train_loss``: the mean minibatch loss over the last ``log_every`` steps;
  * ``grad_norm``: the global gradient norm at the log step;
  * ``val_loss`` and, for classification, ``val_accuracy`` when the data has a
    validation split (model in evaluation mode: BatchNorm uses its running
    statistics);
  * ``grad_norms`` (with ``config.grad_norms``): per-leaf gradient norms as a
    nested dict shaped like the params (``mj.named_norms`` flattens it to
    ``{"layers/0/kernel": …}``);
  * the problem's :meth:`~momentum_jax.problems.Problem.extra_metrics` (a
    landscape's ``x``, ``y`` and ``distance_to_minimum``), and the same of
    the initial model once, as scalars named ``start_<name>``.

  ``on_log``, when given, is called on the host (``jax.debug.callback``)
  after each logged segment with the number of steps taken so far: a
  progress report that changes no value. The argument does not vary with
  the configuration, so under ``jax.vmap`` it is called once per segment for
  the whole batch, not once per member.

  Raises:
    ValueError: if the batch size exceeds the training set, or is given for
      a landscape.
  """
  data = problem.data
  if (error := batch_size_error(problem, config.batch_size)) is not None:
    raise ValueError(f"batch_size {error}")
  template = nnx.eval_shape(lambda: problem.make_model(nnx.Rngs(0)))  # no weights computed
  graphdef = nnx.graphdef(template)
  eval_graphdef = nnx.graphdef(_eval_mode(template))

  def init(key):
    _, params, rest = _split(problem.make_model(nnx.Rngs(key)))
    return params, rest

  per_epoch = steps_per_epoch(problem, config.batch_size)

  def batch(data_key, step, order):
    """Step ``step``'s minibatch (as :func:`minibatch_indices` draws it), and the epoch's order.

    The permutation is drawn at an epoch's first step and carried through
    the others rather than drawn again at every step: a sort of the whole
    training set (~0.4 ms for 1437 examples on a CPU core) costs more than a
    small model's step.
    """
    if config.batch_size is None:
      return data.x_train, data.y_train, order
    epoch, within = jnp.divmod(step, per_epoch)
    order = jax.lax.cond(within == 0, lambda: epoch_order(data_key, epoch, data.num_train),
                         lambda: order)
    index = _epoch_batch(order, within, config.batch_size)
    return data.x_train[index], data.y_train[index], order

  def loss_fn(params, rest, x, y):
    model = nnx.merge(graphdef, params, rest, copy=True)
    loss = problem.loss(model(x), y)
    _, _, new_rest = _split(model)
    return loss, new_rest

  def evaluate(params, rest):
    model = nnx.merge(eval_graphdef, params, rest, copy=True)
    size = min(config.eval_batch_size, data.num_val)
    chunks = math.ceil(data.num_val / size)
    pad = chunks * size - data.num_val
    x = jnp.concatenate([data.x_val, jnp.zeros((pad, *data.x_val.shape[1:]), data.x_val.dtype)])
    y = jnp.concatenate([data.y_val, jnp.zeros((pad, *data.y_val.shape[1:]), data.y_val.dtype)])
    valid = jnp.arange(chunks * size) < data.num_val

    def chunk(args):
      xs, ys, mask = args
      outputs = model(xs)
      per_example = jax.vmap(problem.loss)(outputs[:, None], ys[:, None])
      correct = (jnp.argmax(outputs, -1) == ys) if problem.is_classification else per_example
      return jnp.sum(per_example * mask), jnp.sum(correct * mask)

    shape = lambda a: a.reshape(chunks, size, *a.shape[1:])
    losses, corrects = jax.lax.map(chunk, (shape(x), shape(y), shape(valid)))
    metrics = {"val_loss": jnp.sum(losses) / data.num_val}
    if problem.is_classification:
      metrics["val_accuracy"] = jnp.sum(corrects) / data.num_val
    return metrics

  def train(hyperparameters: Mapping[str, jax.Array], key: jax.Array) -> TrainResult:
    init_key, data_key = jax.random.split(key)
    params, rest = init(init_key)
    start = problem.extra_metrics(nnx.merge(graphdef, params, rest, copy=True))
    tx = optax.chain(optim.record_grad_norms(), make_optimizer(**hyperparameters))
    opt_state = tx.init(params)

    def step(carry, step_index):
      state, first_loss, diverged_at, order = carry
      params, rest, opt_state = state
      x, y, order = batch(data_key, step_index, order)
      (loss, new_rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, rest, x, y)
      updates, new_opt_state = tx.update(grads, opt_state, params)
      new_state = (optax.apply_updates(params, updates), new_rest, new_opt_state)
      first_loss = jnp.where(step_index == 0, loss, first_loss)
      floor = problem.loss_floor
      # (With floor 0, as for every data loss, this is loss > factor · first_loss.)
      bad = ~jnp.isfinite(loss) | ((first_loss > floor) & (
          loss - floor > config.divergence_factor * (first_loss - floor)))
      diverged_at = jnp.where((diverged_at < 0) & bad, step_index, diverged_at)
      # A diverged run stops moving: its overflowing arithmetic can then
      # neither slow the batch down nor spread (under vmap each run is
      # independent anyway).
      state = jax.tree.map(
          lambda new, old: jnp.where(diverged_at >= 0, old, new), new_state, state)
      return (state, first_loss, diverged_at, order), loss

    def segment(carry, first_step):
      carry, losses = jax.lax.scan(
          step, carry, first_step + jnp.arange(config.log_every))
      params, rest, opt_state = carry[0]
      norms = optim.grad_norms(opt_state)
      metrics = {"train_loss": jnp.mean(losses), "grad_norm": norms.global_norm}
      if config.grad_norms:  # plain dicts: paths read layers/0/kernel (see mj.named_norms)
        metrics["grad_norms"] = nnx.to_pure_dict(norms.leaf_norms)
      if data.x_val is not None:
        metrics.update(evaluate(params, rest))
      metrics.update(problem.extra_metrics(nnx.merge(graphdef, params, rest, copy=True)))
      if on_log is not None:
        jax.debug.callback(on_log, first_step + config.log_every)
      return carry, metrics

    starts = jnp.arange(config.num_logs) * config.log_every
    order = jnp.zeros([data.num_train if config.batch_size else 0], jnp.int32)  # set at step 0
    carry = ((params, rest, opt_state), jnp.zeros([], jnp.float32), jnp.int32(-1), order)
    ((params, rest, _), _, diverged_at, _), metrics = jax.lax.scan(segment, carry, starts)
    metrics.update({f"start_{name}": value for name, value in start.items()})
    return TrainResult(metrics=metrics, params=params, rest=rest, diverged_at_step=diverged_at)

  return train


def train(
    problem: Problem,
    make_optimizer: OptimizerFactory,
    hyperparameters: Mapping[str, Any],
    key: jax.Array,
    config: TrainConfig,
) -> TrainResult:
  """Builds, jits and runs one training; see :func:`build_train`.

  Compiled with :func:`compiler_options`, as the sweep engine compiles.
  """
  run = jax.jit(build_train(problem, make_optimizer, config),
                compiler_options=compiler_options(jax.default_backend()))
  return run({k: jnp.asarray(v, jnp.float32) for k, v in hyperparameters.items()}, key)
