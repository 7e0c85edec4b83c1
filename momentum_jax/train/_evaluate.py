"""Measuring a run: the validation metrics, at the parameters its optimizer evaluates."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from momentum_jax.train._state import Setup, TrainState


def _batched_mean(function: Callable, x: jax.Array, y: jax.Array, size: int):
  """The mean of ``function``'s batch means over ``(x, y)`` cut in batches of at most ``size``.

  Whole batches run one at a time (``lax.map``, bounding memory); a last
  partial one after them; each weighs by its examples.
  """
  count = x.shape[0]
  if count <= size:
    return function(x, y)
  whole, remainder = divmod(count, size)
  cut = lambda a: a[: whole * size].reshape(whole, size, *a.shape[1:])
  means = jax.tree.map(
    lambda m: jnp.mean(m, axis=0), jax.lax.map(lambda xy: function(*xy), (cut(x), cut(y)))
  )
  if not remainder:
    return means
  last = function(x[whole * size :], y[whole * size :])
  return jax.tree.map(lambda m, r: (m * (whole * size) + r * remainder) / count, means, last)


def _problem_metrics(run: Setup, params, rest) -> dict[str, jax.Array]:
  data, size = run.problem.data, run.config.eval_batch_size
  model = nnx.merge(run.eval_graphdef, params, rest, copy=True)
  return _batched_mean(lambda x, y: run.problem.metrics(model, x, y), data.x_val, data.y_val, size)


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
  found = [
    node for node in jax.tree.leaves(own, is_leaf=_is_schedule_free) if _is_schedule_free(node)
  ]
  if not found:
    return params
  if len(found) > 1:
    raise ValueError(
      f"{len(found)} schedule-free states in one optimizer: name the parameters "
      "to evaluate with eval_params"
    )
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
