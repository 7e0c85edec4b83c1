"""Property-based tests (hypothesis) of the optimizer core.

Hyperparameters enter the jitted functions as arrays, so each property
compiles once however many examples hypothesis draws.
"""

from __future__ import annotations

import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import momentum_jax as mj
from _optimizers import NAMES, OPTIMIZERS
import _tolerances

SETTINGS = settings(max_examples=40, deadline=None)
unit = st.floats(0.0, 0.99)
learning_rates = st.floats(1e-4, 1.0)
seeds = st.integers(0, 2**31 - 1)
STEPS = 12


def _gradients(seed, steps=STEPS, shape=(3, 4)):
  return jax.random.normal(jax.random.key(seed), (steps, *shape))


@functools.partial(jax.jit, static_argnums=0)
def _updates_and_states(factory, hyperparameters, gradients, params=None):
  """The updates of ``factory(**hyperparameters)`` fed ``gradients`` one by one, and its
  state after each.

  The parameters stay at ``params`` (zeros by default): the updates are not applied.
  """
  tx = factory(**hyperparameters)
  params = jnp.zeros_like(gradients[0]) if params is None else params

  def step(state, g):
    update, state = tx.update(g, state, params)
    return state, (update, state)

  return jax.lax.scan(step, tx.init(params), gradients)[1]


def _updates(factory, hyperparameters, gradients, params=None):
  return _updates_and_states(factory, hyperparameters, gradients, params)[0]


def _exact(factory, hyperparameters, gradients, params=None, centered=False):
  """The updates in float64 (rounding ~1e-16: exact here) of what ``_updates`` computes in
  float32, and their ``_tolerances.update_rounding_bound``.

  Its magnitudes are the updates fed ``|g|`` and ``|w|``; but centered
  RMSProp's ``E[g²] − E[g]²`` would change sign there, and without momentum
  (as the registry has it) its update is elementwise: its own size is the
  magnitude, and its cancellation is amplified (``_tolerances.amplification``).
  """
  defaults = {k: p.default for k, p in inspect.signature(factory).parameters.items()}
  betas = {b: hyperparameters.get(b, defaults[b]) for b in ("b1", "b2") if b in defaults}
  with jax.enable_x64(True):
    wide = {k: jnp.float64(v) for k, v in hyperparameters.items()}
    g = jnp.asarray(np.asarray(gradients, np.float64))
    w = None if params is None else jnp.asarray(np.asarray(params, np.float64))
    exact, states = jax.tree.map(np.asarray, _updates_and_states(factory, wide, g, w))
    magnitude = (
      exact
      if centered
      else np.asarray(_updates(factory, wide, jnp.abs(g), None if w is None else jnp.abs(w)))
    )
  relative = _tolerances.amplification(states, len(exact), centered=centered, **betas)
  return exact, _tolerances.update_rounding_bound(exact, magnitude, relative)


HEAVY_BALL = functools.partial(mj.momentum, ema=False)
AMSGRAD = functools.partial(mj.adam, amsgrad=True)


@SETTINGS
@given(lr=learning_rates, seed=seeds, ema=st.booleans())
def test_momentum_with_beta_zero_is_sgd(lr, seed, ema):
  g = _gradients(seed)
  factory = mj.momentum if ema else HEAVY_BALL
  # With β = 0 the velocity is g exactly: each side rounds lr·g once.
  np.testing.assert_allclose(
    _updates(factory, {"learning_rate": lr, "beta": 0.0}, g),
    _updates(mj.sgd, {"learning_rate": lr}, g),
    rtol=_tolerances.U32,
    atol=0,
  )


# (ema, nesterov) -> the factory; built once, as _updates compiles once per factory object.
MOMENTUM_FORMS = {
  (ema, nesterov): functools.partial(mj.momentum, ema=ema, nesterov=nesterov)
  for ema in (True, False)
  for nesterov in (True, False)
}


