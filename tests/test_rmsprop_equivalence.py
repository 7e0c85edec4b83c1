"""RMSProp, every variant, equals ``optax.rmsprop`` fed the same gradients (hypothesis).

With momentum the two apply the learning rate in another place (we after the
buffer, as torch; optax before it), so they round apart; along a training
trajectory the normalised steps feed that difference back, and no
first-order bound holds it. Fed one stream of gradients instead, the updates
are the update rule alone: each float32 run lies within a derived rounding
bound of the closed form, computed here in float64 by numpy from the
float32-rounded hyperparameters (:func:`_closed_form`), so the bound holds
them both and a formula difference (eps in the root or out, the buffer
before or after the learning rate under momentum's β, a centered variance
of the wrong moment) parts them by far more.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import optax
from hypothesis import given, settings
from hypothesis import strategies as st

import momentum_jax as mj
import _tolerances
from _tolerances import U32

STEPS = 60


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _updates(ours: bool, centered: bool, eps_in_sqrt: bool, h, gradients):
  """The updates of ours (or optax's) RMSProp at hyperparameters ``h`` fed ``gradients``.

  The hyperparameters are traced: one compilation per flag combination.
  """
  make = mj.rmsprop if ours else optax.rmsprop
  tx = make(
    h["learning_rate"],
    decay=h["decay"],
    eps=h["eps"],
    eps_in_sqrt=eps_in_sqrt,
    centered=centered,
    momentum=h["momentum"],
    initial_scale=h["initial_scale"],
  )

  def step(state, g):
    update, state = tx.update(g, state)
    return state, update

  return jax.lax.scan(step, tx.init(gradients[0]), gradients)[1]


def _closed_form(h, gradients, centered, eps_in_sqrt):
  """The exact updates, and how far a float32 run of either order may lie from them.

  Roundings (U32 relative each, first order), counted from the float32
  hyperparameters (``h``, already rounded) so they add none of their own:

  * ``E[g²]`` adds positive terms, each after ``g²``, ``1 − d`` (exact for
    ``d ≥ ½``, Sterbenz), the product and the sum, then two more a step
    (``d·``, ``+``): ``(5 + 2t)·U32·E[g²]`` at step ``t``; ``E[g]`` the same
    but for the square, relative to ``E[|g|]``: ``(4 + 2t)·U32·E[|g|]``;
  * the variance ``E[g²] − E[g]²`` (centered) carries both, ``E[g]²`` twice
    ``E[g]``'s relative error and its own rounding, then the difference and
    ``+ eps`` round once each (the whole amplified where it cancels);
  * the root halves that; the root, ``1/`` (optax and we write ``rsqrt``,
    which XLA computes as ``1/√``; or ``√ + eps``), ``g·`` and ``lr·`` add
    one each: 4 beyond the variance's;
  * the buffer ``b ← m·b + s`` rounds twice a step, relative to the sizes
    of its terms ``B ← m·B + |s|``; the last ``lr·`` once more.
  """
  g = np.asarray(gradients, np.float64)
  lr, d, eps, m, scale = (
    float(h[k]) for k in ("learning_rate", "decay", "eps", "momentum", "initial_scale")
  )
  nu, mu, mu_size = np.full_like(g[0], scale), np.zeros_like(g[0]), np.zeros_like(g[0])
  buffer, size, error = np.zeros_like(g[0]), np.zeros_like(g[0]), np.zeros_like(g[0])
  updates, bounds = [], []
  for t, g_t in enumerate(g, start=1):
    nu = d * nu + (1 - d) * g_t**2
    mu, mu_size = d * mu + (1 - d) * g_t, d * mu_size + (1 - d) * np.abs(g_t)
    variance = nu - mu**2 if centered else nu
    variance_error = (5 + 2 * t) * nu
    if centered:
      variance_error = variance_error + 2 * np.abs(mu) * (4 + 2 * t) * mu_size + mu**2 + variance
    if eps_in_sqrt:
      denominator = np.sqrt(variance + eps)
      relative = 0.5 * (variance_error + variance + eps) / (variance + eps)
    else:
      denominator = np.sqrt(variance) + eps
      relative = 0.5 * variance_error / variance * np.sqrt(variance) / denominator
    s = g_t / denominator
    relative = U32 * (relative + 4)
    buffer, previous = m * buffer + s, size
    size = m * size + np.abs(s)
    error = m * error + relative * np.abs(s) + U32 * (m * previous + size)
    updates.append(-lr * buffer)
    bounds.append(lr * (error + U32 * size))
  return np.stack(updates), np.stack(bounds)


@settings(max_examples=30, deadline=None)
@given(
  learning_rate=st.floats(1e-4, 1.0),
  decay=st.floats(0.5, 0.999),
  eps=st.sampled_from([1e-8, 1e-3]),
  momentum=st.floats(0.0, 0.99),
  initial_scale=st.sampled_from([0.0, 0.1, 1.0]),
  centered=st.booleans(),
  eps_in_sqrt=st.booleans(),
  seed=st.integers(0, 2**31 - 1),
  drift=st.floats(-2.0, 2.0),
)
def test_rmsprop_equals_optax_fed_the_same_gradients(
  learning_rate, decay, eps, momentum, initial_scale, centered, eps_in_sqrt, seed, drift
):
  # A drift makes E[g] settle away from 0, where the centered variance cancels.
  gradients = jax.random.normal(jax.random.key(seed), (STEPS, 3, 4)) + np.float32(drift)
  h = {
    k: np.float32(v)
    for k, v in dict(
      learning_rate=learning_rate,
      decay=decay,
      eps=eps,
      momentum=momentum,
      initial_scale=initial_scale,
    ).items()
  }
  exact, bound = _closed_form(h, gradients, centered, eps_in_sqrt)
  runs = {
    name: np.asarray(_updates(ours, centered, eps_in_sqrt, h, gradients), np.float64)
    for name, ours in (("ours", True), ("optax", False))
  }
  _tolerances.assert_within(runs, dict.fromkeys(runs, exact), dict.fromkeys(runs, bound))
