"""The measurement and descent helpers of the optimizer toolkit, against closed forms."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import momentum_jax as mj
from _tolerances import U32


def assert_relative(actual, expected, rtol) -> None:
  """``|actual − expected| ≤ rtol·|expected|`` element by element (``rtol`` may vary)."""
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  error = np.abs(actual - expected)
  bound = np.broadcast_to(rtol * np.abs(expected), error.shape)
  worst = np.argmax(error - bound)
  assert (error <= bound).all(), f"at {worst}: |error| {error[worst]:.3g} > {bound[worst]:.3g}"


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9])
def test_impulse_response_of_momentum_is_geometric(beta):
  # In float32, beta**k is beta rounded (k·U32 relative), times itself k
  # times (k roundings); the EMA's 1 − beta carries beta's rounding times
  # beta / (1 − beta) and rounds once more. Zero gradients add exact zeros.
  k = np.arange(30)
  rtol = 2 * k * U32
  assert_relative(mj.impulse_response(mj.scale_by_momentum(beta, ema=False), 30), beta**k, rtol)
  ema = mj.impulse_response(mj.scale_by_momentum(beta), 30)
  rtol = rtol + (1 + beta / (1 - beta)) * U32
  assert_relative(ema, (1 - beta) * beta**k, rtol)


def test_impulse_response_of_nesterov_looks_one_step_ahead():
  # Heavy-ball Nesterov: update_k = g_k + beta * v_k, so 1 + beta first, then beta**(k + 1).
  beta, k = 0.5, np.arange(1, 10)
  response = mj.impulse_response(mj.scale_by_momentum(beta, ema=False, nesterov=True), 10)
  # Exact: sums and products of powers of 2 (beta = 0.5).
  assert response[0] == 1 + beta
  np.testing.assert_array_equal(response[1:], beta ** (k + 1))


@pytest.mark.parametrize("steps", [0, -1, 2.0, True])
def test_impulse_response_rejects_bad_steps(steps):
  with pytest.raises(ValueError, match="steps"):
    mj.impulse_response(mj.scale_by_momentum(0.9), steps)


def test_minimize_follows_gradient_descent_on_a_quadratic():
  # f(w) = c·|w|²/2: GD multiplies w by (1 − lr·c) each step.
  c, lr, steps = 2.0, 0.1, 8
  w0 = jnp.array([1.0, -3.0])
  params, losses = mj.minimize(lambda w: 0.5 * c * jnp.sum(w**2), w0, mj.sgd(lr), steps)
  t = np.arange(steps + 1)
  factor = (1 - lr * c) ** t
  # A float32 step w − lr·(c·w) rounds lr, the gradient and the product (each
  # U32 of lr·c·|w| = |w| / 4 of the result 0.8·|w|) and the difference: at
  # most 1.75·U32 relative a step, 2·t·U32 after t. The loss doubles that in
  # the square and rounds the squares and their sum: (4·t + 3)·U32.
  assert_relative(params, np.asarray(w0, np.float64) * factor[-1], 2 * steps * U32)
  expected = 0.5 * c * float(jnp.sum(w0**2)) * factor[:-1] ** 2
  assert_relative(losses, expected, (4 * t[:-1] + 3) * U32)


def test_minimize_takes_pytrees_and_zero_steps():
  params = {"w": jnp.ones(()), "b": jnp.zeros(())}
  same, losses = mj.minimize(lambda p: p["w"] ** 2 + p["b"] ** 2, params, mj.momentum(0.1), 0)
  assert losses.shape == (0,)
  assert float(same["w"]) == 1.0 and float(same["b"]) == 0.0
  with pytest.raises(ValueError, match="steps"):
    mj.minimize(lambda p: p["w"] ** 2, params, mj.sgd(0.1), -1)
