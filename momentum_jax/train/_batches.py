"""Minibatches drawn on the device: keys, epoch orders, the batch of a step."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from momentum_jax.train._state import Setup


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


def first_order(run: Setup, data_key: jax.Array, first_step: jax.Array) -> jax.Array:
  """The epoch permutation a segment starting at ``first_step`` begins with (empty if unused)."""
  if run.problem.is_stream or run.config.batch_size is None:
    return jnp.zeros([0], jnp.int32)
  return epoch_order(data_key, first_step // run.per_epoch, run.problem.data.num_train)


def draw_batch(
  run: Setup, data_key: jax.Array, step: jax.Array, order: jax.Array
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
  order = jax.lax.cond(
    within == 0, lambda: epoch_order(data_key, epoch, data.num_train), lambda: order
  )
  index = _epoch_batch(order, within, run.config.batch_size)
  return data.x_train[index], data.y_train[index], order
