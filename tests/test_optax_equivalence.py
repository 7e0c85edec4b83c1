"""Each momentum_jax optimizer equals its optax counterpart, step by step (optax run live)."""

from __future__ import annotations

import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import momentum_jax as mj
from _optimizers import NAMES, OPTIMIZERS
from _optimizers import REORDERED as REGISTRY_REORDERED
from _problems import least_squares, trajectory
import _tolerances

LR, BETA, WD = 0.05, 0.9, 0.1

# name -> (momentum_jax optimizer, the optax optimizer its docstring says it equals)
EQUIVALENT = {
  "sgd": (mj.sgd(LR), optax.sgd(LR)),
  "momentum_heavy_ball": (mj.momentum(LR, BETA, ema=False), optax.sgd(LR, momentum=BETA)),
  "momentum_ema": (
    mj.momentum(LR, BETA),
    optax.chain(optax.ema(BETA, debias=False), optax.scale_by_learning_rate(LR)),
  ),
  "nesterov": (mj.nesterov(LR, BETA), optax.sgd(LR, momentum=BETA, nesterov=True)),
  # The EMA form is the heavy-ball form at learning rate lr * (1 - beta).
  "nesterov_ema": (
    mj.nesterov(LR, BETA, ema=True),
    optax.sgd(LR * (1 - BETA), momentum=BETA, nesterov=True),
  ),
  "rmsprop": (mj.rmsprop(0.01), optax.rmsprop(0.01)),
  "rmsprop_no_buffer": (mj.rmsprop(0.01, momentum=None), optax.rmsprop(0.01)),
  "rmsprop_centered": (mj.rmsprop(0.01, centered=True), optax.rmsprop(0.01, centered=True)),
  "rmsprop_eps_outside": (
    mj.rmsprop(0.01, eps=1e-3, eps_in_sqrt=False),
    optax.rmsprop(0.01, eps=1e-3, eps_in_sqrt=False),
  ),
  "adam": (mj.adam(0.01), optax.adam(0.01)),
  "adam_low_b1": (
    mj.adam(0.03, b1=0.5, b2=0.99, eps=1e-6, eps_root=1e-8),
    optax.adam(0.03, b1=0.5, b2=0.99, eps=1e-6, eps_root=1e-8),
  ),
  "momentum_schedule": (
    mj.momentum(mj.cosine_annealing(0.1, 40), BETA, ema=False),
    optax.sgd(optax.cosine_decay_schedule(0.1, 40), momentum=BETA),
  ),
}
# Variants of the arguments users bring from optax; each optimizer's weight
# decay is compared in test_registry_optimizer_equals_its_optax_twin. Each is
# bit-identical to optax (test_bit_identical_to_optax_when_each_step_is_jitted),
# which says more than test_equals_optax_every_step's tolerance.
KNOBS = {
  "momentum_heavy_ball_bfloat16_velocity": (
    mj.momentum(LR, BETA, ema=False, accumulator_dtype=jnp.bfloat16),
    optax.sgd(LR, momentum=BETA, accumulator_dtype=jnp.bfloat16),
  ),
  "adam_bfloat16_mu": (
    mj.adam(0.01, mu_dtype=jnp.bfloat16),
    optax.adam(0.01, mu_dtype=jnp.bfloat16),
  ),
  "adamw_optax_default": (mj.adamw(0.01, weight_decay=1e-4), optax.adamw(0.01)),
  "adamw_all": (
    mj.adamw(
      0.03, b1=0.5, b2=0.99, eps=1e-6, weight_decay=WD, eps_root=1e-8, mu_dtype=jnp.bfloat16
    ),
    optax.adamw(
      0.03, b1=0.5, b2=0.99, eps=1e-6, weight_decay=WD, eps_root=1e-8, mu_dtype=jnp.bfloat16
    ),
  ),
}
# Equal in exact arithmetic but computed in another order: nesterov_ema scales
# the learning rate. The rest use the same expressions in the same operand
# order as optax, which XLA compiles to the same code, inside the scan as per
# step (test_bit_identical_to_optax_when_each_step_is_jitted): equal to the
# last bit, on SSE4_2, AVX2 and AVX-512 alike. nesterov_ema is held at twice
# one float32 run's rounding bound (_tolerances.float32_drift_bound; it parts
# by ~2e-7, a quarter of that). RMSProp with momentum, which applies the
# learning rate after the buffer (torch) rather than before it (optax), is
# compared fed the same gradients, every variant at once, in
# test_rmsprop_equivalence.py: along a trajectory its normalised steps feed
# the reordering's rounding back past any first-order bound.
REORDERED = {"nesterov_ema"}


