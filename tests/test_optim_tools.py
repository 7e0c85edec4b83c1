"""The measurement and descent helpers of the optimizer toolkit, against closed forms."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import momentum_jax as mj


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9])
def test_impulse_response_of_momentum_is_geometric(beta):
  k = np.arange(30)
  np.testing.assert_allclose(
    mj.impulse_response(mj.scale_by_momentum(beta), 30), (1 - beta) * beta**k, rtol=1e-5, atol=1e-12
  )
  np.testing.assert_allclose(
    mj.impulse_response(mj.scale_by_momentum(beta, ema=False), 30), beta**k, rtol=1e-5, atol=1e-12
  )


def test_impulse_response_of_nesterov_looks_one_step_ahead():
  # Heavy-ball Nesterov: update_k = g_k + beta * v_k, so 1 + beta first, then beta**(k + 1).
  beta, k = 0.5, np.arange(1, 10)
  response = mj.impulse_response(mj.scale_by_momentum(beta, ema=False, nesterov=True), 10)
  assert response[0] == pytest.approx(1 + beta)
  np.testing.assert_allclose(response[1:], beta ** (k + 1), rtol=1e-6)


@pytest.mark.parametrize("steps", [0, -1, 2.0, True])
def test_impulse_response_rejects_bad_steps(steps):
  with pytest.raises(ValueError, match="steps"):
    mj.impulse_response(mj.scale_by_momentum(0.9), steps)


def test_minimize_follows_gradient_descent_on_a_quadratic():
  # f(w) = c·|w|²/2: GD multiplies w by (1 − lr·c) each step.
  c, lr, steps = 2.0, 0.1, 8
  w0 = jnp.array([1.0, -3.0])
  params, losses = mj.minimize(lambda w: 0.5 * c * jnp.sum(w**2), w0, mj.sgd(lr), steps)
  factor = (1 - lr * c) ** np.arange(steps + 1)
  np.testing.assert_allclose(params, w0 * factor[-1], rtol=1e-5)
  np.testing.assert_allclose(losses, 0.5 * c * float(jnp.sum(w0**2)) * factor[:-1] ** 2, rtol=1e-5)


def test_minimize_takes_pytrees_and_zero_steps():
  params = {"w": jnp.ones(()), "b": jnp.zeros(())}
  same, losses = mj.minimize(lambda p: p["w"] ** 2 + p["b"] ** 2, params, mj.momentum(0.1), 0)
  assert losses.shape == (0,)
  assert float(same["w"]) == 1.0 and float(same["b"]) == 0.0
  with pytest.raises(ValueError, match="steps"):
    mj.minimize(lambda p: p["w"] ** 2, params, mj.sgd(0.1), -1)
