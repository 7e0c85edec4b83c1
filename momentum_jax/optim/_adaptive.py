"""Per-parameter adaptive scalings: RMSProp, AdaGrad and Adam.

For complex parameters the second moments accumulate ``|g|² = g · conj(g)``
and are kept real (float32 for complex64), as optax's are in value; the
updates then minimise a real loss when fed its conjugated gradient, optax's
convention. (torch instead treats a complex number as two real ones.)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from momentum_jax.optim import _checks, _tree


class RmsState(NamedTuple):
  """State of :func:`scale_by_rms`.

  Attributes:
    nu: EMA of the squared gradients, ``E[|g|²]``, real.
    mu: EMA of the gradients, ``E[g]``, when ``centered=True``; else ``None``.
  """

  nu: optax.Updates
  mu: optax.Updates | None


def scale_by_rms(
  decay: jax.typing.ArrayLike = 0.9,
  eps: jax.typing.ArrayLike = 1e-8,
  *,
  eps_in_sqrt: bool = True,
  centered: bool = False,
  initial_scale: jax.typing.ArrayLike = 0.0,
) -> optax.GradientTransformation:
  r"""Divides gradients by the root of an EMA of their squares (RMSProp's scaling).

  For a gradient ``g``::

    E[g²] ← decay · E[g²] + (1 − decay) · |g|²        (starts at initial_scale)
    s     = E[g²]                  or, centered:  E[g²] − |E[g]|²
    update = g / √(s + eps)        or, eps_in_sqrt=False:  g / (√s + eps)

  where ``E[g] ← decay · E[g] + (1 − decay) · g`` starts at zero.

  Args:
    decay: Decay of the moving averages, in [0, 1) (torch calls it ``alpha``).
    eps: Added to the denominator, > 0.
    eps_in_sqrt: Put ``eps`` inside the square root (the tutorials' and
      optax's default) or outside it (torch's).
    centered: Divide by an estimate of the variance instead of the second
      moment. ``E[g²] − E[g]²`` can round below zero when ``decay`` is near 0
      or the gradients are constant, giving NaN (as in torch and optax).
    initial_scale: Initial value of ``E[g²]``, >= 0 (torch starts at 0).

  Returns:
    An :class:`optax.GradientTransformation` with state :class:`RmsState`.

  References:
    Tieleman & Hinton, `Lecture 6.5 - RMSProp
    <https://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf>`_,
    COURSERA: Neural Networks for Machine Learning, 2012.

    Graves, `Generating Sequences With Recurrent Neural Networks
    <https://arxiv.org/abs/1308.0850>`_, 2013 (the centered form).
  """
  _checks.check_unit_interval("decay", decay)
  _checks.check_positive("eps", eps)
  _checks.check_non_negative("initial_scale", initial_scale)

  def init_fn(params):
    return RmsState(
      nu=_tree.real_full_like(params, initial_scale),
      mu=optax.tree.zeros_like(params) if centered else None,
    )

  def update_fn(updates, state, params=None):
    del params

    def leaf(g, nu, mu):
      # Expressions as in optax.scale_by_rms / scale_by_stddev (bit-identical).
      new_nu = (1 - decay) * _tree.abs_sq(g) + decay * nu
      if centered:
        new_mu = (1 - decay) * g + decay * mu
        second = new_nu - _tree.abs_sq(new_mu)
      else:
        new_mu, second = None, new_nu
      if eps_in_sqrt:
        scaling = jax.lax.rsqrt(second + eps)
      else:
        scaling = 1 / (jnp.sqrt(second) + eps)
      new_mu = None if new_mu is None else new_mu.astype(mu.dtype)
      return (scaling * g).astype(g.dtype), new_nu.astype(nu.dtype), new_mu

    mus = state.mu if centered else jax.tree.map(lambda _: None, updates)
    new_updates, nu, mu = _tree.map_multi(leaf, 3, updates, state.nu, mus)
    return new_updates, RmsState(nu=nu, mu=mu if centered else None)

  return optax.GradientTransformation(init_fn, update_fn)


class AdagradState(NamedTuple):
  """State of :func:`scale_by_adagrad`: the running sum of squared gradients, real."""

  sum_of_squares: optax.Updates


def scale_by_adagrad(
  eps: jax.typing.ArrayLike = 1e-10,
  *,
  initial_accumulator_value: jax.typing.ArrayLike = 0.0,
) -> optax.GradientTransformation:
  r"""Divides gradients by the root of the sum of all past squared gradients.

  For a gradient ``g``::

    G ← G + |g|²                    (starts at initial_accumulator_value)
    update = g / (√G + eps)

  This is ``torch.optim.Adagrad``'s formula; its ``lr_decay`` is a decay of
  the learning rate, in :func:`momentum_jax.adagrad`. ``optax.adagrad``
  differs: it puts ``eps`` inside the root, ``g / √(G + eps)``, with default
  ``eps=1e-7``, returns 0 where ``G = 0``, and starts ``G`` at 0.1; given
  ``initial_accumulator_value=0.0``, optax agrees with this when ``eps`` is
  negligible against ``√G``.

  Args:
    eps: Added to the denominator, outside the root, > 0.
    initial_accumulator_value: Initial value of ``G``, >= 0.

  Returns:
    An :class:`optax.GradientTransformation` with state :class:`AdagradState`.

  References:
    Duchi, Hazan & Singer, `Adaptive Subgradient Methods for Online Learning
    and Stochastic Optimization <https://jmlr.org/papers/v12/duchi11a.html>`_,
    JMLR 2011.
  """
  _checks.check_positive("eps", eps)
  _checks.check_non_negative("initial_accumulator_value", initial_accumulator_value)

  def init_fn(params):
    return AdagradState(sum_of_squares=_tree.real_full_like(params, initial_accumulator_value))

  def update_fn(updates, state, params=None):
    del params

    def leaf(g, total):
      new_total = total + _tree.abs_sq(g)
      update = g / (jnp.sqrt(new_total) + eps)
      return update.astype(g.dtype), new_total.astype(total.dtype)

    new_updates, totals = _tree.map_multi(leaf, 2, updates, state.sum_of_squares)
    return new_updates, AdagradState(sum_of_squares=totals)

  return optax.GradientTransformation(init_fn, update_fn)


class AdamState(NamedTuple):
  """State of :func:`scale_by_adam`.

  Attributes:
    count: Number of updates taken, int32 (saturates instead of overflowing).
    mu: EMA of the gradients (first moment), in ``mu_dtype``.
    nu: EMA of the squared gradients ``|g|²`` (second moment), real.
    nu_max: With ``amsgrad=True``, the running maximum of ``nu``; else ``None``.
  """

  count: jax.Array
  mu: optax.Updates
  nu: optax.Updates
  nu_max: optax.Updates | None = None


def scale_by_adam(
  b1: jax.typing.ArrayLike = 0.9,
  b2: jax.typing.ArrayLike = 0.999,
  eps: jax.typing.ArrayLike = 1e-8,
  *,
  eps_root: jax.typing.ArrayLike = 0.0,
  amsgrad: bool = False,
  mu_dtype: jax.typing.DTypeLike | None = None,
) -> optax.GradientTransformation:
  r"""Scales gradients by Adam's bias-corrected moment estimates.

  For a gradient ``g`` at step ``t = 1, 2, …``::

    m ← b1 · m + (1 − b1) · g          m̂ = m / (1 − b1**t)
    v ← b2 · v + (1 − b2) · |g|²       v̂ = v / (1 − b2**t)
    update = m̂ / (√(v̂ + eps_root) + eps)

  With ``amsgrad=True`` (torch's AMSGrad), ``v̂`` is replaced by
  ``max(v_1, …, v_t) / (1 − b2**t)``: the running maximum of the
  *uncorrected* second moment, corrected at the current step.
  ``optax.amsgrad`` takes the maximum of the corrected ``v̂`` instead, which
  keeps the large early corrections ``1/(1 − b2**t)`` in the maximum, so the
  two differ (``optax.scale_by_amsgrad(bias_correction_nu=False)`` takes the
  uncorrected maximum but never corrects it).

  Args:
    b1: Decay of the first moment, in [0, 1).
    b2: Decay of the second moment, in [0, 1).
    eps: Added to the denominator outside the root, > 0.
    eps_root: Added inside the root, >= 0 (needed only to differentiate
      through the update, as in meta-learning).
    amsgrad: Divide by the running maximum of the second moment (torch's).
    mu_dtype: The first moment's dtype (optax's ``mu_dtype``), e.g.
      ``jnp.float32`` for bfloat16 parameters; ``None`` keeps the
      parameters'. The second moment keeps the parameters' (real) dtype.

  Returns:
    An :class:`optax.GradientTransformation` with state :class:`AdamState`.

  References:
    Kingma & Ba, `Adam: A Method for Stochastic Optimization
    <https://arxiv.org/abs/1412.6980>`_, ICLR 2015.

    Reddi, Kale & Kumar, `On the Convergence of Adam and Beyond
    <https://openreview.net/forum?id=ryQu7f-RZ>`_, ICLR 2018 (AMSGrad).
  """
  _checks.check_unit_interval("b1", b1)
  _checks.check_unit_interval("b2", b2)
  _checks.check_positive("eps", eps)
  _checks.check_non_negative("eps_root", eps_root)

  def init_fn(params):
    nu = _tree.real_full_like(params, 0.0)
    return AdamState(
      count=jnp.zeros([], jnp.int32),
      mu=optax.tree.zeros_like(params, dtype=mu_dtype),
      nu=nu,
      nu_max=nu if amsgrad else None,
    )

  def update_fn(updates, state, params=None):
    del params
    count = optax.safe_increment(state.count)
    # Computed in float32 whatever the parameters' dtype: in bfloat16, b2**t
    # rounds to 1 and the correction would divide by zero (as optax notes).
    correction1 = 1 - b1**count
    correction2 = 1 - b2**count

    def leaf(g, mu, nu, nu_max):
      # Expressions as in optax.scale_by_adam (bit-identical results).
      new_mu = (1 - b1) * g + b1 * mu
      new_nu = (1 - b2) * _tree.abs_sq(g) + b2 * nu
      if amsgrad:
        new_nu_max = jnp.maximum(nu_max, new_nu.astype(nu_max.dtype))
        second = new_nu_max
      else:
        new_nu_max, second = None, new_nu
      mu_hat = new_mu / correction1.astype(new_mu.dtype)
      nu_hat = second / correction2.astype(second.dtype)
      update = mu_hat / (jnp.sqrt(nu_hat + eps_root) + eps)
      return (update.astype(g.dtype), new_mu.astype(mu.dtype), new_nu.astype(nu.dtype), new_nu_max)

    nu_maxes = state.nu_max if amsgrad else jax.tree.map(lambda _: None, updates)
    new_updates, mu, nu, nu_max = _tree.map_multi(leaf, 4, updates, state.mu, state.nu, nu_maxes)
    return new_updates, AdamState(count=count, mu=mu, nu=nu, nu_max=nu_max if amsgrad else None)

  return optax.GradientTransformation(init_fn, update_fn)
