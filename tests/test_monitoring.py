"""record_grad_norms: global and per-leaf gradient norms carried in the optimizer state."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_jax as mj
from _problems import least_squares


def test_records_norms_and_passes_updates_through():
  loss_fn, params = least_squares(0)
  tx = optax.chain(mj.record_grad_norms(), mj.sgd(0.1))
  state = tx.init(params)
  np.testing.assert_array_equal(mj.grad_norms(state).global_norm, 0.0)
  grads = jax.grad(loss_fn)(params)
  updates, state = tx.update(grads, state)
  norms = mj.grad_norms(state)
  expected = {k: np.linalg.norm(np.asarray(v)) for k, v in grads.items()}
  for key, value in expected.items():
    np.testing.assert_allclose(norms.leaf_norms[key], value, rtol=1e-6)
  np.testing.assert_allclose(
    norms.global_norm, np.sqrt(sum(v**2 for v in expected.values())), rtol=1e-6
  )
  jax.tree.map(lambda u, g: np.testing.assert_allclose(u, -0.1 * g, rtol=1e-6), updates, grads)
  assert float(optax.tree.get(state, "global_norm")) == float(norms.global_norm)


def test_placed_after_clipping_records_clipped_norms():
  loss_fn, params = least_squares(0)
  tx = optax.chain(optax.clip_by_global_norm(0.5), mj.record_grad_norms(), mj.momentum(0.1))
  _, state = tx.update(jax.grad(loss_fn)(params), tx.init(params))
  np.testing.assert_allclose(mj.grad_norms(state).global_norm, 0.5, rtol=1e-6)


def test_state_can_be_carried_through_scan():
  loss_fn, params = least_squares(1)
  tx = optax.chain(mj.record_grad_norms(), mj.momentum(0.05, 0.9))

  def step(carry, _):
    p, state = carry
    updates, state = tx.update(jax.grad(loss_fn)(p), state, p)
    return (optax.apply_updates(p, updates), state), mj.grad_norms(state).leaf_norms

  _, per_step = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=20))(params)
  assert per_step["w"].shape == (20,)
  assert float(per_step["w"][-1]) < float(per_step["w"][0])


def test_bfloat16_gradients_give_float32_norms():
  params = {"w": jnp.ones((4, 4), jnp.bfloat16)}
  tx = mj.record_grad_norms()
  _, state = tx.update(params, tx.init(params))
  assert state.global_norm.dtype == jnp.float32
  np.testing.assert_allclose(state.global_norm, 4.0)


def test_grad_norms_requires_exactly_one_recorder():
  _, params = least_squares(0)
  with pytest.raises(ValueError, match="found 0"):
    mj.grad_norms(mj.sgd(0.1).init(params))
  twice = optax.chain(mj.record_grad_norms(), mj.record_grad_norms())
  with pytest.raises(ValueError, match="found 2"):
    mj.grad_norms(twice.init(params))


def test_named_norms_uses_readable_paths():
  leaf_norms = {"layers": [{"kernel": 1.0, "bias": 2.0}], "head": {"kernel": 3.0}}
  assert mj.named_norms(leaf_norms) == {
    "head/kernel": 3.0,
    "layers/0/bias": 2.0,
    "layers/0/kernel": 1.0,
  }
