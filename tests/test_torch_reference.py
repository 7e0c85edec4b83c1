"""momentum_jax reproduces torch.optim and torch.optim.lr_scheduler step by step.

The docstrings of ``momentum_jax.optim`` name the torch configuration each
optimizer and schedule equals. torch is not a dependency, so its results are
recorded in ``fixtures/torch_reference.npz`` (written by
``fixtures/make_torch_reference.py``, which documents its contents) and every
case is replayed here in JAX, in float32, on the same loss, and compared at
every step. Negative checks show the comparison is sharp enough to see the
differences the docstrings warn about.
"""

from __future__ import annotations

import json
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_jax as mj
from _optimizers import OPTIMIZERS as REGISTRY
from _optimizers import rmsprop_replay as _rmsprop
from _problems import trajectory

_FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "torch_reference.npz")

with np.load(_FIXTURE) as _npz:
  DATA = {key: _npz[key] for key in _npz.files}
META = json.loads(str(DATA.pop("meta")))
STEPS = META["steps"]
OPTIMIZER_CASES = META["optimizers"]
SCHEDULE_CASES = META["schedules"]

# A float32 trajectory that follows the same formula as torch's differs from it
# only by rounding, ~1e-7 per step here; 60 steps stay well inside these.
RTOL, ATOL = 1e-5, 1e-6


def _problem(maximize=False):
  """The fixture's loss (the same float32 expression as torch's) and initial params.

  Negated for a case that maximizes, as the fixture script does.
  """
  a, b, p, q = (jnp.asarray(DATA[f"problem__{k}"], jnp.float32) for k in "AbPQ")
  sign = -1.0 if maximize else 1.0

  def loss_fn(params):
    return sign * (0.5 * jnp.mean((a @ params["x"] - b) ** 2)
                   + 0.5 * jnp.mean((p @ params["W"] - q) ** 2))

  params = {k: jnp.asarray(DATA[f"problem__{k}0"], jnp.float32) for k in ("x", "W")}
  return loss_fn, params


def _torch_path(name: str) -> dict[str, np.ndarray]:
  return {k: DATA[f"opt__{name}__{k}"] for k in ("x", "W")}


def _jax_path(tx: optax.GradientTransformation, maximize=False) -> dict[str, np.ndarray]:
  loss_fn, params = _problem(maximize)
  path = trajectory(tx, loss_fn, params, steps=STEPS)
  return {k: np.asarray(v, np.float64) for k, v in path.items()}


def _assert_paths_close(ours, theirs, atol=ATOL, rtol=RTOL) -> None:
  """Fails at the first step where a leaf leaves ``atol + rtol·|theirs|``.

  ``atol`` is a number, or per leaf an array shaped like the trajectory.
  """
  for leaf in theirs:
    leaf_atol = atol[leaf] if isinstance(atol, dict) else atol
    error = np.abs(ours[leaf] - theirs[leaf])
    bad = (error > leaf_atol + rtol * np.abs(theirs[leaf])).reshape(STEPS, -1).any(axis=1)
    if bad.any():
      step = int(np.argmax(bad))
      raise AssertionError(
          f"leaf {leaf!r} first leaves tolerance at step {step + 1} of {STEPS} "
          f"(max |error| there {error[step].max():.3g}, over the run {error.max():.3g}; "
          f"rtol={rtol}, atol={np.max(leaf_atol):.3g}):\n"
          f"ours   {ours[leaf][step].ravel()}\ntorch  {theirs[leaf][step].ravel()}"
      )


def _max_error(ours, theirs) -> float:
  return max(float(np.abs(ours[k] - theirs[k]).max()) for k in theirs)


# Case name (as in the fixture) -> the momentum_jax optimizer its docstring
# pairs with the recorded torch configuration, built from the stored
# hyperparameters by the registry's replay.
OPTIMIZERS: dict[str, Callable[[dict], optax.GradientTransformation]] = {
    case: entry.replay for entry in REGISTRY.values() for case in entry.torch}

# Recorded only to be told apart (test_torch_dampening_is_not_the_ema_form).
NOT_EQUIVALENT = {"sgd_dampened"}


