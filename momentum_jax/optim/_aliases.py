"""Ready optimizers: each a short ``optax.chain`` of a scaling and the learning rate.

This module holds the shared links and the momentum family (``sgd``,
``momentum``, ``nesterov``); :mod:`momentum_jax.optim._adaptive_aliases` the
adaptive ones (``rmsprop``, ``adagrad``, ``adam``, ``adamw``).

The maths lives in the transformations, each update rule written once in its
docstring (:func:`add_decayed_weights`, :func:`scale_by_momentum`,
:func:`scale_by_rms`, :func:`scale_by_adagrad`, :func:`scale_by_adam`) with
its paper; these aliases only compose them, and
``optax.scale_by_learning_rate`` turns the learning rate (a number, an array,
a tracer or a schedule) into the final ``-learning_rate`` scaling. Each alias
says which optax and torch optimizers it equals step by step; docs/optimizers.md's
table gathers them.
"""

from __future__ import annotations

import jax
import optax

from momentum_jax.optim import _checks, _momentum, _weight_decay

ScalarOrSchedule = optax.ScalarOrSchedule
DType = jax.typing.DTypeLike | None

# Every alias starts with the same link, so weight_decay and maximize mean the
# same everywhere (and the state has the same structure whatever their values).
_WEIGHT_DECAY_ARGS = """weight_decay: torch's coupled weight decay (an L2 penalty), >= 0: the
      gradient becomes ``g + weight_decay · w`` before anything else; see
      :func:`momentum_jax.add_decayed_weights`.
    maximize: Ascend the objective instead (torch's ``maximize``): the
      gradient is negated first, before the weight decay is added."""


def _learning_rate(learning_rate: ScalarOrSchedule) -> optax.GradientTransformation:
  _checks.check_learning_rate(learning_rate)
  return optax.scale_by_learning_rate(learning_rate)


def _gradient(weight_decay, maximize) -> optax.GradientTransformation:
  return _weight_decay.add_decayed_weights(weight_decay, maximize=maximize)


def _with_weight_decay_args(alias):
  """Writes the shared ``weight_decay`` and ``maximize`` arguments into a docstring."""
  alias.__doc__ = alias.__doc__.replace("{weight_decay}", _WEIGHT_DECAY_ARGS)
  return alias


@_with_weight_decay_args
def sgd(
  learning_rate: ScalarOrSchedule,
  *,
  weight_decay: jax.typing.ArrayLike = 0.0,
  maximize: bool = False,
) -> optax.GradientTransformation:
  r"""Plain gradient descent: ``w ← w − learning_rate · g``.

  Batch, stochastic and mini-batch GD differ only in the data that produced
  ``g``. Equals ``optax.sgd(learning_rate)`` and ``torch.optim.SGD(lr)``;
  with ``weight_decay``, ``torch.optim.SGD(lr, weight_decay=...)`` and
  ``optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(lr))``.

  Args:
    learning_rate: A number >= 0, an array, a tracer, or a schedule
      ``step -> value``.
    {weight_decay}

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> import momentum_jax as mj
    >>> tx = mj.sgd(0.1)
    >>> params = jnp.array([1.0])
    >>> updates, _ = tx.update(jnp.array([2.0]), tx.init(params))
    >>> optax.apply_updates(params, updates)
    Array([0.8], dtype=float32)
  """
  return optax.chain(_gradient(weight_decay, maximize), _learning_rate(learning_rate))


