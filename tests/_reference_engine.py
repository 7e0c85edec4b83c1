"""The sweep engine as it was before segments (commit bad1bd0), kept as the tests' reference.

``build_train`` trained a whole run as one ``lax.scan`` and ``program`` ran a
chunk as ``shard_map`` of ``lax.map`` of it, ``width`` configurations at a
time. The segmented engine must reproduce it bit for bit at the same width
(its training metrics; the validation loss, now the problem's batch-mean
loss over the split rather than a masked sum of per-example losses, to
float32 rounding). Only the loss is adapted: the old ``Problem.loss`` took
the model's outputs. Data problems only (the landscapes had extra metrics).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, Mapping

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import PartitionSpec

from momentum_jax import optim
from momentum_jax.train import epoch_order
from momentum_jax.train._batches import _epoch_batch
from momentum_jax.train._state import _eval_mode, _split  # as they were: unchanged since

if TYPE_CHECKING:  # the annotations' names
  from momentum_jax.problems import Problem
  from momentum_jax.train import OptimizerFactory, TrainConfig, TrainResult


def _loss(problem, outputs, targets):
  if problem.is_classification:
    return optax.softmax_cross_entropy_with_integer_labels(outputs, targets).mean()
  return jnp.mean((outputs - targets) ** 2)


def build_train(
  problem: Problem,
  make_optimizer: OptimizerFactory,
  config: TrainConfig,
  on_log: Callable[[jax.Array], None] | None = None,
) -> Callable[[Mapping[str, jax.Array], jax.Array], TrainResult]:
  """The whole run as one scan: ``train(hyperparameters, key) -> (metrics, params, rest, diverged_at)``."""
  data = problem.data
  template = nnx.eval_shape(lambda: problem.make_model(nnx.Rngs(0)))  # no weights computed
  graphdef = nnx.graphdef(template)
  eval_graphdef = nnx.graphdef(_eval_mode(template))

  def init(key):
    _, params, rest = _split(problem.make_model(nnx.Rngs(key)))
    return params, rest

  per_epoch = 1 if config.batch_size is None else data.num_train // config.batch_size

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
    order = jax.lax.cond(
      within == 0, lambda: epoch_order(data_key, epoch, data.num_train), lambda: order
    )
    index = _epoch_batch(order, within, config.batch_size)
    return data.x_train[index], data.y_train[index], order

  def loss_fn(params, rest, x, y):
    model = nnx.merge(graphdef, params, rest, copy=True)
    loss = _loss(problem, model(x), y)
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
      per_example = jax.vmap(lambda o, t: _loss(problem, o, t))(outputs[:, None], ys[:, None])
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
    start = {}
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
      bad = ~jnp.isfinite(loss) | (
        (first_loss > floor) & (loss - floor > config.divergence_factor * (first_loss - floor))
      )
      diverged_at = jnp.where((diverged_at < 0) & bad, step_index, diverged_at)
      # A diverged run stops moving: its overflowing arithmetic can then
      # neither slow the batch down nor spread (under vmap each run is
      # independent anyway).
      state = jax.tree.map(lambda new, old: jnp.where(diverged_at >= 0, old, new), new_state, state)
      return (state, first_loss, diverged_at, order), loss

    def segment(carry, first_step):
      carry, losses = jax.lax.scan(step, carry, first_step + jnp.arange(config.log_every))
      params, rest, opt_state = carry[0]
      norms = optim.grad_norms(opt_state)
      metrics = {"train_loss": jnp.mean(losses), "grad_norm": norms.global_norm}
      if config.grad_norms:  # plain dicts: paths read layers/0/kernel (see mj.named_norms)
        metrics["grad_norms"] = nnx.to_pure_dict(norms.leaf_norms)
      if data.x_val is not None:
        metrics.update(evaluate(params, rest))
      if on_log is not None:
        jax.debug.callback(on_log, first_step + config.log_every)
      return carry, metrics

    starts = jnp.arange(config.num_logs) * config.log_every
    order = jnp.zeros([data.num_train if config.batch_size else 0], jnp.int32)  # set at step 0
    carry = ((params, rest, opt_state), jnp.zeros([], jnp.float32), jnp.int32(-1), order)
    ((params, rest, _), _, diverged_at, _), metrics = jax.lax.scan(segment, carry, starts)
    metrics.update({f"start_{name}": value for name, value in start.items()})
    return metrics, params, rest, diverged_at

  return train


def program(train, width, mesh, seed=None):
  """``(hyperparameters, seeds) -> (metrics, diverged_at_step)`` for a chunk, as before."""

  def one(hyperparameters_and_seed):
    hyperparameters, own_seed = hyperparameters_and_seed
    metrics, _, _, diverged_at = train(
      hyperparameters, jax.random.key(own_seed if seed is None else seed)
    )
    return metrics, diverged_at

  def shard(hyperparameters, seeds):
    return jax.lax.map(one, (hyperparameters, seeds), batch_size=width if width > 1 else None)

  return jax.shard_map(
    shard,
    mesh=mesh,
    in_specs=PartitionSpec("config"),
    out_specs=PartitionSpec("config"),
    check_vma=False,
  )