def _adam_bias_correction_slack(h, theirs, start) -> dict[str, np.ndarray]:
  """Extra atol for Adam: its bias corrections ``1 − b**t`` rounded to float32.

  momentum_jax (like optax) evaluates ``1 − b2**t`` in float32, with ``b2``
  itself rounded to float32 (0.999 becomes 0.99900001); torch evaluates it in
  float64. The subtraction cancels the leading digits, magnifying that
  rounding by ``1/(1 − b2**t)``: about 1.3e-5 relative for b2 = 0.999 and
  small ``t`` (1.3e-6 for b2 = 0.99). Each update scales with
  ``1/(1 − b1**t)`` and ``1/√(1 − b2**t)``, so its relative error is bounded
  by ``δ_t = ε₁(t) + ½ ε₂(t)``, with ``ε(t)`` the rounding of ``b`` carried
  through the power plus two float32 ulps for the power itself; the
  trajectory's extra error after step ``T`` is at most ``Σ_{t≤T} δ_t·|Δw_t|``
  (to first order), with ``Δw_t`` torch's step. A wrong formula (a correction
  off by one step, or missing) errs by ``~1/t`` relative, far beyond this.
  """
  t = np.arange(1, STEPS + 1, dtype=np.float64)

  def relative_error(beta):
    exact = 1 - beta**t
    rounded_beta = float(np.float32(beta))
    return (np.abs((1 - rounded_beta**t) / exact - 1)
            + 2 * 2.0**-24 / exact)  # two ulps of b**t (which is < 1).

  delta = relative_error(h["b1"]) + 0.5 * relative_error(h["b2"])
  slack = {}
  for k, path in theirs.items():
    moves = np.abs(np.diff(np.concatenate([start[k][None], path]), axis=0))
    slack[k] = ATOL + np.cumsum(delta.reshape((-1,) + (1,) * (path.ndim - 1)) * moves, axis=0)
  return slack


def _tolerance(name: str, theirs) -> float | dict[str, np.ndarray]:
  """atol for a case: ATOL, unless float32 rounding demonstrably needs more."""
  hyper = OPTIMIZER_CASES[name]["hyper"]
  if hyper.get("b2") == 0.999:  # adam, adamw_default_betas; b2 = 0.99 fits ATOL.
    start = {k: DATA[f"problem__{k}0"] for k in ("x", "W")}
    return _adam_bias_correction_slack(hyper, theirs, start)
  if name == "rmsprop_centered":
    # E[g²] − E[g]² cancels as E[g] settles, magnifying rounding: torch's own
    # float32 run is float32_drift from its float64 run (2.0e-6 in the
    # committed fixture), JAX's about as far (1.5e-6) in another direction, so
    # the two may differ by the sum. With momentum the run is less sensitive.
    return max(ATOL, 2 * OPTIMIZER_CASES[name]["float32_drift"])
  return ATOL


def test_every_recorded_optimizer_case_is_checked():
  assert set(OPTIMIZER_CASES) == set(OPTIMIZERS) | NOT_EQUIVALENT


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_matches_torch_every_step(name):
  case = OPTIMIZER_CASES[name]
  theirs = _torch_path(name)
  start = {k: DATA[f"problem__{k}0"] for k in ("x", "W")}
  moved = max(np.abs(theirs[k][-1] - start[k]).max() for k in theirs)
  assert moved > 0.5, f"{name}: torch moved the params by {moved} only; the test would mean little"
  ours = _jax_path(OPTIMIZERS[name](case["hyper"]), case["hyper"].get("maximize", False))
  _assert_paths_close(ours, theirs, atol=_tolerance(name, theirs))


@pytest.mark.xfail(
    strict=True,
    reason="float32 bias correction 1 - b2**t with b2 = 0.999 rounded to float32 "
    "(as optax): ~6e-6 relative per update, 1.3e-5 over the run; see "
    "_adam_bias_correction_slack. Drop this marker if the correction is made exact.")
def test_adam_matches_torch_at_the_plain_tolerance():
  theirs = _torch_path("adam")
  ours = _jax_path(OPTIMIZERS["adam"](OPTIMIZER_CASES["adam"]["hyper"]))
  _assert_paths_close(ours, theirs)


# --- Documented differences: the comparison must see them. -------------------


@pytest.mark.parametrize(
    "name", ["rmsprop", "rmsprop_centered", "rmsprop_momentum", "rmsprop_centered_momentum"])
def test_eps_inside_the_root_is_not_torch_rmsprop(name):
  # torch divides by √E[g²] + eps; the default eps_in_sqrt=True by √(E[g²] + eps).
  theirs = _torch_path(name)
  ours = _jax_path(_rmsprop(OPTIMIZER_CASES[name]["hyper"], eps_in_sqrt=True))
  assert _max_error(ours, theirs) > 1e-3


def test_torch_dampening_is_not_the_ema_form():
  # SGD(lr, momentum=beta, dampening=beta) skips the dampening on its first
  # step, v₁ = g₁, where the EMA form has v₁ = (1 − beta)·g₁.
  name = "sgd_dampened"
  hyper = OPTIMIZER_CASES[name]["hyper"]
  theirs = _torch_path(name)
  ours = _jax_path(mj.momentum(hyper["lr"], hyper["beta"], ema=True))
  assert _max_error(ours, theirs) > 1e-2
  # The first steps differ by exactly that factor 1 / (1 − beta).
  start = {k: DATA[f"problem__{k}0"] for k in ("x", "W")}
  for k in theirs:
    np.testing.assert_allclose(
        theirs[k][0] - start[k], (ours[k][0] - start[k]) / (1 - hyper["beta"]),
        rtol=1e-5, atol=1e-6)