@_with_weight_decay_args
def momentum(
  learning_rate: ScalarOrSchedule,
  beta: jax.typing.ArrayLike = 0.9,
  *,
  ema: bool = True,
  nesterov: bool = False,
  weight_decay: jax.typing.ArrayLike = 0.0,
  maximize: bool = False,
  accumulator_dtype: DType = None,
) -> optax.GradientTransformation:
  r"""Gradient descent with momentum, in the EMA (default) or heavy-ball form.

  ``w ← w − learning_rate · v``, with the velocity ``v`` of
  :func:`scale_by_momentum` (the update rule of both forms, and Nesterov's
  look-ahead, are written there); ``beta = 0`` is plain gradient descent.

  Equals, step by step:

  * ``ema=False``: ``optax.sgd(learning_rate, momentum=beta, nesterov=...)``
    and ``torch.optim.SGD(lr, momentum=beta, nesterov=...)``.
  * ``ema=True``: ``optax.chain(optax.ema(beta, debias=False),
    optax.scale_by_learning_rate(learning_rate))``, and
    ``torch.optim.SGD(lr * (1 − beta), momentum=beta)``.
  * with ``weight_decay=wd``: the same torch optimizers with
    ``weight_decay=wd``, and the optax ones after
    ``optax.add_decayed_weights(wd)``.

  .. warning::
    ``torch.optim.SGD(lr, momentum=beta, dampening=beta)`` is *not* the EMA
    form: torch skips the dampening on the first step (``v₁ = g₁``, not
    ``(1 − beta) · g₁``), and that first gradient's excess weight decays only
    as ``beta**t``.

  Args:
    learning_rate: A number >= 0, an array, a tracer, or a schedule.
    beta: Momentum decay, in [0, 1). A number, an array or a tracer.
    ema: EMA form (True) or heavy-ball form (False).
    nesterov: Nesterov's accelerated gradient.
    {weight_decay}
    accumulator_dtype: The velocity's dtype (``optax.sgd``'s), e.g.
      ``jnp.float32`` for bfloat16 parameters; ``None`` keeps theirs.

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax, jax.numpy as jnp, optax
    >>> import momentum_jax as mj
    >>> loss = lambda w: jnp.sum(w**2)
    >>> tx = mj.momentum(learning_rate=0.1, beta=0.9)
    >>> w = jnp.array([1.0, -2.0])
    >>> state = tx.init(w)
    >>> for _ in range(3):
    ...   updates, state = tx.update(jax.grad(loss)(w), state)
    ...   w = optax.apply_updates(w, updates)
    >>> w.round(4)  # v: 0.2, 0.376, 0.52688 (times the sign of w)
    Array([ 0.8897, -1.7794], dtype=float32)
  """
  return optax.chain(
    _gradient(weight_decay, maximize),
    _momentum.scale_by_momentum(
      beta, ema=ema, nesterov=nesterov, accumulator_dtype=accumulator_dtype
    ),
    _learning_rate(learning_rate),
  )


@_with_weight_decay_args
def nesterov(
  learning_rate: ScalarOrSchedule,
  beta: jax.typing.ArrayLike = 0.9,
  *,
  ema: bool = False,
  weight_decay: jax.typing.ArrayLike = 0.0,
  maximize: bool = False,
  accumulator_dtype: DType = None,
) -> optax.GradientTransformation:
  r"""Nesterov's accelerated gradient: ``momentum(..., nesterov=True)``.

  The heavy-ball form by default, as in torch and optax; the update rule is
  :func:`scale_by_momentum`'s with ``nesterov=True``. Equals
  ``optax.sgd(learning_rate, momentum=beta, nesterov=True)`` and
  ``torch.optim.SGD(lr, momentum=beta, nesterov=True)`` step by step (with
  ``weight_decay``, as in :func:`momentum`).

  Args:
    learning_rate: A number >= 0, an array, a tracer, or a schedule.
    beta: Momentum decay, in [0, 1).
    ema: EMA form (True) or heavy-ball form (False).
    {weight_decay}
    accumulator_dtype: The velocity's dtype; ``None`` keeps the parameters'.

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax.numpy as jnp
    >>> import momentum_jax as mj
    >>> tx = mj.nesterov(learning_rate=0.1, beta=0.9)
    >>> updates, _ = tx.update(jnp.array([1.0]), tx.init(jnp.zeros(1)))
    >>> updates
    Array([-0.19], dtype=float32)
  """
  return momentum(
    learning_rate,
    beta,
    ema=ema,
    nesterov=True,
    weight_decay=weight_decay,
    maximize=maximize,
    accumulator_dtype=accumulator_dtype,
  )
