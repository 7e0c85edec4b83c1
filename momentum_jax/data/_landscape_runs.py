"""An optimizer run on a 2-D landscape: its path, and how often it reaches the global minimum."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from momentum_jax.data._landscapes import Landscape, get_landscape


def run_on_landscape(
  landscape: Landscape | str,
  tx: optax.GradientTransformation,
  start: jax.typing.ArrayLike | None = None,
  steps: int = 100,
) -> jax.Array:
  r"""Runs the optimizer ``tx`` on ``landscape`` for ``steps`` full-gradient steps.

  ``xy_{t+1} = xy_t + update(∇f(xy_t))``, with ``tx`` fed the gradient and the
  current point, as one jitted ``jax.lax.scan``. ``tx`` is a closure, so each
  call compiles afresh; to sweep a hyperparameter, ``jax.vmap`` a function
  that builds ``tx`` from it (momentum_jax optimizers accept tracers) and one
  compilation covers the sweep.

  Args:
    landscape: A :class:`Landscape` or its registry name.
    tx: Any optax ``GradientTransformation``, e.g. ``mj.momentum(0.01)``.
    start: Starting point, shape ``(2,)``; ``None``: ``landscape.start``.
    steps: Number of steps, an int >= 0.

  Returns:
    The trajectory, shape ``(steps + 1, 2)``: the start, then each iterate.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> import momentum_jax as mj
    >>> from momentum_jax.data import run_on_landscape
    >>> run_on_landscape("rosenbrock", mj.sgd(1e-3), steps=10).shape
    (11, 2)
    >>> sweep = jax.vmap(
    ...     lambda lr: run_on_landscape("plateau", mj.sgd(lr), steps=10))
    >>> sweep(jnp.array([0.5, 1.0, 1.5])).shape
    (3, 11, 2)
  """
  if isinstance(landscape, str):
    landscape = get_landscape(landscape)
  if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
    raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
  if start is None:
    start = landscape.start
  start = jnp.asarray(start, dtype=jnp.result_type(float))
  if start.shape != (2,):
    raise ValueError(f"start must have shape (2,), got {start.shape}")
  loss_grad = jax.grad(landscape.fn)

  def run(start):
    def step(carry, _):
      xy, state = carry
      updates, state = tx.update(loss_grad(xy), state, xy)
      xy = optax.apply_updates(xy, updates)
      return (xy, state), xy

    _, path = jax.lax.scan(step, (start, tx.init(start)), length=int(steps))
    return jnp.concatenate([start[None], path])

  return jax.jit(run)(start)


def reach_fraction(
  landscape: Landscape | str,
  tx: optax.GradientTransformation,
  starts: jax.typing.ArrayLike,
  steps: int = 100,
  tolerance: float = 0.1,
) -> jax.Array:
  """The fraction of ``starts`` from which ``tx`` ends within ``tolerance`` of a global minimum.

  Each start is run for ``steps`` steps (:func:`run_on_landscape`, vmapped
  over the starts); a path counts if its last point is closer than
  ``tolerance`` to the nearest global minimum
  (:meth:`Landscape.distance_to_global_minimum`). ``tx`` may be built from
  traced hyperparameters, so ``jax.vmap`` over a grid of them measures a
  whole sweep in one program.

  Args:
    landscape: A :class:`Landscape` or its registry name.
    tx: Any optax ``GradientTransformation``.
    starts: The starting points, shape ``(n, 2)``, e.g. :meth:`Landscape.start_grid`.
    steps: Number of steps from each start, an int >= 0.
    tolerance: How close to a global minimum the last point must be, > 0.

  Returns:
    A float32 scalar in ``[0, 1]``.

  Example:
    >>> import momentum_jax as mj
    >>> from momentum_jax.data import get_landscape, reach_fraction
    >>> well = get_landscape("tilted_double_well")
    >>> float(reach_fraction(well, mj.sgd(0.01), well.start_grid(1), steps=0, tolerance=0.1))
    0.0
  """
  if isinstance(landscape, str):
    landscape = get_landscape(landscape)

  def reached(start):
    path = run_on_landscape(landscape, tx, start, steps)
    return landscape.distance_to_global_minimum(path[-1]) < tolerance

  return jnp.mean(jax.vmap(reached)(jnp.asarray(starts, jnp.float32)))
