"""Momentum in its two textbook forms, and Nesterov's variant of each."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from momentum_jax.optim import _checks, _tree


class MomentumState(NamedTuple):
  """State of :func:`scale_by_momentum`: the velocity ``v``, shaped like the params."""

  velocity: optax.Updates


def scale_by_momentum(
  beta: jax.typing.ArrayLike = 0.9,
  *,
  ema: bool = True,
  nesterov: bool = False,
  accumulator_dtype: jax.typing.DTypeLike | None = None,
) -> optax.GradientTransformation:
  r"""Accumulates gradients into a velocity, in the EMA or the heavy-ball form.

  With ``ema=True`` (the form of the tutorials), for a gradient ``g``::

    v ← beta · v + (1 − beta) · g          update = v

  With ``ema=False`` (the heavy-ball form of ``torch.optim.SGD`` and
  ``optax.trace``)::

    v ← beta · v + g                       update = v

  ``v`` starts at zero. With ``nesterov=True`` the velocity is updated the same
  way and the update looks one step ahead: ``update = beta · v + (1 − beta) · g``
  (EMA) or ``beta · v + g`` (heavy ball, as torch and optax do).

  Expanding the EMA recursion, the gradient ``k`` steps back weighs
  ``(1 − beta) · beta**k``: ``beta**k`` relative to the newest one. The EMA
  form is the heavy-ball form with gradients scaled by ``1 − beta``, so after
  a learning-rate scaling ``momentum(lr, beta, ema=True)`` takes the same steps
  as ``momentum(lr * (1 − beta), beta, ema=False)``: at steady state the
  heavy-ball step is ``lr/(1 − beta)`` times the gradient, the EMA one ``lr``
  times it.

  ``beta = 0`` gives the gradient back unchanged and keeps the same state, so
  ``beta`` may be swept through zero inside one ``jax.vmap``.

  Args:
    beta: Decay of the velocity, in [0, 1). A number, an array or a tracer.
    ema: Scale the new gradient by ``1 − beta`` (EMA form) or not (heavy ball).
    nesterov: Use Nesterov's look-ahead update.
    accumulator_dtype: The velocity's dtype (``optax.sgd``'s
      ``accumulator_dtype``), e.g. ``jnp.float32`` for bfloat16 parameters;
      ``None`` keeps the parameters' dtype. The update has the gradient's.

  Returns:
    An :class:`optax.GradientTransformation` with state :class:`MomentumState`.

  References:
    Polyak, `Some methods of speeding up the convergence of iteration methods
    <https://doi.org/10.1016/0041-5553(64)90137-5>`_, 1964 (heavy ball).

    Nesterov, `A method for solving the convex programming problem with
    convergence rate O(1/k²)`, 1983.

    Sutskever, Martens, Dahl & Hinton, `On the importance of initialization
    and momentum in deep learning
    <https://proceedings.mlr.press/v28/sutskever13.html>`_, ICML 2013 (the
    look-ahead as torch and optax write it).

  Example:
    >>> import jax.numpy as jnp
    >>> import momentum_jax as mj
    >>> tx = mj.scale_by_momentum(beta=0.5)
    >>> state = tx.init(jnp.zeros(2))
    >>> update, state = tx.update(jnp.array([2.0, 4.0]), state)
    >>> update
    Array([1., 2.], dtype=float32)
  """
  _checks.check_unit_interval("beta", beta)

  def init_fn(params):
    return MomentumState(velocity=optax.tree.zeros_like(params, dtype=accumulator_dtype))

  def update_fn(updates, state, params=None):
    del params

    def leaf(g, v):
      # The same expressions as optax.ema / optax.trace, so the results are
      # bit-identical to optax's; casting back keeps bfloat16 state bfloat16
      # when beta arrives as a float32 array (as it does in a sweep).
      # Operand order as in optax too: XLA's CPU backend fuses one multiply
      # into a multiply-add, and which one depends on the order.
      pushed = (1 - beta) * g if ema else g
      new_v = pushed + beta * v
      update = pushed + beta * new_v if nesterov else new_v
      return update.astype(g.dtype), new_v.astype(v.dtype)

    new_updates, velocity = _tree.map_multi(leaf, 2, updates, state.velocity)
    return new_updates, MomentumState(velocity=velocity)

  return optax.GradientTransformation(init_fn, update_fn)


def impulse_response(tx: optax.GradientTransformation, steps: int = 40) -> np.ndarray:
  """The updates of ``tx`` after one unit gradient then zeros: a gradient's weight k steps on.

  ``tx`` runs on a single float32 parameter fed the gradients ``1, 0, 0, ...``;
  entry ``k`` is its update ``k`` steps after the unit gradient, so for a linear
  transformation it is the weight the gradient of ``k`` steps back has in
  every update. For :func:`scale_by_momentum` that is ``(1 − β)·β**k`` in the
  EMA form and ``β**k`` in the heavy-ball form.

  Args:
    tx: A transformation of the gradients (no learning rate needed).
    steps: How many updates to take, >= 1.

  Returns:
    The ``steps`` updates, float64.

  Raises:
    ValueError: If ``steps`` is not an integer >= 1.

  Example:
    >>> import momentum_jax as mj
    >>> mj.impulse_response(mj.scale_by_momentum(0.5), steps=3)
    array([0.5  , 0.25 , 0.125])
  """
  if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
    raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
  state = tx.init(jnp.zeros(1))
  out = []
  for k in range(steps):
    update, state = tx.update(jnp.array([1.0 if k == 0 else 0.0]), state)
    out.append(float(update[0]))
  return np.array(out)
