"""Full-batch descent on a pure loss function, with any optax transformation."""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np
import optax


def minimize(
  loss_fn: Callable[[optax.Params], jax.Array],
  params: optax.Params,
  tx: optax.GradientTransformation,
  steps: int,
) -> tuple[optax.Params, jax.Array]:
  """Takes ``steps`` steps of ``tx`` on ``loss_fn``, as one jitted ``jax.lax.scan``.

  Each step evaluates the loss and its gradient at the current parameters,
  then applies ``tx``'s update (``tx`` is given the parameters too).

  Args:
    loss_fn: A pure function of the parameters to a scalar.
    params: The initial parameters, any pytree of arrays.
    tx: Any optax ``GradientTransformation``, e.g. ``mj.momentum(0.1)``.
    steps: Number of steps, an int >= 0.

  Returns:
    ``(params, losses)``: the parameters after the last step, and the loss
    before each step, shape ``(steps,)``.

  Raises:
    ValueError: If ``steps`` is not an integer >= 0.

  Example:
    >>> import jax.numpy as jnp
    >>> import momentum_jax as mj
    >>> params, losses = mj.minimize(lambda w: jnp.sum(w ** 2), jnp.ones(2), mj.sgd(0.25), 2)
    >>> params, losses
    (Array([0.25, 0.25], dtype=float32), Array([2. , 0.5], dtype=float32))
  """
  if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
    raise ValueError(f"steps must be an integer >= 0, got {steps!r}")

  def step(carry, _):
    p, state = carry
    loss, grads = jax.value_and_grad(loss_fn)(p)
    updates, state = tx.update(grads, state, p)
    return (optax.apply_updates(p, updates), state), loss

  def run(p):
    (p, _), losses = jax.lax.scan(step, (p, tx.init(p)), None, length=int(steps))
    return p, losses

  return jax.jit(run)(params)