@pytest.mark.parametrize("name", sorted(EQUIVALENT))
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_optax_every_step(name, seed):
  ours, theirs = EQUIVALENT[name]
  loss_fn, params = least_squares(seed)
  path = trajectory(ours, loss_fn, params, steps=60)
  reference = trajectory(theirs, loss_fn, params, steps=60)
  moved = np.abs(np.asarray(reference["w"][-1] - params["w"])).max()
  assert moved > 1e-2, "the problem must move the parameters for the test to mean anything"
  if name not in REORDERED:
    chex.assert_trees_all_equal(path, reference)
    return
  for k in path:
    theirs = np.asarray(reference[k], np.float64)
    bound = 2 * _tolerances.float32_drift_bound(np.asarray(params[k], np.float64), theirs)
    assert (np.abs(np.asarray(path[k], np.float64) - theirs) <= bound).all(), k


def test_adagrad_matches_optax_where_eps_is_negligible():
  # optax puts eps inside the root (g / sqrt(G + eps)), we follow torch
  # (g / (sqrt(G) + eps)); with eps -> 0 both are g / sqrt(G). optax's
  # accumulator starts at 0.1 by default, torch's and ours at 0.
  loss_fn, params = least_squares(0)
  grad_fn = jax.grad(loss_fn)
  path, bound = _tolerances.run_and_bound(mj.adagrad(0.1, eps=1e-10), grad_fn, params, 60)
  reference = trajectory(
    optax.adagrad(0.1, initial_accumulator_value=0.0, eps=1e-20), loss_fn, params, steps=60
  )
  # Each float32 run lies within its rounding bound of the exact path: twice
  # that apart. Besides, each update is g / sqrt(G) to a relative eps / sqrt(G)
  # (ours) and eps / 2G (optax's); G holds the first gradient's square, so per
  # update that is at most eps / |g₁| + eps / 2g₁², carried along the path.
  first = np.min(
    [np.abs(np.asarray(g, np.float64)).min() for g in jax.tree.leaves(grad_fn(params))]
  )
  placement = 1e-10 / first + 1e-20 / (2 * first**2)
  start = {k: np.asarray(v, np.float64) for k, v in params.items()}
  ours = {k: np.asarray(v, np.float64) for k, v in path.items()}
  bound = {k: 2 * b + _tolerances.carried(placement, start[k], ours[k]) for k, b in bound.items()}
  _tolerances.assert_within(path, reference, bound)


def test_adagrad_eps_sits_outside_the_root():
  g = jnp.array([1e-3])
  ours, _ = mj.adagrad(1.0, eps=1e-4).update(g, mj.adagrad(1.0, eps=1e-4).init(g))
  reference = optax.adagrad(1.0, initial_accumulator_value=0.0, eps=1e-4)
  theirs, _ = reference.update(g, reference.init(g))
  # g and eps rounded to float32, g², the root, the sum, the division: each
  # side passes through fewer than UPDATE_ROUNDINGS roundings of U32.
  rtol = _tolerances.UPDATE_ROUNDINGS * _tolerances.U32
  np.testing.assert_allclose(ours, -1e-3 / (1e-3 + 1e-4), rtol=rtol)
  np.testing.assert_allclose(theirs, -1e-3 / np.sqrt(1e-6 + 1e-4), rtol=rtol)
  assert not np.allclose(ours, theirs, rtol=1e-2)


