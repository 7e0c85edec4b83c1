"""Small random problems shared by the optimizer tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax


def least_squares(seed: int, dtype=jnp.float32):
  """A random least-squares problem with two leaves of different shapes.

  Returns ``(loss_fn, params)``; the loss is ``mean((x @ w + b - y)**2)``.
  """
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(32, 5)), dtype)
  y = jnp.asarray(rng.normal(size=(32, 3)), dtype)
  params = {
    "w": jnp.asarray(rng.normal(size=(5, 3)), dtype),
    "b": jnp.asarray(rng.normal(size=(3,)), dtype),
  }

  def loss_fn(p):
    return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)

  return loss_fn, params


def trajectory(tx: optax.GradientTransformation, loss_fn, params, steps: int):
  """Params after each of ``steps`` updates, stacked on a leading axis (jitted scan)."""

  def step(carry, _):
    p, state = carry
    updates, state = tx.update(jax.grad(loss_fn)(p), state, p)
    p = optax.apply_updates(p, updates)
    return (p, state), p

  @jax.jit
  def run(p):
    _, path = jax.lax.scan(step, (p, tx.init(p)), None, length=steps)
    return path

  return run(params)
