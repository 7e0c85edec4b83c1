"""One optimizer step of a run: its initial state, its loss, divergence, the update."""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from momentum_jax.train._evaluate import _problem_metrics
from momentum_jax.train._state import Setup, TrainState, _split


def init_state(run: Setup, hyperparameters: Mapping[str, Any], init_key: jax.Array) -> TrainState:
  """The model built from ``init_key``, its optimizer's state, and the problem's metrics of it."""
  _, params, rest = _split(run.problem.make_model(nnx.Rngs(init_key)))
  opt_state = run.optimizer(hyperparameters).init(params)
  start = _problem_metrics(run, params, rest) if run.problem.metrics is not None else {}
  return TrainState(params, rest, opt_state, jnp.zeros([], jnp.float32), jnp.int32(-1), start)


def _loss(run: Setup, params, rest, x, y):
  model = nnx.merge(run.graphdef, params, rest, copy=True)
  loss = run.problem.loss(model, x, y)
  _, _, new_rest = _split(model)
  return loss, new_rest


def diverged(loss: jax.Array, first_loss: jax.Array, floor: float, factor: float) -> jax.Array:
  """Whether ``loss`` is non-finite or above ``factor ×`` the first loss, measured from ``floor``.

  (With floor 0, as for every data loss, this is ``loss > factor · first_loss``.)
  """
  return ~jnp.isfinite(loss) | (
    (first_loss > floor) & (loss - floor > factor * (first_loss - floor))
  )


def train_step(
  run: Setup,
  tx: optax.GradientTransformation,
  state: TrainState,
  x: jax.Array,
  y: jax.Array,
  step: jax.Array,
) -> tuple[TrainState, jax.Array]:
  """One optimizer update on the batch ``(x, y)``; a diverged run stays where it was.

  ``tx`` is given optax's extra arguments (transforms that take none ignore
  them, see ``optax.with_extra_args_support``): ``value``, the batch's loss;
  ``grad``, its gradient; ``value_fn``, the loss of this same batch as a
  function of the parameters (line searches, ``optax.lbfgs``), its model
  state (BatchNorm statistics, dropout keys) fixed at the step's: what it
  computes changes no state.
  """
  params, rest, opt_state, first_loss, diverged_at, start = state
  (loss, new_rest), grads = jax.value_and_grad(lambda p: _loss(run, p, rest, x, y), has_aux=True)(
    params
  )
  value_fn = lambda p: _loss(run, p, rest, x, y)[0]
  updates, opt_state = optax.with_extra_args_support(tx).update(
    grads, opt_state, params, value=loss, grad=grads, value_fn=value_fn
  )
  first_loss = jnp.where(step == 0, loss, first_loss)
  bad = diverged(loss, first_loss, run.problem.loss_floor, run.config.divergence_factor)
  # int32 as the carry holds it, also where jax_enable_x64 makes the step an int64.
  diverged_at = jnp.where((diverged_at < 0) & bad, step, diverged_at).astype(jnp.int32)
  # A diverged run stops moving: its parameters and model state stay where
  # they were, so its overflowing arithmetic cannot spread to its metrics
  # (under vmap each run is independent anyway). Its optimizer state goes on:
  # what it holds is never applied again, and a select over it is work for
  # every run of the batch at every step.
  frozen = diverged_at >= 0
  params = jax.tree.map(lambda p, u: jnp.where(frozen, p, p + u).astype(p.dtype), params, updates)
  rest = jax.tree.map(lambda old, new: jnp.where(frozen, old, new), rest, new_rest)
  return TrainState(params, rest, opt_state, first_loss, diverged_at, start), loss