def test_ema_momentum_is_heavy_ball_at_scaled_learning_rate():
  loss_fn, params = least_squares(3)
  ema = trajectory(mj.momentum(0.2, 0.7), loss_fn, params, steps=50)
  heavy = trajectory(mj.momentum(0.2 * 0.3, 0.7, ema=False), loss_fn, params, steps=50)
  # Equal in exact arithmetic (v_ema = (1 − β)·v_heavy); the float32 runs
  # round (1 − β)·g and lr·(1 − β) apart, roundings UPDATE_ROUNDINGS counts,
  # so each lies within its rounding bound of the exact path: twice that apart.
  start = {k: np.asarray(v, np.float64) for k, v in params.items()}
  bound = {
    k: 2 * _tolerances.float32_drift_bound(start[k], np.asarray(heavy[k], np.float64))
    for k in heavy
  }
  _tolerances.assert_within(ema, heavy, bound)


def test_beta_zero_is_plain_gradient_descent():
  loss_fn, params = least_squares(4)
  for ema in (True, False):
    path = trajectory(mj.momentum(0.1, 0.0, ema=ema), loss_fn, params, steps=30)
    # Exact: 0·v = 0, (1 − 0)·g = g, so both runs compute lr·g on the same values.
    chex.assert_trees_all_equal(path, trajectory(mj.sgd(0.1), loss_fn, params, steps=30))


def test_literature_weights_of_past_gradients():
  # Feeding one unit gradient then zeros, the EMA velocity k steps later is
  # (1 - beta) * beta**k: 1% of the newest weight two steps back at beta = 0.1,
  # 81% at beta = 0.9.
  for beta in (0.1, 0.9):
    tx = mj.scale_by_momentum(beta)
    state = tx.init(jnp.zeros(1))
    velocities = []
    for g in (1.0, 0.0, 0.0):
      update, state = tx.update(jnp.array([g]), state)
      velocities.append(float(update[0]))
    # In float32: beta rounded (k·U32 in beta**k, beta/(1 − beta)·U32 in
    # 1 − beta), the subtraction and the k products round once each.
    k = np.arange(3)
    rtol = (2 * k + 1 + beta / (1 - beta)) * _tolerances.U32
    error = np.abs(np.array(velocities) / ((1 - beta) * beta**k) - 1)
    assert (error <= rtol).all(), (error, rtol)
    # The ratio is beta**2 in float32 (2·U32) times the two products' roundings.
    np.testing.assert_allclose(velocities[2] / velocities[0], beta**2, rtol=4 * _tolerances.U32)


def _bit_identical_paths(ours, theirs, loss_fn, params, steps=30):
  results = []
  for tx in (ours, theirs):
    step = jax.jit(lambda p, s, tx=tx: tx.update(jax.grad(loss_fn)(p), s, p))
    p, state = params, tx.init(params)
    for _ in range(steps):
      updates, state = step(p, state)
      p = optax.apply_updates(p, updates)
    results.append(p)
  jax.tree.map(np.testing.assert_array_equal, results[0], results[1])


@pytest.mark.parametrize("name", sorted(set(EQUIVALENT) - set(REORDERED)) + sorted(KNOBS))
def test_bit_identical_to_optax_when_each_step_is_jitted(name):
  # The same expressions in the same operand order as optax: XLA then makes
  # the same multiply-add fusions, and the results agree to the last bit.
  ours, theirs = {**EQUIVALENT, **KNOBS}[name]
  loss_fn, params = least_squares(5)
  _bit_identical_paths(ours, theirs, loss_fn, params)


TWINS = [name for name in NAMES if OPTIMIZERS[name].optax_twin is not None]


