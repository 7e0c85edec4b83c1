"""record_grad_norms: global and per-leaf gradient norms carried in the optimizer state."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_jax as mj
from _problems import least_squares
from _tolerances import U32


def _norm_rounding(sizes) -> float:
  """Relative bound of our float32 global norm over leaves of these ``sizes``.

  A leaf's ``n`` squares and their ``n − 1`` sums (positive terms: within
  ``n·U32`` of the sum), halved by the root, plus the root's own rounding:
  ``(n/2 + 1)·U32``; the global norm squares the ``L`` leaf norms (doubling
  their error, one rounding more), sums them (``L − 1``) and takes a root
  (halving those ``L``, one more): ``(L/2 + 1)·U32`` on top.
  """
  return (max(sizes) / 2 + 1) * U32 + (len(sizes) / 2 + 1) * U32


def test_records_norms_and_passes_updates_through():
  loss_fn, params = least_squares(0)
  tx = optax.chain(mj.record_grad_norms(), mj.sgd(0.1))
  state = tx.init(params)
  np.testing.assert_array_equal(mj.grad_norms(state).global_norm, 0.0)
  grads = jax.grad(loss_fn)(params)
  updates, state = tx.update(grads, state)
  norms = mj.grad_norms(state)
  # Against the exact norms of the float32 gradients (in float64).
  exact = {k: np.linalg.norm(np.asarray(v, np.float64)) for k, v in grads.items()}
  for key, value in exact.items():
    bound = (grads[key].size / 2 + 1) * U32 * value
    assert abs(float(norms.leaf_norms[key]) - value) <= bound, key
  global_norm = np.sqrt(sum(v**2 for v in exact.values()))
  bound = _norm_rounding([g.size for g in grads.values()]) * global_norm
  assert abs(float(norms.global_norm) - global_norm) <= bound
  # −0.1·g in float32: 0.1 rounded to float32 and the product rounded, U32 each.
  for key, g in grads.items():
    exact_update = -0.1 * np.asarray(g, np.float64)
    error = np.abs(np.asarray(updates[key], np.float64) - exact_update)
    assert np.all(error <= 2 * U32 * np.abs(exact_update)), key
  assert float(optax.tree.get(state, "global_norm")) == float(norms.global_norm)


def test_placed_after_clipping_records_clipped_norms():
  loss_fn, params = least_squares(0)
  tx = optax.chain(optax.clip_by_global_norm(0.5), mj.record_grad_norms(), mj.momentum(0.1))
  grads = jax.grad(loss_fn)(params)
  _, state = tx.update(grads, tx.init(params))
  # optax's norm of all n gradients (n squares and sums, the root: (n/2 + 1)·U32),
  # its division and product by 0.5 (2·U32 on each clipped value), then ours.
  n = sum(g.size for g in grads.values())
  clipped = (n / 2 + 1) * U32 + 2 * U32
  bound = 0.5 * (clipped + _norm_rounding([g.size for g in grads.values()]))
  assert abs(float(mj.grad_norms(state).global_norm) - 0.5) <= bound


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
  # 16 squares of 1, their sum 16, √16 = 4, then 4² and √16 again: all exact.
  np.testing.assert_array_equal(state.global_norm, 4.0)


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
