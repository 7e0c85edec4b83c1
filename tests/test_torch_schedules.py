"""momentum_jax's schedules reproduce torch.optim.lr_scheduler step by step.

The docstrings of ``momentum_jax.optim`` name the torch scheduler each schedule
equals; the fixture (``_torch_fixture``) records torch's learning rate at every
step, compared here with ours in float32 at a bound derived from the arithmetic.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import momentum_jax as mj
import _tolerances
from _torch_fixture import DATA, SCHEDULE_CASES


# torch.optim.lr_scheduler class -> the momentum_jax schedule its docstring
# names, from the base learning rate and the scheduler's kwargs.
SCHEDULES: dict[str, Callable[[float, dict], mj.Schedule]] = {
  "StepLR": lambda lr, kw: mj.step_decay(lr, kw["gamma"], kw["step_size"]),
  "CosineAnnealingLR": lambda lr, kw: mj.cosine_annealing(lr, kw["T_max"], kw["eta_min"]),
  "PolynomialLR": lambda lr, kw: mj.polynomial_decay(lr, kw["total_iters"], kw["power"]),
  "ExponentialLR": lambda lr, kw: mj.exponential_decay(lr, kw["gamma"]),
  "LinearLR": lambda lr, kw: mj.linear_warmup(kw["start_factor"] * lr, lr, kw["total_iters"]),
}


def _schedule_values(name: str) -> tuple[np.ndarray, np.ndarray, dict]:
  case = SCHEDULE_CASES[name]
  torch_config = case["torch"]
  schedule = SCHEDULES[torch_config["name"]](case["lr"], torch_config["kwargs"])
  # As optax calls it: with the int32 update count.
  ours = jax.vmap(schedule)(jnp.arange(case["steps"], dtype=jnp.int32))
  return np.asarray(ours, np.float64), DATA[f"sched__{name}__lr"], torch_config


def _schedule_bound(theirs: np.ndarray, case: dict) -> np.ndarray:
  """How far our float32 schedule may lie from torch's float64 one, per step.

  Ours: ``_tolerances.schedule_bound`` at the initial rate, with what a power
  amplifies (γ**t, γ**⌊t/s⌋; the polynomial's base (T − t)/T rounds twice).
  torch's chainable form multiplies one float64 factor a step: a few ``U64``
  each, ``8·t·U64`` relative after ``t``.
  """
  kwargs, name = case["torch"]["kwargs"], case["torch"]["name"]
  t = np.arange(len(theirs), dtype=np.float64)
  amplification = 0.0
  if name == "ExponentialLR":
    amplification = _tolerances.power_amplification(kwargs["gamma"], t)
  elif name == "StepLR":
    amplification = _tolerances.power_amplification(
      kwargs["gamma"], np.floor(t / kwargs["step_size"])
    )
  elif name == "PolynomialLR":
    remaining = 1 - np.minimum(t, kwargs["total_iters"]) / kwargs["total_iters"]
    amplification = 2 * _tolerances.power_amplification(remaining, kwargs["power"])
  ours = _tolerances.schedule_bound(theirs, case["lr"], amplification)
  return ours + 8 * t * _tolerances.U64 * np.abs(theirs)


def test_every_torch_scheduler_is_recorded_with_two_settings_or_more():
  names = [case["torch"]["name"] for case in SCHEDULE_CASES.values()]
  assert set(names) == set(SCHEDULES)
  assert all(names.count(n) >= 2 for n in SCHEDULES)


@pytest.mark.parametrize("name", sorted(SCHEDULE_CASES))
def test_schedule_matches_torch_every_step(name):
  ours, theirs, torch_config = _schedule_values(name)
  if torch_config["name"] == "CosineAnnealingLR":
    # Equal on [0, T_max] only; the hold after it is checked below.
    last = torch_config["kwargs"]["T_max"]
    ours, theirs = ours[: last + 1], theirs[: last + 1]
  bound = _schedule_bound(theirs, SCHEDULE_CASES[name])
  _tolerances.assert_within({name: ours}, {name: theirs}, {name: bound})


def _past_t_max_bound(base: float, lr_min: float, t_max: int, theirs: np.ndarray) -> np.ndarray:
  """How far torch's float64 cosine past ``T_max`` and its closed form may lie apart, per step.

  torch steps ``lr_t = r_t·(lr_{t−1} − lr_min) + lr_min`` with
  ``r_t = (1 + cos(πt/T))/(1 + cos(π(t−1)/T))``, but at ``T + 1`` adds
  ``(lr − lr_min)(1 − cos(π/T))/2`` to ``lr_T``. Each ``cos(πt/T)`` is off by
  at most ``U64·(2 + 2πt/T)`` (its argument rounded twice, then an ulp), and
  ``1 + cos`` near −1 keeps only that absolute error: ``r_t`` carries it
  relative to both of its ``1 + cos``. The error is carried step by step
  from torch's at ``T`` (``8·T·U64`` relative, as above), each operation
  rounding once more; the closed form adds its own ``cos`` and three
  roundings.
  """
  u, span = _tolerances.U64, base - lr_min

  def cos_error(t):
    return u * (2 + 2 * np.pi * t / t_max)

  error, bounds = 8 * t_max * u * abs(theirs[t_max]), []
  for t in range(t_max + 1, len(theirs)):
    if t == t_max + 1:
      step = span * (1 - np.cos(np.pi / t_max)) / 2
      error += span * (cos_error(1) + u) / 2 + 2 * u * (abs(step) + abs(theirs[t]))
    else:
      a, b = 1 + np.cos(np.pi * t / t_max), 1 + np.cos(np.pi * (t - 1) / t_max)
      ratio_error = (cos_error(t) + u * a) / a + (cos_error(t - 1) + u * b) / b + u
      d = theirs[t - 1] - lr_min
      error = a / b * (error + u * abs(d)) + abs(a / b * d) * (ratio_error + u) + u * abs(theirs[t])
    own = span * (cos_error(t) + 2 * u) / 2 + 2 * u * abs(theirs[t])
    bounds.append(error + own)
  return np.asarray(bounds)


@pytest.mark.parametrize(
  "name", sorted(n for n, c in SCHEDULE_CASES.items() if c["torch"]["name"] == "CosineAnnealingLR")
)
def test_cosine_holds_at_lr_min_where_torch_climbs_back(name):
  ours, theirs, torch_config = _schedule_values(name)
  t_max, lr_min = torch_config["kwargs"]["T_max"], torch_config["kwargs"]["eta_min"]
  base = SCHEDULE_CASES[name]["lr"]
  assert len(ours) > t_max + 5, "the fixture must run past T_max"
  # Our float32 cosine at its floor: within its rounding bound of lr_min.
  held = ours[t_max:]
  bound = _tolerances.schedule_bound(np.full_like(held, lr_min), base)
  _tolerances.assert_within({"": held}, {"": np.full_like(held, lr_min)}, {"": bound})
  # torch follows the cosine on: lr_min + ½(lr − lr_min)(1 + cos(π t / T_max)).
  t = np.arange(t_max + 1, len(theirs))
  closed = lr_min + 0.5 * (base - lr_min) * (1 + np.cos(np.pi * t / t_max))
  past = {"": theirs[t_max + 1 :]}
  bound = _past_t_max_bound(base, lr_min, t_max, theirs)
  _tolerances.assert_within(past, {"": closed}, {"": bound})
  assert (theirs[t_max + 1 :] > lr_min).all()
