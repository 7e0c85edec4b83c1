"""Schedules against closed forms (NumPy), the textbook examples, and optax."""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import _tolerances
import momentum_jax as mj

STEPS = np.arange(120)


def _values(schedule, steps=STEPS):
  return np.asarray(jax.vmap(schedule)(jnp.asarray(steps)))


def test_step_decay_textbook_example():
  # 0.1 halved every 10 steps: 0.1 for steps 0-9, 0.05 for 10-19, 0.025 for 20-29.
  # Exact: 0.1 rounded to float32, times a power of 2: one rounding.
  values = _values(mj.step_decay(0.1, 0.5, 10), np.arange(30))
  np.testing.assert_allclose(values[:10], 0.1, rtol=_tolerances.U32)
  np.testing.assert_allclose(values[10:20], 0.05, rtol=_tolerances.U32)
  np.testing.assert_allclose(values[20:30], 0.025, rtol=_tolerances.U32)


def _power(base, exponent):
  """What a schedule's ``base ** exponent`` amplifies (``_tolerances.power_amplification``)."""
  return lambda t: _tolerances.power_amplification(base(t), exponent(t))


# (schedule, closed form in NumPy, its largest value, what its power amplifies)
# for the textbook parameters of each. The polynomials' base ``(T − t)/T``
# rounds twice (a division may be a reciprocal's product), hence 2×.
TEXTBOOK = {
  "step": (
    mj.step_decay(0.1, 0.5, 10),
    lambda t: 0.1 * 0.5 ** np.floor(t / 10),
    0.1,
    _power(lambda t: 0.5, lambda t: np.floor(t / 10)),
  ),
  "cosine": (
    mj.cosine_annealing(0.1, t_max=50, lr_min=0.001),
    lambda t: 0.001 + 0.5 * (0.1 - 0.001) * (1 + np.cos(np.pi * np.minimum(t, 50) / 50)),
    0.1,
    lambda t: 0.0,
  ),
  "polynomial": (
    mj.polynomial_decay(0.1, total_steps=50, power=2.0),
    lambda t: 0.1 * (1 - np.minimum(t, 50) / 50) ** 2,
    0.1,
    lambda t: 2 * _power(lambda t: 1 - np.minimum(t, 50) / 50, lambda t: 2.0)(t),
  ),
  "exponential": (
    mj.exponential_decay(0.1, 0.95),
    lambda t: 0.1 * 0.95**t,
    0.1,
    _power(lambda t: 0.95, lambda t: t),
  ),
  "exponential_staircase": (
    mj.exponential_decay(0.1, 0.9, decay_steps=4, staircase=True),
    lambda t: 0.1 * 0.9 ** np.floor(t / 4),
    0.1,
    _power(lambda t: 0.9, lambda t: np.floor(t / 4)),
  ),
  "polynomial_to_end_value": (
    mj.polynomial_decay(0.1, total_steps=30, power=0.5, end_value=0.02),
    lambda t: 0.02 + 0.08 * (1 - np.minimum(t, 30) / 30) ** 0.5,
    0.1,
    lambda t: 2 * _power(lambda t: 1 - np.minimum(t, 30) / 30, lambda t: 0.5)(t),
  ),
  "warmup": (
    mj.linear_warmup(0.01, 0.1, 20),
    lambda t: 0.01 + 0.09 * np.minimum(t, 20) / 20,
    0.1,
    lambda t: 0.0,
  ),
}


def _bound(name, t):
  _, closed_form, scale, amplification = TEXTBOOK[name]
  return _tolerances.schedule_bound(closed_form(t), scale, amplification(t))


@pytest.mark.parametrize("name", sorted(TEXTBOOK))
def test_every_value_matches_the_closed_form(name):
  schedule, closed_form, _, _ = TEXTBOOK[name]
  t = STEPS.astype(float)
  # A float32 formula against its exact value: its roundings (the hyperparameters'
  # included) and, for a power, what the exponent amplifies.
  _tolerances.assert_within({"": _values(schedule)}, {"": closed_form(t)}, {"": _bound(name, t)})


def test_cosine_holds_at_lr_min_after_t_max():
  values = _values(mj.cosine_annealing(0.1, t_max=50, lr_min=0.001))
  # cos(π) is −1 in float32 (float32 π is 8.7e-8 above π, where cos is −1 to 4e-15):
  # 0.001 + 0.5·0.099·0 rounds once.
  np.testing.assert_allclose(values[50:], 0.001, rtol=_tolerances.U32)
  assert np.all(np.diff(values[:51]) < 0)