@SETTINGS
@given(lr=learning_rates, beta=unit, seed=seeds, nesterov=st.booleans())
def test_ema_form_is_heavy_ball_at_learning_rate_times_one_minus_beta(lr, beta, seed, nesterov):
  g = _gradients(seed)
  ema = _updates(MOMENTUM_FORMS[True, nesterov], {"learning_rate": lr, "beta": beta}, g)
  heavy = _updates(
    MOMENTUM_FORMS[False, nesterov], {"learning_rate": lr * (1 - beta), "beta": beta}, g
  )
  # The same sums, rounded in another order: each side within its rounding
  # bound; and the EMA form's 1 − β, from β rounded to float32, carries that
  # rounding magnified by (1 + β)/(1 − β) (the heavy-ball rate is rounded once).
  heavy = np.asarray(heavy, np.float64)
  bound = 2 * _tolerances.momentum_rounding_bound(
    lr * (1 - beta), beta, g
  ) + _tolerances.cancellation(1.0, beta) * np.abs(heavy)
  np.testing.assert_array_less(np.abs(np.asarray(ema, np.float64) - heavy), bound)


@SETTINGS
@given(lr=learning_rates, b1=unit, b2=st.floats(0.5, 0.999), seed=seeds, scale=st.floats(1e-2, 1e3))
def test_adam_is_invariant_to_rescaling_the_gradients(lr, b1, b2, seed, scale):
  # Up to eps: with eps far below the gradients' size, m/sqrt(v) does not see the scale.
  g = _gradients(seed)
  hyperparameters = {"learning_rate": lr, "b1": b1, "b2": b2, "eps": 1e-12}
  scaled = g * scale  # rounded: the float64 run below is fed the same numbers
  _, bound_scaled = _exact(mj.adam, hyperparameters, scaled)
  exact, bound = _exact(mj.adam, hyperparameters, g)
  # Exactly, lr·m̂/(√v̂ + eps) fed g·scale is lr·m̂/(√v̂ + eps/scale): off by
  # eps·|1 − 1/scale|/√v̂ relative (v̂ from g, in float64); the rounding of
  # g·scale moves m̂ and √v̂ by U32 each. Each float32 run within its bound.
  g64 = np.asarray(g, np.float64)
  v, v_hat = np.zeros(g64.shape[1:]), []
  for t, g_t in enumerate(g64, start=1):
    v = b2 * v + (1 - b2) * g_t**2
    v_hat.append(v / (1 - b2**t))
  eps_and_input = 1e-12 * abs(1 - 1 / scale) / np.sqrt(np.stack(v_hat)) + 2 * _tolerances.U32
  _tolerances.assert_within(
    {"": _updates(mj.adam, hyperparameters, scaled)},
    {"": _updates(mj.adam, hyperparameters, g)},
    {"": bound_scaled + bound + eps_and_input * np.abs(exact)},
  )


def _config(name, lr):
  """The registry's configuration of ``name``, at learning rate ``lr``."""
  return {**OPTIMIZERS[name].config, "learning_rate": lr}


@SETTINGS
@given(name=st.sampled_from(NAMES), lr=learning_rates)
def test_zero_gradients_from_a_zero_state_do_nothing(name, lr):
  # At zero parameters, so that weight decay has nothing to add either.
  updates = _updates(OPTIMIZERS[name].factory, _config(name, lr), jnp.zeros((5, 3, 4)))
  np.testing.assert_array_equal(updates, np.zeros((5, 3, 4)))


def _without_weight_decay(name):
  """The optimizer as it was before weight decay: adamw's is adam."""
  return mj.adam if name == "adamw" else OPTIMIZERS[name].factory


# Built once: _updates compiles once per factory object.
MAXIMIZING = {name: functools.partial(OPTIMIZERS[name].factory, maximize=True) for name in NAMES}


@SETTINGS
@given(name=st.sampled_from(NAMES), lr=learning_rates, seed=seeds)
def test_weight_decay_zero_is_the_optimizer_without_it(name, lr, seed):
  # A traced 0 computes g + 0·w; without the argument nothing is added.
  g, w = _gradients(seed), _gradients(seed + 1, steps=1)[0]
  config = _config(name, lr)
  decayed = _updates(OPTIMIZERS[name].factory, {**config, "weight_decay": 0.0}, g, w)
  del config["weight_decay"]
  # The same exact updates, computed by two programs: twice the rounding bound.
  _, bound = _exact(_without_weight_decay(name), config, g, w, centered=_centered(name))
  _tolerances.assert_within(
    {"": decayed}, {"": _updates(_without_weight_decay(name), config, g, w)}, {"": 2 * bound}
  )


def _centered(name):
  return getattr(OPTIMIZERS[name].factory, "keywords", {}).get("centered", False)


