"""Hyperparameters are data: numbers, arrays or tracers, swept with jax.vmap.

Also: one state structure whatever the values, one compilation, dtypes kept,
and clear errors for concrete out-of-range values.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import _tolerances
import momentum_jax as mj
from _optimizers import OPTIMIZERS
from _problems import least_squares, trajectory

# name -> (factory, a valid configuration with every numeric hyperparameter),
# from the one registry of optimizers under test.
FACTORIES = {name: (entry.factory, entry.config) for name, entry in OPTIMIZERS.items()}
NAMES = sorted(FACTORIES)

# Per hyperparameter, four values to sweep at once (including the edges 0).
SWEEP = {
  "learning_rate": lambda v: [0.5 * v, v, 1.5 * v, 0.0],
  "beta": lambda v: [0.0, 0.5, v, 0.99],
  # Not 0: centered RMSProp then computes g² − g², which rounds below zero
  # and gives NaN (in torch and optax too; see scale_by_rms).
  "decay": lambda v: [0.5, 0.8, v, 0.99],
  "momentum": lambda v: [0.0, 0.3, 0.6, 0.9],
  "eps": lambda v: [v, 2 * v, 10 * v, 100 * v],
  "initial_scale": lambda v: [0.0, 0.1, 1.0, 2.0],
  "initial_accumulator_value": lambda v: [0.0, 0.1, 1.0, 2.0],
  "b1": lambda v: [0.0, 0.5, v, 0.95],
  "b2": lambda v: [0.9, 0.99, v, 0.9999],
  "eps_root": lambda v: [0.0, 1e-8, 1e-6, 1e-4],
  "weight_decay": lambda v: [0.0, 0.01, v, 0.3],
  "lr_decay": lambda v: [0.0, 0.01, v, 0.3],
}
STEPS = 40


def _batch(config):
  return {k: jnp.asarray(SWEEP[k](v), jnp.float32) for k, v in config.items()}


def _run(factory, loss_fn, params):
  def run(hyperparameters):
    return trajectory(factory(**hyperparameters), loss_fn, params, STEPS)

  return run


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_hyperparameters_equals_each_run_alone(name):
  factory, config = FACTORIES[name]
  loss_fn, params = least_squares(0)
  batch = _batch(config)
  batched = jax.jit(jax.vmap(_run(factory, loss_fn, params)))(batch)
  for k in range(4):
    alone = {key: float(values[k]) for key, values in batch.items()}
    single, bound = _run_and_bound(factory, alone, loss_fn, params)
    # Two float32 programs (traced and batched, or constants folded), each
    # within its rounding bound of the exact run: twice the bound apart.
    _tolerances.assert_within(
      jax.tree.map(lambda x: x[k], batched), single, {leaf: 2 * b for leaf, b in bound.items()}
    )


def _run_and_bound(factory, hyperparameters, loss_fn, params):
  """The run alone and its float32 rounding bound (``_tolerances.run_and_bound``)."""
  betas = {b: hyperparameters[b] for b in ("b1", "b2") if b in hyperparameters}
  centered = getattr(factory, "keywords", {}).get("centered", False)
  return _tolerances.run_and_bound(
    factory(**hyperparameters), jax.grad(loss_fn), params, STEPS, centered=centered, **betas
  )


@pytest.mark.parametrize("name", NAMES)
def test_built_inside_jit_from_tracers(name):
  # In float64, so that what is compared is the maths, not where float32
  # rounding falls: a Python-float beta folds 1 - beta in double precision, a
  # traced one computes it in the array's precision, and Adam near its
  # optimum amplifies that last-bit difference to ~2e-6 in 40 steps.
  factory, config = FACTORIES[name]
  with jax.enable_x64(True):
    loss_fn, params = least_squares(1, jnp.float64)
    traced = jax.jit(_run(factory, loss_fn, params))({k: jnp.float64(v) for k, v in config.items()})
    concrete, bound = _run_and_bound(factory, config, loss_fn, params)
  # Two float64 programs: twice one run's rounding bound, counted in float64 ulps.
  _tolerances.assert_within(
    traced, concrete, {k: 2 * _tolerances.in_float64(b) for k, b in bound.items()}
  )


@pytest.mark.parametrize("name", NAMES)
def test_state_structure_does_not_depend_on_values(name):
  factory, config = FACTORIES[name]
  _, params = least_squares(0)
  zeros = {k: (v if k in ("eps",) else 0.0) for k, v in config.items()}
  shapes = [
    jax.tree.map(lambda x: (x.shape, x.dtype), factory(**c).init(params)) for c in (config, zeros)
  ]
  assert jax.tree.structure(shapes[0]) == jax.tree.structure(shapes[1])
  assert jax.tree.leaves(shapes[0]) == jax.tree.leaves(shapes[1])


@pytest.mark.parametrize("name", NAMES)
def test_compiles_once(name):
  factory, config = FACTORIES[name]
  loss_fn, params = least_squares(0)

  @jax.jit
  def step(p, state, hyperparameters):
    tx = factory(**hyperparameters)
    updates, state = tx.update(jax.grad(loss_fn)(p), state, p)
    return optax.apply_updates(p, updates), state

  hyperparameters = {k: jnp.float32(v) for k, v in config.items()}
  state = factory(**config).init(params)
  p = params
  for scale in (1.0, 0.5, 0.25):  # new values, same shapes: no recompilation
    p, state = step(p, state, jax.tree.map(lambda v: v * scale, hyperparameters))
  assert step._cache_size() == 1


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("as_arrays", [False, True])
def test_dtypes_are_preserved(name, dtype, as_arrays):
  factory, config = FACTORIES[name]
  loss_fn, params = least_squares(0, dtype)
  if as_arrays:  # as in a sweep: float32 hyperparameters, whatever the params
    config = {k: jnp.float32(v) for k, v in config.items()}
  tx = factory(**config)
  state = tx.init(params)
  init_dtypes = jax.tree.map(lambda x: x.dtype, state)
  step = jax.jit(tx.update)
  for _ in range(2):
    updates, state = step(jax.grad(loss_fn)(params), state, params)
    params = optax.apply_updates(params, updates)
  assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype(dtype)}
  assert jax.tree.map(lambda x: x.dtype, state) == init_dtypes
  if not as_arrays:
    assert {x.dtype for x in jax.tree.leaves(updates)} == {jnp.dtype(dtype)}


@pytest.mark.parametrize(
  "build, message",
  [
    (lambda: mj.sgd(-0.1), r"learning_rate must be >= 0, got -0.1"),
    (lambda: mj.momentum(0.1, beta=1.0), r"beta must be in \[0, 1\), got 1.0"),
    (lambda: mj.momentum(0.1, beta=-0.5), r"beta must be in \[0, 1\), got -0.5"),
    (lambda: mj.momentum(0.1, beta=float("nan")), r"beta must be in \[0, 1\), got nan"),
    (
      lambda: mj.momentum(0.1, beta=np.array([0.5, 1.2])),
      r"beta must be in \[0, 1\), got \[0.5, 1.2\]",
    ),
    (lambda: mj.nesterov(0.1, beta=1.2), r"beta must be in \[0, 1\)"),
    (lambda: mj.scale_by_momentum(beta=2.0), r"beta must be in \[0, 1\)"),
    (lambda: mj.rmsprop(0.1, decay=1.0), r"decay must be in \[0, 1\)"),
    (lambda: mj.rmsprop(0.1, eps=0.0), r"eps must be > 0, got 0.0"),
    (lambda: mj.rmsprop(0.1, momentum=1.5), r"momentum must be in \[0, 1\)"),
    (lambda: mj.rmsprop(0.1, initial_scale=-1.0), r"initial_scale must be >= 0"),
    (lambda: mj.adagrad(0.1, eps=-1e-10), r"eps must be > 0"),
    (
      lambda: mj.adagrad(0.1, initial_accumulator_value=-0.1),
      r"initial_accumulator_value must be >= 0",
    ),
    (lambda: mj.adam(-1.0), r"learning_rate must be >= 0"),
    (lambda: mj.adam(0.1, b1=1.0), r"b1 must be in \[0, 1\)"),
    (lambda: mj.adam(0.1, b2=1.5), r"b2 must be in \[0, 1\)"),
    (lambda: mj.adam(0.1, eps=0.0), r"eps must be > 0"),
    (lambda: mj.adam(0.1, eps_root=-1.0), r"eps_root must be >= 0"),
    (lambda: mj.sgd(0.1, weight_decay=-0.1), r"weight_decay must be >= 0, got -0.1"),
    (
      lambda: mj.momentum(0.1, weight_decay=np.array([0.1, -1.0])),
      r"weight_decay must be >= 0, got \[0.1, -1.0\]",
    ),
    (lambda: mj.nesterov(0.1, weight_decay=-1.0), r"weight_decay must be >= 0"),
    (lambda: mj.rmsprop(0.1, weight_decay=float("nan")), r"weight_decay must be >= 0"),
    (lambda: mj.adagrad(0.1, weight_decay=-1.0), r"weight_decay must be >= 0"),
    (lambda: mj.adagrad(0.1, lr_decay=-0.5), r"lr_decay must be >= 0, got -0.5"),
    (lambda: mj.adam(0.1, weight_decay=-1.0), r"weight_decay must be >= 0"),
    (lambda: mj.adamw(0.1, weight_decay=-1e-2), r"weight_decay must be >= 0"),
    (lambda: mj.adamw(0.1, b2=1.0), r"b2 must be in \[0, 1\)"),
    (lambda: mj.step_decay(0.1, 0.5, 0), r"step_size must be > 0, got 0"),
    (lambda: mj.step_decay(0.1, 0.0, 10), r"decay_rate must be > 0"),
    (lambda: mj.cosine_annealing(0.1, t_max=-5), r"t_max must be > 0"),
    (lambda: mj.polynomial_decay(0.1, total_steps=0), r"total_steps must be > 0"),
    (lambda: mj.polynomial_decay(0.1, 10, power=-1.0), r"power must be >= 0"),
    (lambda: mj.exponential_decay(0.1, decay_rate=-0.9), r"decay_rate must be > 0"),
    (lambda: mj.exponential_decay(0.1, 0.9, decay_steps=0), r"decay_steps must be > 0"),
    (lambda: mj.linear_warmup(0.0, 0.1, warmup_steps=0), r"warmup_steps must be > 0"),
  ],
)
def test_out_of_range_values_are_refused_by_name(build, message):
  with pytest.raises(ValueError, match=message):
    build()


def test_non_numbers_are_refused():
  with pytest.raises(TypeError, match="expected a number"):
    mj.momentum(0.1, beta="high")


def test_tracers_skip_the_checks():
  # Out of range, but traced: no value to check, and no error from tracing.
  def build(beta):
    tx = mj.momentum(0.1, beta)
    return tx.update(jnp.ones(2), tx.init(jnp.zeros(2)))[0]

  # 0.1 rounded to float32; 1 − 1.5 and the products by 1 and by 0.5 are exact.
  np.testing.assert_allclose(
    jax.jit(build)(1.5), -0.1 * (1 - 1.5) * np.ones(2), rtol=_tolerances.U32
  )


# name -> (factory, parameters, what its power amplifies from the parameters
# and the step: ``_tolerances.power_amplification``).
SCHEDULES = {
  "step_decay": (
    mj.step_decay,
    dict(init_value=0.1, decay_rate=0.5, step_size=10.0),
    lambda c, t: _tolerances.power_amplification(c["decay_rate"], np.floor(t / c["step_size"])),
  ),
  "cosine_annealing": (
    mj.cosine_annealing,
    dict(init_value=0.1, t_max=50.0, lr_min=0.001),
    lambda c, t: 0.0,
  ),
  # (T − t)/T rounds twice (a division may be a reciprocal's product).
  "polynomial_decay": (
    mj.polynomial_decay,
    dict(init_value=0.1, total_steps=50.0, power=2.0, end_value=0.01),
    lambda c, t: (
      2
      * _tolerances.power_amplification(
        1 - np.minimum(t, c["total_steps"]) / c["total_steps"], c["power"]
      )
    ),
  ),
  "exponential_decay": (
    mj.exponential_decay,
    dict(init_value=0.1, decay_rate=0.95, decay_steps=2.0),
    lambda c, t: _tolerances.power_amplification(c["decay_rate"], t / c["decay_steps"]),
  ),
  "linear_warmup": (
    mj.linear_warmup,
    dict(init_value=0.0, peak_value=0.1, warmup_steps=20.0),
    lambda c, t: 0.0,
  ),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_parameters_vmap(name):
  factory, config, amplification = SCHEDULES[name]
  steps = jnp.arange(80)
  scales = jnp.array([0.5, 1.0, 1.5])
  batch = {k: v * scales for k, v in config.items()}
  batched = jax.jit(jax.vmap(lambda c: jax.vmap(factory(**c))(steps)))(batch)
  for k in range(3):
    alone = {key: float(v[k]) for key, v in batch.items()}
    # Two float32 evaluations of the formula, each within its bound of the
    # exact value; its largest value is the initial or peak one.
    bound = 2 * _tolerances.schedule_bound(
      batched[k],
      max(alone.get("init_value", 0.0), alone.get("peak_value", 0.0)),
      amplification(alone, np.arange(80.0)),
    )
    _tolerances.assert_within(
      {"": batched[k]}, {"": jax.vmap(factory(**alone))(steps)}, {"": bound}
    )


def test_schedule_as_learning_rate_in_a_sweep():
  # A sweep over the decay rate of a schedule driving momentum.
  loss_fn, params = least_squares(2)

  def run(decay_rate):
    return trajectory(mj.momentum(mj.step_decay(0.1, decay_rate, 10), 0.9), loss_fn, params, STEPS)

  rates = jnp.array([0.1, 0.5, 0.9])
  batched = jax.jit(jax.vmap(run))(rates)
  for k, rate in enumerate([0.1, 0.5, 0.9]):
    # Twice one float32 run's rounding bound, plus the learning rate's: the
    # schedule 0.1 · rate ** ⌊t / 10⌋ evaluated in each program carried along.
    schedule = mj.step_decay(0.1, rate, 10)(jnp.arange(STEPS))
    relative = (
      2
      * _tolerances.schedule_bound(
        schedule, 0.1, _tolerances.power_amplification(rate, np.arange(STEPS) // 10)
      )
      / schedule
    )
    alone, bound = _tolerances.run_and_bound(
      mj.momentum(mj.step_decay(0.1, rate, 10), 0.9), jax.grad(loss_fn), params, STEPS
    )
    carried = {
      leaf: 2 * b
      + _tolerances.carried(relative, np.asarray(params[leaf]), np.asarray(alone[leaf], np.float64))
      for leaf, b in bound.items()
    }
    _tolerances.assert_within(jax.tree.map(lambda x: x[k], batched), alone, carried)