def test_optax_rmsprop_momentum_differs_from_torch_under_a_schedule():
  # optax.rmsprop applies momentum after the learning rate. At a constant rate
  # that is the same as before it (torch, momentum_jax); under a schedule the
  # buffer carries old rates along and the runs part.
  constant = OPTIMIZER_CASES["rmsprop_momentum"]["hyper"]
  ours = _jax_path(optax.rmsprop(
      constant["lr"], constant["decay"], constant["eps"], eps_in_sqrt=False,
      momentum=constant["momentum"]))
  _assert_paths_close(ours, _torch_path("rmsprop_momentum"))

  h = OPTIMIZER_CASES["rmsprop_momentum_cosine"]["hyper"]
  schedule = mj.cosine_annealing(h["lr"], h["t_max"], h["lr_min"])
  ours = _jax_path(optax.rmsprop(
      schedule, h["decay"], h["eps"], eps_in_sqrt=False, momentum=h["momentum"]))
  assert _max_error(ours, _torch_path("rmsprop_momentum_cosine")) > 1e-3


_OFF = {"weight_decay": 0.0, "amsgrad": False, "lr_decay": 0.0}


@pytest.mark.parametrize("name", [
    "sgd_weight_decay", "rmsprop_weight_decay", "adagrad_lr_decay", "adam_weight_decay",
    "adam_amsgrad", "adamw"])
def test_each_new_argument_changes_the_path(name):
  # Without it, the replay leaves torch's path: the cases exercise the argument.
  hyper = OPTIMIZER_CASES[name]["hyper"]
  theirs = _torch_path(name)
  for knob in set(_OFF) & set(hyper):
    ours = _jax_path(OPTIMIZERS[name]({**hyper, knob: _OFF[knob]}), hyper.get("maximize", False))
    assert _max_error(ours, theirs) > 1e-2, knob


def test_coupled_weight_decay_is_not_adamw():
  # Adam's weight_decay goes through the scaling; AdamW's does not.
  h = OPTIMIZER_CASES["adamw"]["hyper"]
  ours = _jax_path(mj.adam(h["lr"], h["b1"], h["b2"], h["eps"], weight_decay=h["weight_decay"]))
  assert _max_error(ours, _torch_path("adamw")) > 1e-2


def test_optax_amsgrad_is_not_torch_amsgrad():
  # optax.amsgrad keeps the maximum of the bias-corrected second moment, torch
  # (and momentum_jax) the maximum of the uncorrected one, corrected at step t.
  h = OPTIMIZER_CASES["adam_amsgrad"]["hyper"]
  ours = _jax_path(optax.amsgrad(h["lr"], h["b1"], h["b2"], h["eps"]))
  assert _max_error(ours, _torch_path("adam_amsgrad")) > 1e-3


# --- Schedules. ----------------------------------------------------------------

# torch.optim.lr_scheduler class -> the momentum_jax schedule its docstring
# names, from the base learning rate and the scheduler's kwargs.
SCHEDULES: dict[str, Callable[[float, dict], mj.Schedule]] = {
    "StepLR": lambda lr, kw: mj.step_decay(lr, kw["gamma"], kw["step_size"]),
    "CosineAnnealingLR": lambda lr, kw: mj.cosine_annealing(lr, kw["T_max"], kw["eta_min"]),
    "PolynomialLR": lambda lr, kw: mj.polynomial_decay(lr, kw["total_iters"], kw["power"]),
    "ExponentialLR": lambda lr, kw: mj.exponential_decay(lr, kw["gamma"]),
    "LinearLR": lambda lr, kw: mj.linear_warmup(
        kw["start_factor"] * lr, lr, kw["total_iters"]),
}


def _schedule_values(name: str) -> tuple[np.ndarray, np.ndarray, dict]:
  case = SCHEDULE_CASES[name]
  torch_config = case["torch"]
  schedule = SCHEDULES[torch_config["name"]](case["lr"], torch_config["kwargs"])
  # As optax calls it: with the int32 update count.
  ours = jax.vmap(schedule)(jnp.arange(case["steps"], dtype=jnp.int32))
  return np.asarray(ours, np.float64), DATA[f"sched__{name}__lr"], torch_config


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
  np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("name", sorted(
    n for n, c in SCHEDULE_CASES.items() if c["torch"]["name"] == "CosineAnnealingLR"))
def test_cosine_holds_at_lr_min_where_torch_climbs_back(name):
  ours, theirs, torch_config = _schedule_values(name)
  t_max, lr_min = torch_config["kwargs"]["T_max"], torch_config["kwargs"]["eta_min"]
  base = SCHEDULE_CASES[name]["lr"]
  assert len(ours) > t_max + 5, "the fixture must run past T_max"
  np.testing.assert_allclose(ours[t_max:], lr_min, rtol=RTOL, atol=ATOL)
  # torch follows the cosine on: lr_min + ½(lr − lr_min)(1 + cos(π t / T_max)).
  t = np.arange(t_max + 1, len(theirs))
  np.testing.assert_allclose(
      theirs[t_max + 1:], lr_min + 0.5 * (base - lr_min) * (1 + np.cos(np.pi * t / t_max)),
      rtol=1e-9)
  assert (theirs[t_max + 1:] > lr_min).all()
