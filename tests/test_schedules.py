"""Schedules against closed forms (NumPy), the textbook examples, and optax."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_jax as mj

STEPS = np.arange(120)


def _values(schedule, steps=STEPS):
  return np.asarray(jax.vmap(schedule)(jnp.asarray(steps)))


def test_step_decay_textbook_example():
  # 0.1 halved every 10 steps: 0.1 for steps 0-9, 0.05 for 10-19, 0.025 for 20-29.
  values = _values(mj.step_decay(0.1, 0.5, 10), np.arange(30))
  np.testing.assert_allclose(values[:10], 0.1, rtol=1e-6)
  np.testing.assert_allclose(values[10:20], 0.05, rtol=1e-6)
  np.testing.assert_allclose(values[20:30], 0.025, rtol=1e-6)


# (schedule, closed form in NumPy) for the textbook parameters of each.
TEXTBOOK = {
    "step": (mj.step_decay(0.1, 0.5, 10), lambda t: 0.1 * 0.5 ** np.floor(t / 10)),
    "cosine": (
        mj.cosine_annealing(0.1, t_max=50, lr_min=0.001),
        lambda t: 0.001 + 0.5 * (0.1 - 0.001) * (1 + np.cos(np.pi * np.minimum(t, 50) / 50))),
    "polynomial": (
        mj.polynomial_decay(0.1, total_steps=50, power=2.0),
        lambda t: 0.1 * (1 - np.minimum(t, 50) / 50) ** 2),
    "exponential": (mj.exponential_decay(0.1, 0.95), lambda t: 0.1 * 0.95**t),
    "exponential_staircase": (
        mj.exponential_decay(0.1, 0.9, decay_steps=4, staircase=True),
        lambda t: 0.1 * 0.9 ** np.floor(t / 4)),
    "polynomial_to_end_value": (
        mj.polynomial_decay(0.1, total_steps=30, power=0.5, end_value=0.02),
        lambda t: 0.02 + 0.08 * (1 - np.minimum(t, 30) / 30) ** 0.5),
    "warmup": (
        mj.linear_warmup(0.01, 0.1, 20), lambda t: 0.01 + 0.09 * np.minimum(t, 20) / 20),
}


@pytest.mark.parametrize("name", sorted(TEXTBOOK))
def test_first_ten_values_and_beyond_match_the_closed_form(name):
  schedule, closed_form = TEXTBOOK[name]
  values = _values(schedule)
  np.testing.assert_allclose(values[:10], closed_form(np.arange(10.0)), rtol=1e-6)
  np.testing.assert_allclose(values, closed_form(STEPS.astype(float)), rtol=2e-5, atol=1e-9)


def test_cosine_holds_at_lr_min_after_t_max():
  values = _values(mj.cosine_annealing(0.1, t_max=50, lr_min=0.001))
  np.testing.assert_allclose(values[50:], 0.001, rtol=1e-6)
  assert np.all(np.diff(values[:51]) < 0)


def test_cosine_midpoint_is_the_mean():
  assert math.isclose(float(mj.cosine_annealing(0.2, t_max=40, lr_min=0.1)(20)), 0.15, rel_tol=1e-6)


# Each equal to an optax schedule with the matching parameters.
OPTAX = {
    "step": (mj.step_decay(0.1, 0.5, 10),
             optax.exponential_decay(0.1, transition_steps=10, decay_rate=0.5, staircase=True)),
    "cosine": (mj.cosine_annealing(0.1, 50, lr_min=0.001),
               optax.cosine_decay_schedule(0.1, 50, alpha=0.001 / 0.1)),
    "polynomial": (mj.polynomial_decay(0.1, 50, power=2.0, end_value=0.01),
                   optax.polynomial_schedule(0.1, 0.01, power=2.0, transition_steps=50)),
    "exponential": (mj.exponential_decay(0.1, 0.95, decay_steps=3),
                    optax.exponential_decay(0.1, transition_steps=3, decay_rate=0.95)),
    "warmup": (mj.linear_warmup(0.0, 0.1, 20), optax.linear_schedule(0.0, 0.1, 20)),
    "warmup_then_cosine": (
        mj.join([mj.linear_warmup(0.0, 0.1, 10), mj.cosine_annealing(0.1, 90)], [10]),
        optax.warmup_cosine_decay_schedule(0.0, 0.1, warmup_steps=10, decay_steps=100)),
}


@pytest.mark.parametrize("name", sorted(OPTAX))
def test_equals_optax_schedule(name):
  ours, theirs = OPTAX[name]
  np.testing.assert_allclose(_values(ours), _values(theirs), rtol=1e-5, atol=1e-8)


def test_join_restarts_the_count_at_each_boundary():
  joined = mj.join([lambda t: 0.0 * t + 1.0, lambda t: t * 1.0, lambda t: -t * 1.0], [5, 8])
  np.testing.assert_allclose(_values(joined, np.arange(12)),
                             [1, 1, 1, 1, 1, 0, 1, 2, 0, -1, -2, -3])


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
  np.testing.assert_allclose(values, 0.1 * 0.5 ** np.floor(np.arange(25) // 5 / 2), rtol=1e-6)
  with pytest.raises(ValueError, match="steps_per_epoch must be > 0"):
    mj.per_epoch(schedule, 0)
