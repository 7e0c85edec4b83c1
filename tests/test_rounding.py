"""``tests/_rounding.py``'s bound holds the float32 evaluations it bounds, and says no less.

Each function below is evaluated in float32 (jitted, as the tests that use
the bound compile theirs) and must lie within :func:`_rounding.rounding_bound`
of its float64 evaluation on every input hypothesis draws: sums that cancel,
a network's loss and gradients through BatchNorm-style normalisation,
sigmoid, tanh and a cross-entropy, a random initialisation, and each
transcendental function with its inputs over several magnitudes. A rule too
small for this machine's instruction set (``isa_sweep.sh`` runs this file on
each) fails here before a test that relies on it can pass by luck.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import _rounding
import _tolerances

SETTINGS = settings(max_examples=25, deadline=None)
seeds = st.integers(0, 2**31 - 1)
scales = st.floats(-6.0, 6.0).map(lambda e: np.float32(10.0**e))


def _assert_within(fn, *args):
  """``fn(*args)`` in float32 lies within the bound of its float64 value."""
  values, bounds = _rounding.rounding_bound(fn, *args)
  by_path = _rounding.by_path
  _tolerances.assert_within(by_path(jax.jit(fn)(*args)), by_path(values), by_path(bounds))


def _cancelling(seed, scale, n=4096):
  """Terms whose sum cancels to a small fraction of their sizes."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal(n) * scale
  return np.float32(np.concatenate([x, -x[: n // 2] * (1 + 1e-3 * rng.standard_normal(n // 2))]))


@SETTINGS
@given(seed=seeds, scale=scales)
def test_a_sum_that_cancels(seed, scale):
  _assert_within(jnp.sum, _cancelling(seed, scale))


def _network(w1, w2, x, labels):
  """A loss and its gradients: a product, normalisation over the batch, sigmoid, tanh, a
  cross-entropy on integer labels (a gather, its gradient a scatter-add), a square."""

  def loss(w1, w2):
    h = x @ w1
    h = (h - h.mean(0)) * jax.lax.rsqrt(h.var(0) + 1e-5)
    h = jax.nn.sigmoid(h) + jnp.tanh(h) ** 2
    logits = h @ w2
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  return jax.value_and_grad(loss, argnums=(0, 1))(w1, w2)


@SETTINGS
@given(seed=seeds, scale=st.floats(-2.0, 2.0).map(lambda e: np.float32(10.0**e)))
def test_a_network_loss_and_gradients(seed, scale):
  rng = np.random.default_rng(seed)
  w1, w2, x = (np.float32(rng.standard_normal(s)) for s in ((6, 8), (8, 3), (16, 6)))
  _assert_within(_network, w1 * scale, w2, x, np.arange(16) % 3)


def _initialise(key):
  """Weights drawn as the models draw theirs: a normal (erf_inv of uniform bits), scaled."""
  first, second = jax.random.split(key)
  return jax.random.normal(first, (64,)) * 0.3, jax.random.truncated_normal(second, -2, 2, (64,))


@SETTINGS
@given(seed=seeds)
def test_a_random_initialisation(seed):
  _assert_within(_initialise, jax.random.key(seed))


TRANSCENDENTAL = {
  "exp": lambda x: jnp.exp(-jnp.abs(x)),
  "log": lambda x: jnp.log(jnp.abs(x) + 1e-3),
  "log1p": lambda x: jnp.log1p(jnp.abs(x)),
  "expm1": lambda x: jnp.expm1(jnp.clip(x, -80, 80)),  # e**80 < the largest float32
  "tanh": jnp.tanh,
  "logistic": jax.nn.sigmoid,
  "erf": jax.lax.erf,
  "erf_inv": lambda x: jax.lax.erf_inv(x / (1 + jnp.abs(x))),
  "rsqrt": lambda x: jax.lax.rsqrt(jnp.abs(x) + 1e-30),
  "sqrt": lambda x: jnp.sqrt(jnp.abs(x)),
  "pow": lambda x: jnp.power(jnp.abs(x) + 1e-3, 0.7),
  "softmax": jax.nn.softmax,
}


@pytest.mark.parametrize("name", sorted(TRANSCENDENTAL))
@SETTINGS
@given(seed=seeds, scale=st.floats(-3.0, 1.5).map(lambda e: np.float32(10.0**e)))
def test_each_transcendental_function(name, seed, scale):
  x = np.float32(np.random.default_rng(seed).standard_normal(256) * scale)
  _assert_within(TRANSCENDENTAL[name], x)


def test_erf_inv_within_its_limit_over_every_float32_from_a_half():
  # Every float32 in [½, 1), where XLA's float32 approximation is least
  # accurate (the uniform draws of jax.random.normal land there): its own
  # error against float64, the limit _rounding.ERF_INV_ULPS states.
  x = (np.arange(2**23, dtype=np.uint32) + np.uint32(0x3F000000)).view(np.float32)
  actual = np.asarray(jax.jit(jax.lax.erf_inv)(x), np.float64)
  with jax.enable_x64(True):
    exact = np.asarray(jax.jit(jax.lax.erf_inv)(jnp.asarray(x, jnp.float64)))
  error = np.abs(actual - exact) / np.abs(exact)
  assert np.all(error <= _rounding.ERF_INV_ULPS * 2.0**-24), error.max() / 2.0**-24


def test_exact_operations_have_no_bound_and_rounding_ones_do():
  x = np.float32(np.random.default_rng(0).standard_normal(64))
  _, exact = _rounding.rounding_bound(lambda x: jnp.max(x.reshape(8, 8), axis=0)[::-1], x)
  _, rounded = _rounding.rounding_bound(lambda x: x.reshape(8, 8).sum(0), x)
  assert np.all(exact == 0)
  assert np.all(rounded > 0)


@pytest.mark.parametrize(
  "primitive, fn",
  [
    ("reduce_sum", jnp.sum),
    ("dot_general", lambda x: x @ jnp.ones_like(x)),
    ("exp", lambda x: jnp.exp(x[:256] / 1e3)),
    ("mul", lambda x: x[:256] * np.float32(0.1)),
  ],
)
def test_each_rule_is_needed(monkeypatch, primitive, fn):
  # Without the rule for its one rounding operation, each check above fails:
  # the rules are what hold the float32 results, and the checks can fail.
  magnitude = _rounding._magnitude
  monkeypatch.setattr(
    _rounding,
    "_magnitude",
    lambda eqn, *a: None if eqn.primitive.name == primitive else magnitude(eqn, *a),
  )
  _rounding._program.cache_clear()  # programs compiled with the rule, and after without
  try:
    with pytest.raises(AssertionError, match="above the bound"):
      _assert_within(fn, _cancelling(0, np.float32(1.0)))
  finally:
    _rounding._program.cache_clear()


def test_a_primitive_without_a_rule_is_refused():
  with pytest.raises(NotImplementedError, match="cumsum"):
    _rounding.rounding_bound(jnp.cumsum, np.float32([1.0, 2.0]))
