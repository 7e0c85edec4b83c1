"""momentum_jax optimizers compose with optax's wrappers and Flax NNX."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import _tolerances
import momentum_jax as mj
from _problems import least_squares, trajectory


def test_chain_with_global_norm_clipping_equals_clipping_by_hand():
  loss_fn, params = least_squares(0)
  clipped = optax.chain(optax.clip_by_global_norm(1.0), mj.momentum(0.1, 0.9))
  path = trajectory(clipped, loss_fn, params, steps=30)
  # A scanned program against steps run one by one: each within float32
  # rounding of the exact path, plus the clipping factor's own (a sum of 18
  # squares, its root, the division and the product: 21 roundings) scaling
  # every update; twice that apart.
  bound = {
    k: 2
    * _tolerances.float32_drift_bound(
      np.asarray(params[k], np.float64), np.asarray(path[k], np.float64), 21 * _tolerances.U32
    )
    for k in params
  }

  tx = mj.momentum(0.1, 0.9)
  state, p = tx.init(params), params
  for k in range(30):
    g = jax.grad(loss_fn)(p)
    norm = jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree.leaves(g)))
    g = jax.tree.map(lambda x: x * jnp.minimum(1.0, 1.0 / norm), g)
    updates, state = tx.update(g, state)
    p = optax.apply_updates(p, updates)
    _tolerances.assert_within(
      jax.tree.map(lambda x: x[k], path), p, {leaf: b[k] for leaf, b in bound.items()}
    )
  # Clipping really happened: the first gradient is larger than the threshold.
  assert optax.tree.norm(jax.grad(loss_fn)(params)) > 1.0


def test_clipping_is_reexported_from_optax():
  assert mj.clip_by_global_norm is optax.clip_by_global_norm
  assert mj.clip is optax.clip


@pytest.mark.parametrize("ema", [True, False])
def test_inject_hyperparams(ema):
  loss_fn, params = least_squares(1)
  injected = optax.inject_hyperparams(mj.momentum, static_args=("ema",))(
    learning_rate=0.05, beta=0.9, ema=ema
  )
  # Hyperparameters read from the state or folded in as constants: two float32
  # programs, each within its rounding bound of the exact path.
  direct, bound = _tolerances.run_and_bound(
    mj.momentum(0.05, 0.9, ema=ema), jax.grad(loss_fn), params, 30
  )
  _tolerances.assert_within(
    trajectory(injected, loss_fn, params, 30), direct, {k: 2 * b for k, b in bound.items()}
  )
  # The hyperparameters can be changed in the state between steps, as with optax.
  state = injected.init(params)
  state.hyperparams["beta"] = jnp.asarray(0.0)
  g = jax.grad(loss_fn)(params)
  updates, _ = injected.update(g, state, params)
  # With β = 0 both sides round the product of g and float32 0.05 once.
  chex.assert_trees_all_close(
    updates, jax.tree.map(lambda x: -0.05 * x, g), rtol=_tolerances.U32, atol=0
  )


def test_multi_steps_accumulates_then_steps():
  loss_fn, params = least_squares(2)
  every = 3
  multi = optax.MultiSteps(mj.adam(0.01), every_k_schedule=every)
  state = multi.init(params)
  inner = mj.adam(0.01)
  inner_state = inner.init(params)
  grads = [jax.tree.map(lambda x, s=s: x * (1 + s), jax.grad(loss_fn)(params)) for s in range(6)]
  p, q = params, params
  ours, by_hand = [], []
  for k, g in enumerate(grads):
    updates, state = multi.update(g, state, p)
    p = optax.apply_updates(p, updates)
    if (k + 1) % every == 0:
      mean = jax.tree.map(lambda *xs: sum(xs) / every, *grads[k + 1 - every : k + 1])
      inner_updates, inner_state = inner.update(mean, inner_state, q)
      q = optax.apply_updates(q, inner_updates)
      ours.append(p)
      by_hand.append(q)
    else:  # between the steps MultiSteps adds zeros: the params stay, exactly
      chex.assert_trees_all_equal(p, ours[-1] if ours else params)
  # The two means of 3 same-signed gradients (optax's running one, ours) round
  # up to 4 times each; Adam's m̂/√v̂ carries a relative change of its input
  # twice (numerator and root): 16·U32 per update, plus each float32 run's own
  # rounding (twice the drift bound, with Adam's bias corrections).
  path = {k: np.stack([np.asarray(x[k], np.float64) for x in by_hand]) for k in params}
  relative = 16 * _tolerances.U32 + _tolerances.adam_bias_correction_error(0.9, 0.999, len(ours))
  for step, (mine, theirs) in enumerate(zip(ours, by_hand)):
    _tolerances.assert_within(
      mine,
      theirs,
      {
        k: 2
        * _tolerances.float32_drift_bound(np.asarray(params[k], np.float64), path[k], relative)[
          step
        ]
        for k in params
      },
    )
  assert not np.allclose(p["w"], params["w"])


def test_apply_if_finite_skips_non_finite_updates():
  params = {"w": jnp.ones(3)}
  tx = optax.apply_if_finite(mj.momentum(0.1, 0.9), max_consecutive_errors=2)
  state = tx.init(params)
  good = {"w": jnp.ones(3)}
  bad = {"w": jnp.array([1.0, jnp.nan, 1.0])}
  updates, state = tx.update(good, state, params)
  velocity = optax.tree.get(state, "velocity")
  skipped, state = tx.update(bad, state, params)
  np.testing.assert_array_equal(skipped["w"], np.zeros(3))
  np.testing.assert_array_equal(optax.tree.get(state, "velocity")["w"], velocity["w"])
  assert int(state.notfinite_count) == 1
  _, state = tx.update(good, state, params)
  assert int(state.notfinite_count) == 0


def test_flax_nnx_optimizer_trains_with_an_mj_optimizer():
  x = jnp.linspace(-1.0, 1.0, 64)[:, None]
  y = 3.0 * x[:, 0] + 2.0

  class Line(nnx.Module):
    def __init__(self, rngs):
      self.linear = nnx.Linear(1, 1, rngs=rngs)

    def __call__(self, x):
      return self.linear(x)[:, 0]

  model = Line(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, mj.momentum(0.5, 0.9), wrt=nnx.Param)

  @nnx.jit
  def step(model, optimizer):
    loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
    optimizer.update(model, grads)
    return loss

  for _ in range(300):
    loss = step(model, optimizer)
  assert float(loss) < 1e-6
  # With mean(x) = 0 (the grid is symmetric), the loss at the final parameters
  # is (b − 2)² + (a − 3)²·mean(x²): it bounds each error, its root off by the
  # residuals' rounding (3 roundings of values up to 5: 15·U32).
  root = np.sqrt(float(jnp.mean((model(x) - y) ** 2))) + 15 * _tolerances.U32
  np.testing.assert_allclose(model.linear.bias[...][0], 2.0, rtol=0, atol=root)
  np.testing.assert_allclose(
    model.linear.kernel[...][0, 0], 3.0, rtol=0, atol=root / np.sqrt(float(jnp.mean(x**2)))
  )