@SETTINGS
@given(name=st.sampled_from(NAMES), lr=learning_rates, seed=seeds)
def test_maximize_on_minus_g_is_the_optimizer_on_g(name, lr, seed):
  g, w = _gradients(seed), _gradients(seed + 1, steps=1)[0]
  # The same exact updates (negating is exact), by two programs: twice the rounding bound.
  _, bound = _exact(OPTIMIZERS[name].factory, _config(name, lr), g, w, centered=_centered(name))
  _tolerances.assert_within(
    {"": _updates(MAXIMIZING[name], _config(name, lr), -g, w)},
    {"": _updates(OPTIMIZERS[name].factory, _config(name, lr), g, w)},
    {"": 2 * bound},
  )


@SETTINGS
@given(lr=learning_rates, wd=st.floats(0.0, 1.0), seed=seeds)
def test_sgd_weight_decay_is_the_gradient_of_an_l2_penalty(lr, wd, seed):
  # torch's coupled decay: the step of sgd on L + ½·wd·|w|².
  g, w = _gradients(seed), _gradients(seed + 1, steps=1)[0]
  # Both sides in float32, lr and wd rounded alike: wd·w, the sum and × lr
  # round up to 3 times each, relative to lr·(|g| + wd·|w|).
  np.testing.assert_array_less(
    np.abs(
      _updates(mj.sgd, {"learning_rate": lr, "weight_decay": wd}, g, w) - (-lr * (g + wd * w))
    ),
    6 * _tolerances.U32 * lr * (np.abs(g) + wd * np.abs(w)) + np.finfo(np.float32).tiny,
  )


@SETTINGS
@given(lr=learning_rates, wd=st.floats(0.0, 1.0), b1=unit, seed=seeds)
def test_adamw_is_adam_minus_learning_rate_times_decay_times_w(lr, wd, b1, seed):
  # Decoupled: the decay never enters Adam's moments.
  g, w = _gradients(seed), _gradients(seed + 1, steps=1)[0]
  adam = {"learning_rate": lr, "b1": b1}
  adamw = {**adam, "weight_decay": wd}
  exact, bound = _exact(mj.adamw, adamw, g, w)
  exact_adam, bound_adam = _exact(mj.adam, adam, g, w)
  # Each run within its rounding bound of the exact updates, which differ by
  # lr·wd·w exactly; its float32 product and difference round 3 times.
  _tolerances.assert_within(
    {"": _updates(mj.adamw, adamw, g, w)},
    {"": _updates(mj.adam, adam, g, w) - lr * wd * w},
    {"": bound + bound_adam + 3 * _tolerances.U32 * np.abs(exact)},
  )


@SETTINGS
@given(lr=learning_rates, lr_decay=st.floats(0.0, 2.0), seed=seeds)
def test_adagrad_lr_decay_divides_step_t_by_one_plus_t_minus_one_times_it(lr, lr_decay, seed):
  g = _gradients(seed)
  t = np.arange(1, STEPS + 1).reshape(-1, 1, 1)
  decayed = {"learning_rate": lr, "lr_decay": lr_decay}
  _, bound = _exact(mj.adagrad, decayed, g)
  _, bound_plain = _exact(mj.adagrad, {"learning_rate": lr}, g)
  # Each float32 run within its rounding bound; the division here is float64.
  _tolerances.assert_within(
    {"": _updates(mj.adagrad, decayed, g)},
    {
      "": np.asarray(_updates(mj.adagrad, {"learning_rate": lr}, g), np.float64)
      / (1 + (t - 1) * lr_decay)
    },
    {"": bound + bound_plain / (1 + (t - 1) * lr_decay)},
  )


