"""Ready adaptive optimizers: ``rmsprop``, ``adagrad``, ``adam``, ``adamw``.

Each is a short ``optax.chain`` of the shared first link (weight decay and
``maximize``), a scaling written once in its transformation's docstring, and
the learning rate, as the momentum family of
:mod:`momentum_jax.optim._aliases` is.
"""

from __future__ import annotations

import jax
import optax

from momentum_jax.optim import _adaptive, _checks, _momentum, _weight_decay
from momentum_jax.optim._aliases import (
  DType,
  ScalarOrSchedule,
  _gradient,
  _learning_rate,
  _with_weight_decay_args,
)


@_with_weight_decay_args
def rmsprop(
  learning_rate: ScalarOrSchedule,
  decay: jax.typing.ArrayLike = 0.9,
  eps: jax.typing.ArrayLike = 1e-8,
  *,
  eps_in_sqrt: bool = True,
  centered: bool = False,
  momentum: jax.typing.ArrayLike | None = 0.0,
  initial_scale: jax.typing.ArrayLike = 0.0,
  weight_decay: jax.typing.ArrayLike = 0.0,
  maximize: bool = False,
) -> optax.GradientTransformation:
  r"""RMSProp: gradients divided by the root of an EMA of their squares.

  The scaling ``s(g)`` is :func:`scale_by_rms`'s (``eps`` inside the root by
  default, as in the tutorials and ``optax.rmsprop``; outside with
  ``eps_in_sqrt=False``, as torch; ``centered``). With ``momentum = m`` the
  scaled gradients go through a heavy-ball buffer before the learning rate,
  exactly as torch does::

    b ← m · b + s(g)               w ← w − learning_rate · b

  Equals, step by step: ``optax.rmsprop(learning_rate, decay, eps)`` by
  default; ``torch.optim.RMSprop(lr, alpha=decay, eps=eps, centered=...,
  momentum=..., weight_decay=...)`` with ``eps_in_sqrt=False``.

  .. warning::
    ``optax.rmsprop`` applies its momentum *after* the learning rate; the two
    agree at a constant learning rate and differ under a schedule, where
    momentum_jax follows torch. ``momentum=0.0`` keeps the (zero-decay) buffer
    so that momentum can be swept through 0 with the same state structure;
    ``momentum=None`` drops it, saving a buffer the size of the parameters.

  Args:
    learning_rate: A number >= 0, an array, a tracer, or a schedule.
    decay: Decay of the moving averages, in [0, 1) (torch's ``alpha``).
    eps: Added to the denominator, > 0.
    eps_in_sqrt: ``eps`` inside the root (True) or outside (False, torch).
    centered: Divide by the estimated variance rather than the second moment.
    momentum: Heavy-ball momentum on the scaled gradients, in [0, 1), or
      ``None`` for no buffer.
    initial_scale: Initial value of ``E[g²]``, >= 0.
    {weight_decay}

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax.numpy as jnp
    >>> import momentum_jax as mj
    >>> tx = mj.rmsprop(learning_rate=0.01)
    >>> updates, _ = tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))
    >>> updates.round(6)  # -0.01 * 2 / sqrt(0.1 * 4 + 1e-8)
    Array([-0.031623], dtype=float32)
  """
  rms = _adaptive.scale_by_rms(
    decay,
    eps,
    eps_in_sqrt=eps_in_sqrt,
    centered=centered,
    initial_scale=initial_scale,
  )
  gradient = _gradient(weight_decay, maximize)
  if momentum is None:
    return optax.chain(gradient, rms, _learning_rate(learning_rate))
  _checks.check_unit_interval("momentum", momentum)
  return optax.chain(
    gradient,
    rms,
    _momentum.scale_by_momentum(momentum, ema=False),
    _learning_rate(learning_rate),
  )


