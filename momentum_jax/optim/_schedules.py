"""Learning-rate schedules: pure ``step -> value`` functions.

Every parameter may be a number, an array or a tracer, so schedule parameters
can be swept inside one ``jax.vmap``. That is why these are written here rather
than taken from ``optax.schedules``: optax's polynomial and warm-up schedules
branch in Python on ``transition_steps <= 0`` and so reject traced step counts.
A schedule works anywhere optax takes a learning rate, and steps count from 0
(optax's update count before the step: the first update uses ``schedule(0)``).

=========================================  ==============================================
momentum_jax                               torch.optim.lr_scheduler (stepped once per step)
=========================================  ==============================================
step_decay(v, rate, size)                  StepLR(step_size=size, gamma=rate)
cosine_annealing(v, t_max, lr_min)         CosineAnnealingLR(T_max=t_max, eta_min=lr_min)
                                           on [0, t_max]; after t_max torch's cosine
                                           climbs back up, ours stays at lr_min
polynomial_decay(v, n, power)              PolynomialLR(total_iters=n, power=power)
exponential_decay(v, rate)                 ExponentialLR(gamma=rate)
linear_warmup(a·v, v, n)                   LinearLR(start_factor=a, end_factor=1, total_iters=n)
=========================================  ==============================================
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import optax

from momentum_jax.optim import _checks

Schedule = Callable[[jax.typing.ArrayLike], jax.Array]


def _as_float(step: jax.typing.ArrayLike) -> jax.Array:
  return jnp.asarray(step, dtype=jnp.float32)


def step_decay(
  init_value: jax.typing.ArrayLike,
  decay_rate: jax.typing.ArrayLike,
  step_size: jax.typing.ArrayLike,
) -> Schedule:
  r"""Multiplies the value by ``decay_rate`` every ``step_size`` steps.

  ``value(step) = init_value · decay_rate ** ⌊step / step_size⌋``

  Example from the tutorials: 0.1 halved every 10 steps is 0.1 for steps 0–9,
  0.05 for 10–19 and 0.025 for 20–29. Equals
  ``torch.optim.lr_scheduler.StepLR(step_size, gamma=decay_rate)``.

  Args:
    init_value: Value at step 0.
    decay_rate: Factor applied every ``step_size`` steps, > 0.
    step_size: Steps between decays, > 0.

  Returns:
    A function ``step -> value``.

  Example:
    >>> import momentum_jax as mj
    >>> schedule = mj.step_decay(0.1, 0.5, 10)
    >>> [round(float(schedule(s)), 6) for s in (0, 9, 10, 20)]
    [0.1, 0.1, 0.05, 0.025]
  """
  _checks.check_positive("decay_rate", decay_rate)
  _checks.check_positive("step_size", step_size)

  def schedule(step):
    return init_value * decay_rate ** jnp.floor(_as_float(step) / step_size)

  return schedule


def cosine_annealing(
  init_value: jax.typing.ArrayLike,
  t_max: jax.typing.ArrayLike,
  lr_min: jax.typing.ArrayLike = 0.0,
) -> Schedule:
  r"""Half a cosine from ``init_value`` down to ``lr_min`` over ``t_max`` steps.

  ``value(step) = lr_min + ½ (init_value − lr_min)(1 + cos(π · min(step, t_max) / t_max))``

  Held at ``lr_min`` after ``t_max``. Equals
  ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=t_max, eta_min=lr_min)``
  on ``[0, t_max]``; torch keeps following the cosine after ``t_max`` and
  climbs back towards ``init_value``.

  Args:
    init_value: Value at step 0.
    t_max: Steps to reach ``lr_min``, > 0.
    lr_min: Final value.

  Returns:
    A function ``step -> value``.

  Example:
    >>> import momentum_jax as mj
    >>> schedule = mj.cosine_annealing(0.1, t_max=50, lr_min=0.001)
    >>> [round(float(schedule(s)), 4) for s in (0, 25, 50, 80)]
    [0.1, 0.0505, 0.001, 0.001]
  """
  _checks.check_positive("t_max", t_max)

  def schedule(step):
    progress = jnp.minimum(_as_float(step), t_max) / t_max
    return lr_min + 0.5 * (init_value - lr_min) * (1 + jnp.cos(jnp.pi * progress))

  return schedule


def polynomial_decay(
  init_value: jax.typing.ArrayLike,
  total_steps: jax.typing.ArrayLike,
  power: jax.typing.ArrayLike = 1.0,
  end_value: jax.typing.ArrayLike = 0.0,
) -> Schedule:
  r"""Polynomial decay from ``init_value`` to ``end_value`` over ``total_steps``.

  ``value(step) = end_value + (init_value − end_value)(1 − min(step, total_steps) / total_steps) ** power``

  Equals ``torch.optim.lr_scheduler.PolynomialLR(total_iters=total_steps,
  power=power)`` when ``end_value = 0``, and ``optax.polynomial_schedule``.

  Args:
    init_value: Value at step 0.
    total_steps: Steps to reach ``end_value``, > 0.
    power: Exponent, >= 0 (1 is linear decay).
    end_value: Value from ``total_steps`` on.

  Returns:
    A function ``step -> value``.

  Example:
    >>> import momentum_jax as mj
    >>> schedule = mj.polynomial_decay(0.1, total_steps=50, power=2.0)
    >>> [round(float(schedule(s)), 4) for s in (0, 25, 50, 60)]
    [0.1, 0.025, 0.0, 0.0]
  """
  _checks.check_positive("total_steps", total_steps)
  _checks.check_non_negative("power", power)

  def schedule(step):
    # (total − min(step, total)) / total rather than 1 − min(step, total) / total:
    # XLA may divide by multiplying with the reciprocal, leaving 1 − 0.99999994
    # at the end, which a power below 1 magnifies (6e-8 ** 0.5 = 2.4e-4).
    remaining = (total_steps - jnp.minimum(_as_float(step), total_steps)) / total_steps
    return end_value + (init_value - end_value) * remaining**power

  return schedule


def exponential_decay(
  init_value: jax.typing.ArrayLike,
  decay_rate: jax.typing.ArrayLike,
  decay_steps: jax.typing.ArrayLike = 1,
  staircase: bool = False,
) -> Schedule:
  r"""Exponential decay: ``init_value · decay_rate ** (step / decay_steps)``.

  With ``staircase=True`` the exponent is ``⌊step / decay_steps⌋``, which
  makes this :func:`step_decay`. With ``decay_steps=1`` (per-step or per-epoch
  decay) it equals ``torch.optim.lr_scheduler.ExponentialLR(gamma=decay_rate)``.

  Args:
    init_value: Value at step 0.
    decay_rate: Factor per ``decay_steps`` steps, > 0.
    decay_steps: Steps per factor, > 0.
    staircase: Decay in discrete jumps.

  Returns:
    A function ``step -> value``.

  Example:
    >>> import momentum_jax as mj
    >>> schedule = mj.exponential_decay(0.1, decay_rate=0.95)
    >>> [round(float(schedule(s)), 6) for s in (0, 1, 2)]
    [0.1, 0.095, 0.09025]
  """
  _checks.check_positive("decay_rate", decay_rate)
  _checks.check_positive("decay_steps", decay_steps)

  def schedule(step):
    exponent = _as_float(step) / decay_steps
    if staircase:
      exponent = jnp.floor(exponent)
    return init_value * decay_rate**exponent

  return schedule


def linear_warmup(
  init_value: jax.typing.ArrayLike,
  peak_value: jax.typing.ArrayLike,
  warmup_steps: jax.typing.ArrayLike,
) -> Schedule:
  r"""Rises linearly from ``init_value`` to ``peak_value`` over ``warmup_steps``, then holds.

  ``value(step) = init_value + (peak_value − init_value) · min(step, warmup_steps) / warmup_steps``

  Put it before any schedule with :func:`join`. Equals
  ``torch.optim.lr_scheduler.LinearLR(start_factor=init_value/peak_value,
  end_factor=1, total_iters=warmup_steps)`` on a base learning rate of
  ``peak_value``.

  Args:
    init_value: Value at step 0.
    peak_value: Value from ``warmup_steps`` on.
    warmup_steps: Length of the warm-up, > 0.

  Returns:
    A function ``step -> value``.

  Example:
    >>> import momentum_jax as mj
    >>> warm_then_cosine = mj.join(
    ...     [mj.linear_warmup(0.0, 0.1, 10), mj.cosine_annealing(0.1, 90)], [10])
    >>> [round(float(warm_then_cosine(s)), 4) for s in (0, 5, 10, 100)]
    [0.0, 0.05, 0.1, 0.0]
  """
  _checks.check_positive("warmup_steps", warmup_steps)

  def schedule(step):
    fraction = jnp.minimum(_as_float(step), warmup_steps) / warmup_steps
    return init_value + (peak_value - init_value) * fraction

  return schedule


def join(schedules: Sequence[Schedule], boundaries: Sequence[jax.typing.ArrayLike]) -> Schedule:
  r"""Runs ``schedules[i]`` from ``boundaries[i-1]``, each restarting its count at 0.

  ``join([a, b], [n])(step)`` is ``a(step)`` for ``step < n`` and
  ``b(step − n)`` from ``n`` on. This is ``optax.join_schedules`` with its
  arguments checked; boundaries may be tracers.

  Args:
    schedules: Functions ``step -> value``, at least one.
    boundaries: Increasing steps where the next schedule takes over; one fewer
      than ``schedules``.

  Returns:
    A function ``step -> value``.
  """
  schedules = list(schedules)
  boundaries = list(boundaries)
  if not schedules:
    raise ValueError("join needs at least one schedule, got none")
  if len(boundaries) != len(schedules) - 1:
    raise ValueError(
      f"join needs one boundary fewer than schedules: got {len(schedules)} "
      f"schedules and {len(boundaries)} boundaries"
    )
  for index, boundary in enumerate(boundaries):
    _checks.check_non_negative(f"boundaries[{index}]", boundary)
  concrete = [_checks.concrete_value(b) for b in boundaries]
  for index in range(1, len(concrete)):
    low, high = concrete[index - 1], concrete[index]
    if low is not None and high is not None and not (high > low).all():
      raise ValueError(
        f"boundaries must increase, got boundaries[{index - 1}]={low.tolist()} "
        f"and boundaries[{index}]={high.tolist()}"
      )
  return optax.join_schedules(schedules, boundaries)


def per_epoch(schedule: Schedule, steps_per_epoch: jax.typing.ArrayLike) -> Schedule:
  r"""Counts ``schedule`` in epochs: ``value(step) = schedule(⌊step / steps_per_epoch⌋)``.

  Optimizers count steps; a schedule written in epochs (torch's habit of
  calling ``scheduler.step()`` once per epoch) is wrapped with this.

  Args:
    schedule: A function ``epoch -> value``.
    steps_per_epoch: Optimizer steps per epoch, > 0.

  Returns:
    A function ``step -> value``.

  Example:
    >>> import momentum_jax as mj
    >>> schedule = mj.per_epoch(mj.exponential_decay(0.1, 0.9), steps_per_epoch=10)
    >>> [round(float(schedule(s)), 4) for s in (0, 9, 10, 25)]
    [0.1, 0.1, 0.09, 0.081]
  """
  _checks.check_positive("steps_per_epoch", steps_per_epoch)

  def wrapped(step):
    return schedule(jnp.floor(_as_float(step) / steps_per_epoch))

  return wrapped