@pytest.mark.parametrize("name", TWINS)
def test_registry_optimizer_equals_its_optax_twin(name):
  # Every numeric hyperparameter at once, weight decay included: bit for bit,
  # or in float64 where the two compute in another order.
  entry = OPTIMIZERS[name]
  ours, theirs = entry.factory(**entry.config), entry.optax_twin(**entry.config)
  if name in REGISTRY_REORDERED:
    # Each float64 run within its rounding bound of the exact path (in
    # float64, U64 per rounding), twice that apart.
    with jax.enable_x64(True):
      loss_fn, params = least_squares(6, jnp.float64)
      path, bound = _tolerances.run_and_bound(
        ours,
        jax.grad(loss_fn),
        params,
        60,
        centered=getattr(entry.factory, "keywords", {}).get("centered", False),
      )
      reference = trajectory(theirs, loss_fn, params, 60)
    _tolerances.assert_within(
      path, reference, {k: 2 * _tolerances.in_float64(b) for k, b in bound.items()}
    )
  else:
    loss_fn, params = least_squares(6)
    _bit_identical_paths(ours, theirs, loss_fn, params)


def complex_least_squares(seed):
  """A least-squares problem in complex parameters, and the conjugated gradient."""
  rng = np.random.default_rng(seed)

  def normal(*shape):
    return jnp.asarray(rng.normal(size=shape) + 1j * rng.normal(size=shape), jnp.complex64)

  x, y = normal(32, 5), normal(32, 3)
  params = {"w": normal(5, 3), "b": normal(3)}

  def grad_fn(p):
    loss = lambda p: jnp.mean(jnp.abs(x @ p["w"] + p["b"] - y) ** 2)
    return jax.tree.map(jnp.conj, jax.grad(loss)(p))

  return grad_fn, params


def _complex_path(tx, grad_fn, params, steps=60):
  def step(carry, _):
    p, state = carry
    updates, state = tx.update(grad_fn(p), state, p)
    p = optax.apply_updates(p, updates)
    return (p, state), p

  return jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=steps)[1])(params)


# Where complex parameters need care: the second moments. (Momentum is linear
# in g; test_convergence.py runs every optimizer on complex targets.)
ADAPTIVE_TWINS = [name for name in TWINS if name.startswith(("rmsprop", "adam"))]


@pytest.mark.parametrize("name", ADAPTIVE_TWINS)
def test_complex_parameters_as_optax(name):
  # Second moments of |g|², kept real here (complex with zero imaginary part
  # in optax): the same values.
  entry = OPTIMIZERS[name]
  grad_fn, params = complex_least_squares(7)
  config = entry.config
  # Each a float32 run within its rounding bound of the exact path, twice
  # that apart; a complex operation rounds its real and imaginary parts, so
  # UPDATE_ROUNDINGS once more per update.
  ours, bound = _tolerances.run_and_bound(
    entry.factory(**config),
    grad_fn,
    params,
    60,
    centered=getattr(entry.factory, "keywords", {}).get("centered", False),
    relative=_tolerances.UPDATE_ROUNDINGS * _tolerances.U32,
    **{b: config[b] for b in ("b1", "b2") if b in config},
  )
  theirs = _complex_path(entry.optax_twin(**config), grad_fn, params)
  moved = np.abs(np.asarray(theirs["w"][-1] - params["w"])).max()
  assert moved > 1e-1
  _tolerances.assert_within(ours, theirs, {k: 2 * b for k, b in bound.items()})


@pytest.mark.parametrize(
  "tx, key, expected",
  [
    (mj.adam(0.1, b2=0.5), "nu", 12.5),
    (mj.rmsprop(0.1, decay=0.5), "nu", 12.5),
    (mj.adagrad(0.1), "sum_of_squares", 25.0),
  ],
)
def test_complex_second_moments_are_real_abs_squares(tx, key, expected):
  # g = 3 + 4i: |g|² = 25, where g² = −7 + 24i.
  params = jnp.zeros(1, jnp.complex64)
  _, state = tx.update(jnp.array([3.0 + 4.0j]), tx.init(params), params)
  moment = optax.tree.get(state, key)
  assert moment.dtype == jnp.float32
  # Exact: 3² + 4² = 25 and its products with 0.5 are representable.
  np.testing.assert_array_equal(moment, [expected])


def test_adamw_default_weight_decay_is_torchs():
  # optax's is 1e-4 (KNOBS["adamw_optax_default"] pins the equality there).
  assert inspect.signature(mj.adamw).parameters["weight_decay"].default == 1e-2
  assert inspect.signature(optax.adamw).parameters["weight_decay"].default == 1e-4
