"""The measured reach of a training's roundings (``_training_bounds``) against the exact one.

Heavy-ball momentum on the regression, full batch, is a linear map of the
weights: the first-order effect on the logged loss of an error ``δ_s`` in
the weights after step ``s`` is ``J_s·δ_s``, ``J_s`` the derivative of the
loss by that error, exact in float64 by automatic differentiation of the
same loop. Each step's roundings put the new weights off by at most
``U32·|w_{s+1}| + UPDATE_ROUNDINGS·U32·|Δw_s|``, so a float32 run lies within
``Σ_s |J_s|·(U32·|w_{s+1}| + UPDATE_ROUNDINGS·U32·|Δw_s|)`` of the exact one;
the measured reach must not fall below it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import momentum_jax as mj
from _sweep_configs import REGRESSION
from _tolerances import U32, UPDATE_ROUNDINGS
from _training_bounds import sum_bound, training_bound
from momentum_jax import problems, sweep
from momentum_jax.train import run_keys


def _exact_reach(x, y, start, learning_rate, beta, steps, log_every) -> float:
  """``Σ_s |J_s|·(per-step rounding)`` of the last logged loss, in float64 (module docstring)."""
  with jax.enable_x64(True):
    x, y = jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64)
    loss = lambda w: jnp.mean((x * w[0] + w[1] - y) ** 2)

    def logged(errors):
      def step(carry, error):
        w, velocity = carry
        value, gradient = jax.value_and_grad(loss)(w)
        velocity = beta * velocity + gradient
        moved = w - learning_rate * velocity
        return (moved + error, velocity), (value, moved, moved - w)

      start64 = jnp.asarray(start, jnp.float64)
      _, (losses, after, moves) = jax.lax.scan(step, (start64, jnp.zeros(2)), errors)
      return jnp.mean(losses[-log_every:]), (after, moves)

    derivative, (after, moves) = jax.grad(logged, has_aux=True)(jnp.zeros((steps, 2)))
    rounding = U32 * jnp.abs(after) + UPDATE_ROUNDINGS * U32 * jnp.abs(moves)
    return float(jnp.sum(jnp.abs(derivative) * rounding))


def test_the_measured_reach_covers_the_exact_propagation_on_the_regression():
  loaded = sweep.load_config(REGRESSION)
  problem = problems.get_problem("linear_regression")
  rows = sweep.run(REGRESSION, quiet=True).summary
  train = loaded.train
  metrics, bound = training_bound(
    problem,
    functools.partial(mj.momentum, ema=False),
    train,
    {"learning_rate": rows.learning_rate.to_numpy(), "beta": rows.beta.to_numpy()},
    jax.vmap(jax.random.key)(rows.seed.to_numpy()),
  )
  # The reach alone: the bound less its evaluation part (a mean of the
  # batch's losses, then of log_every of them).
  terms = problem.data.num_train + train.log_every
  measured = (bound["train_loss"] - sum_bound(metrics["train_loss"], terms))[:, -1]
  x, y = np.asarray(problem.data.x_train)[:, 0], np.asarray(problem.data.y_train)
  for row, reach in zip(rows.itertuples(), measured):
    model = problem.make_model(nnx.Rngs(run_keys(jax.random.key(row.seed))[0]))
    start = [model.layers[0].kernel[...][0, 0], model.layers[0].bias[...][0]]
    args = (row.learning_rate, row.beta, train.steps, train.log_every)
    # Two programs: each within the exact reach of the exact run.
    assert reach >= 2 * _exact_reach(x, y, start, *args), row