@_with_weight_decay_args
def adagrad(
  learning_rate: ScalarOrSchedule,
  eps: jax.typing.ArrayLike = 1e-10,
  *,
  initial_accumulator_value: jax.typing.ArrayLike = 0.0,
  lr_decay: jax.typing.ArrayLike = 0.0,
  weight_decay: jax.typing.ArrayLike = 0.0,
  maximize: bool = False,
) -> optax.GradientTransformation:
  r"""AdaGrad: gradients divided by the root of the sum of all past squares.

  ``w ← w − lr_t · s(g)`` at step ``t = 1, 2, …``, with the scaling ``s(g)``
  of :func:`scale_by_adagrad` and ``lr_t = learning_rate / (1 + (t − 1) ·
  lr_decay)``. Equals ``torch.optim.Adagrad(lr, eps=eps,
  initial_accumulator_value=..., lr_decay=..., weight_decay=...)`` step by
  step. ``lr_decay`` divides the learning rate, a schedule too (``lr_t`` is
  then ``learning_rate(t − 1) / (1 + (t − 1) · lr_decay)``, as under a torch
  scheduler); the state counts the steps whatever its value.

  .. warning::
    ``optax.adagrad`` puts ``eps`` inside the root (``g / √(G + eps)``, default
    ``eps=1e-7``) and starts ``G`` at 0.1 where torch and momentum_jax start
    at 0; with ``initial_accumulator_value=0.0`` given to optax, the two
    agree when ``eps`` is negligible against ``√G``.

  Args:
    learning_rate: A number >= 0, an array, a tracer, or a schedule.
    eps: Added to the denominator outside the root, > 0.
    initial_accumulator_value: Initial value of ``G``, >= 0.
    lr_decay: Decay of the learning rate, >= 0 (torch's ``lr_decay``).
    {weight_decay}

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax.numpy as jnp
    >>> import momentum_jax as mj
    >>> tx = mj.adagrad(learning_rate=0.5)
    >>> updates, _ = tx.update(jnp.array([3.0]), tx.init(jnp.zeros(1)))
    >>> updates  # -0.5 * 3 / sqrt(9)
    Array([-0.5], dtype=float32)
  """
  _checks.check_learning_rate(learning_rate)
  _checks.check_non_negative("lr_decay", lr_decay)

  def decayed_learning_rate(count):
    # count is t − 1: optax counts the updates already taken.
    rate = learning_rate(count) if callable(learning_rate) else learning_rate
    return rate / (1 + count * lr_decay)

  return optax.chain(
    _gradient(weight_decay, maximize),
    _adaptive.scale_by_adagrad(eps, initial_accumulator_value=initial_accumulator_value),
    optax.scale_by_learning_rate(decayed_learning_rate),
  )


@_with_weight_decay_args
def adam(
  learning_rate: ScalarOrSchedule,
  b1: jax.typing.ArrayLike = 0.9,
  b2: jax.typing.ArrayLike = 0.999,
  eps: jax.typing.ArrayLike = 1e-8,
  *,
  eps_root: jax.typing.ArrayLike = 0.0,
  weight_decay: jax.typing.ArrayLike = 0.0,
  amsgrad: bool = False,
  maximize: bool = False,
  mu_dtype: DType = None,
) -> optax.GradientTransformation:
  r"""Adam: momentum on the gradients, RMSProp's scaling, both bias-corrected.

  ``w ← w − learning_rate · m̂ / (√(v̂ + eps_root) + eps)``, with the moment
  estimates of :func:`scale_by_adam`, where the update rule is written out.
  ``amsgrad=True`` divides by the running maximum of ``v`` instead (torch's
  AMSGrad, which is not ``optax.amsgrad``: see :func:`scale_by_adam`).
  ``weight_decay`` here is coupled, an L2 penalty whose gradient then goes
  through Adam's scaling (torch's ``Adam(weight_decay=...)``); for the
  decoupled decay, use :func:`adamw`.

  Equals ``optax.adam(learning_rate, b1, b2, eps, eps_root=eps_root,
  mu_dtype=mu_dtype)`` (after ``optax.add_decayed_weights(weight_decay)``)
  and ``torch.optim.Adam(lr, betas=(b1, b2), eps=eps, weight_decay=...,
  amsgrad=..., maximize=...)`` step by step (torch has no ``eps_root``).

  .. note::
    As in optax, the bias corrections ``1 − b**t`` are computed in float32,
    where ``b2 = 0.999`` rounds to ``0.99900001``; the subtraction magnifies
    that, so early steps are ~1e-5 (relative) larger than torch's, which
    computes the corrections in double precision. Over 60 steps of the test
    problem the two drift ~1.3e-5 apart; at ``b2 = 0.99`` ten times less.

  Args:
    learning_rate: A number >= 0, an array, a tracer, or a schedule.
    b1: Decay of the first moment, in [0, 1).
    b2: Decay of the second moment, in [0, 1).
    eps: Added to the denominator outside the root, > 0.
    eps_root: Added inside the root, >= 0.
    {weight_decay}
    amsgrad: Divide by the running maximum of the second moment.
    mu_dtype: The first moment's dtype (optax's ``mu_dtype``), e.g.
      ``jnp.float32`` for bfloat16 parameters; ``None`` keeps theirs.

  Returns:
    An :class:`optax.GradientTransformation`.

  Example:
    >>> import jax.numpy as jnp
    >>> import momentum_jax as mj
    >>> tx = mj.adam(learning_rate=0.001)
    >>> updates, _ = tx.update(jnp.array([0.5, -3.0]), tx.init(jnp.zeros(2)))
    >>> updates.round(6)  # the first step has size learning_rate everywhere
    Array([-0.001,  0.001], dtype=float32)
  """
  return optax.chain(
    _gradient(weight_decay, maximize),
    _adaptive.scale_by_adam(b1, b2, eps, eps_root=eps_root, amsgrad=amsgrad, mu_dtype=mu_dtype),
    _learning_rate(learning_rate),
  )