@SETTINGS
@given(
  lr=learning_rates, b1=unit, b2=st.floats(0.5, 0.999), seed=seeds, spread=st.floats(0.1, 10.0)
)
def test_amsgrad_steps_are_never_longer_than_adams(lr, b1, b2, seed, spread):
  # Same first moment, a denominator √(max v)/(1 − b2**t) ≥ √v̂: shorter steps,
  # and at step 1 (max v = v) the same.
  g = _gradients(seed) * jnp.exp(spread * jnp.linspace(-1, 1, STEPS)).reshape(-1, 1, 1)[::-1]
  hyperparameters = {"learning_rate": lr, "b1": b1, "b2": b2}
  ams = np.abs(_updates(AMSGRAD, hyperparameters, g))
  adam = np.abs(_updates(mj.adam, hyperparameters, g))
  # Exactly never longer; in float32, within the two runs' rounding bounds.
  slack = _exact(AMSGRAD, hyperparameters, g)[1] + _exact(mj.adam, hyperparameters, g)[1]
  assert np.all(ams <= adam + slack)
  _tolerances.assert_within({"": ams[0]}, {"": adam[0]}, {"": slack[0]})
  # Where v falls 1% below its maximum (computed here in float64), AMSGrad's
  # step is shorter by ~√1.01, more than 1e-3. The gradients shrink, but v
  # falls only where g² drops below v itself: not, for one, with b2 = 0.999
  # at these 12 steps, where v is still ~(1 − b2)·Σg² (hypothesis found it).
  v = np.zeros(g.shape[1:])
  v_max = v
  falls = False
  for g_t in np.asarray(g, np.float64):
    v = b2 * v + (1 - b2) * g_t**2
    v_max = np.maximum(v_max, v)
    falls |= bool(np.any(v_max > 1.01 * v))
  if falls:
    assert np.any(ams < adam * (1 - 1e-3)), "v fell below its maximum: the maximum must matter"


steps = jnp.arange(0, 400)


def _values(schedule):
  return np.asarray(jax.vmap(schedule)(steps))


def _rounding(values, scale, base=1.0, exponent=0.0):
  """``_tolerances.schedule_bound`` about the float32 ``values`` (first order)."""
  return _tolerances.schedule_bound(values, scale, _tolerances.power_amplification(base, exponent))


# Each float32 value lies within its rounding bound of the exact one: exact
# properties (never rising, within [low, init], at the end value) hold in
# float32 to within the bounds of the values compared.
@SETTINGS
@given(init=st.floats(1e-4, 1.0), rate=st.floats(0.05, 0.999), size=st.integers(1, 50))
def test_step_and_exponential_decay_fall_within_bounds(init, rate, size):
  t = np.arange(400.0)
  for schedule, exponent in (
    (mj.step_decay(init, rate, size), np.floor(t / size)),
    (mj.exponential_decay(init, rate, size), t / size),
    (mj.exponential_decay(init, rate, size, staircase=True), np.floor(t / size)),
  ):
    values = _values(schedule)
    bound = _rounding(values, init, rate, exponent)
    assert np.all(np.diff(values) <= bound[1:] + bound[:-1])
    assert np.all(values <= init + bound) and np.all(values >= 0)


@SETTINGS
@given(
  init=st.floats(1e-4, 1.0),
  fraction=st.floats(0.0, 1.0),
  t_max=st.integers(1, 300),
  power=st.floats(0.1, 4.0),
)
def test_cosine_and_polynomial_decay_stay_in_min_init_and_never_rise(init, fraction, t_max, power):
  low = init * fraction
  # The polynomial's base (T − t)/T rounds twice (a division may be a reciprocal's product).
  remaining = 1 - np.minimum(np.arange(400.0), t_max) / t_max
  for schedule, amplification in (
    (mj.cosine_annealing(init, t_max, low), 0.0),
    (
      mj.polynomial_decay(init, t_max, power, end_value=low),
      2 * _tolerances.power_amplification(remaining, power),
    ),
  ):
    values = _values(schedule)
    bound = _tolerances.schedule_bound(values, init, amplification)
    assert np.all(values >= low - bound) and np.all(values <= init + bound)
    assert np.all(np.diff(values) <= bound[1:] + bound[:-1])
    _tolerances.assert_within(
      {"": values[t_max:]}, {"": np.full(400 - t_max, low)}, {"": bound[t_max:]}
    )


@SETTINGS
@given(start=st.floats(0.0, 0.1), peak=st.floats(0.1, 1.0), warmup=st.integers(1, 300))
def test_warmup_rises_to_its_peak_and_holds(start, peak, warmup):
  values = _values(mj.linear_warmup(start, peak, warmup))
  bound = _tolerances.schedule_bound(values, peak)
  assert np.all(np.diff(values) >= -(bound[1:] + bound[:-1]))
  _tolerances.assert_within(
    {"": values[warmup:]}, {"": np.full(400 - warmup, peak)}, {"": bound[warmup:]}
  )
  _tolerances.assert_within({"": values[:1]}, {"": np.array([start])}, {"": bound[:1]})