def test_cosine_midpoint_is_the_mean():
  # cos(π/2) is 0 to within an ulp of π/2 (−4.4e-8); the rest rounds as any schedule.
  bound = _tolerances.schedule_bound(0.15, scale=0.2)
  assert abs(float(mj.cosine_annealing(0.2, t_max=40, lr_min=0.1)(20)) - 0.15) <= bound


# Each equal to an optax schedule with the matching parameters, and each
# bounded like its textbook twin above (optax's formulas round as many times).
OPTAX = {
  "step": (
    mj.step_decay(0.1, 0.5, 10),
    optax.exponential_decay(0.1, transition_steps=10, decay_rate=0.5, staircase=True),
    "step",
  ),
  "cosine": (
    mj.cosine_annealing(0.1, 50, lr_min=0.001),
    optax.cosine_decay_schedule(0.1, 50, alpha=0.001 / 0.1),
    "cosine",
  ),
  "polynomial": (
    mj.polynomial_decay(0.1, 50, power=2.0, end_value=0.01),
    optax.polynomial_schedule(0.1, 0.01, power=2.0, transition_steps=50),
    "polynomial",
  ),
  "exponential": (
    mj.exponential_decay(0.1, 0.95, decay_steps=3),
    optax.exponential_decay(0.1, transition_steps=3, decay_rate=0.95),
    "exponential",
  ),
  "warmup": (mj.linear_warmup(0.0, 0.1, 20), optax.linear_schedule(0.0, 0.1, 20), "warmup"),
  "warmup_then_cosine": (
    mj.join([mj.linear_warmup(0.0, 0.1, 10), mj.cosine_annealing(0.1, 90)], [10]),
    optax.warmup_cosine_decay_schedule(0.0, 0.1, warmup_steps=10, decay_steps=100),
    "cosine",
  ),
}


@pytest.mark.parametrize("name", sorted(OPTAX))
def test_equals_optax_schedule(name):
  ours, theirs, twin = OPTAX[name]
  ours, theirs = _values(ours), _values(theirs)
  # Two float32 evaluations of one formula: each within its bound of the exact
  # value (its twin's, at the optax schedule's value and exponents: a power's
  # amplification grows with the exponent only, which ``decay_steps`` divides).
  _, _, scale, amplification = TEXTBOOK[twin]
  bound = 2 * _tolerances.schedule_bound(theirs, scale, amplification(STEPS.astype(float)))
  _tolerances.assert_within({"": ours}, {"": theirs}, {"": bound})


def test_join_restarts_the_count_at_each_boundary():
  joined = mj.join([lambda t: 0.0 * t + 1.0, lambda t: t * 1.0, lambda t: -t * 1.0], [5, 8])
  np.testing.assert_allclose(
    _values(joined, np.arange(12)), [1, 1, 1, 1, 1, 0, 1, 2, 0, -1, -2, -3]
  )


@pytest.mark.parametrize(
  "schedules, boundaries, message",
  [
    ([], [], "at least one schedule"),
    ([mj.linear_warmup(0, 1, 5)], [5], "one boundary fewer than schedules"),
    ([mj.linear_warmup(0, 1, 5)] * 3, [10, 5], r"boundaries must increase"),
    ([mj.linear_warmup(0, 1, 5)] * 2, [-1], r"boundaries\[0\] must be >= 0"),
  ],
)
def test_join_refuses_bad_arguments(schedules, boundaries, message):
  with pytest.raises(ValueError, match=message):
    mj.join(schedules, boundaries)


def test_schedule_drives_an_optimizer_from_step_zero():
  tx = mj.sgd(mj.step_decay(1.0, 0.5, 2))
  state = tx.init(jnp.zeros(1))
  steps = []
  for _ in range(5):
    updates, state = tx.update(jnp.ones(1), state)
    steps.append(-float(updates[0]))
  assert steps == [1.0, 1.0, 0.5, 0.5, 0.25]


def test_per_epoch_counts_in_epochs():
  schedule = mj.per_epoch(mj.step_decay(0.1, 0.5, 2), steps_per_epoch=5)
  values = _values(schedule, np.arange(25))
  # 0.1 rounded to float32, times a power of 2: one rounding.
  np.testing.assert_allclose(
    values, 0.1 * 0.5 ** np.floor(np.arange(25) // 5 / 2), rtol=_tolerances.U32
  )
  with pytest.raises(ValueError, match="steps_per_epoch must be > 0"):
    mj.per_epoch(schedule, 0)