def adamw(
  learning_rate: ScalarOrSchedule,
  b1: jax.typing.ArrayLike = 0.9,
  b2: jax.typing.ArrayLike = 0.999,
  eps: jax.typing.ArrayLike = 1e-8,
  weight_decay: jax.typing.ArrayLike = 1e-2,
  *,
  eps_root: jax.typing.ArrayLike = 0.0,
  amsgrad: bool = False,
  maximize: bool = False,
  mu_dtype: DType = None,
) -> optax.GradientTransformation:
  r"""AdamW: Adam with decoupled weight decay.

  With ``m̂``, ``v̂`` of :func:`scale_by_adam`::

    w ← w − learning_rate · (m̂ / (√(v̂ + eps_root) + eps) + weight_decay · w)

  The decay is not part of the gradient, so Adam's scaling does not divide it:
  every weight shrinks by the same factor ``1 − learning_rate · weight_decay``
  per step. Equals ``torch.optim.AdamW(lr, betas=(b1, b2), eps=eps,
  weight_decay=..., amsgrad=..., maximize=...)`` and ``optax.adamw(
  learning_rate, b1, b2, eps, eps_root=..., mu_dtype=..., weight_decay=...)``
  step by step (``amsgrad`` as torch's; see :func:`scale_by_adam`).

  The default ``weight_decay=1e-2`` is torch's; optax's is ``1e-4``, so
  ``optax.adamw(lr)`` is ``adamw(lr, weight_decay=1e-4)``. Under ``maximize``
  the decay still pulls the weights towards 0, as in torch.

  Args:
    learning_rate: A number >= 0, an array, a tracer, or a schedule.
    b1: Decay of the first moment, in [0, 1).
    b2: Decay of the second moment, in [0, 1).
    eps: Added to the denominator outside the root, > 0.
    weight_decay: Decoupled weight decay rate, >= 0.
    eps_root: Added inside the root, >= 0.
    amsgrad: Divide by the running maximum of the second moment.
    maximize: Ascend the objective (torch's ``maximize``).
    mu_dtype: The first moment's dtype; ``None`` keeps the parameters'.

  Returns:
    An :class:`optax.GradientTransformation`.

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019.

  Example:
    >>> import jax.numpy as jnp
    >>> import momentum_jax as mj
    >>> tx = mj.adamw(learning_rate=0.1, weight_decay=0.5)
    >>> w = jnp.array([2.0])
    >>> updates, _ = tx.update(jnp.array([1.0]), tx.init(w), w)
    >>> round(float(updates[0]), 4)  # -0.1 * (1 + 0.5 * 2), eps aside
    -0.2
  """
  return optax.chain(
    _gradient(0.0, maximize),
    _adaptive.scale_by_adam(b1, b2, eps, eps_root=eps_root, amsgrad=amsgrad, mu_dtype=mu_dtype),
    _weight_decay.add_decayed_weights(weight_decay),
    _learning_rate(learning_rate),
  )
