"""Error bounds for tests that compare the float results of different programs.

Two programs that evaluate the same formula in float32 (ours and torch's, ours
and optax's in another operation order, ours on two instruction sets) differ by
rounding alone, and rounding is bounded by the arithmetic: each operation is
exact to half an ulp (``U32`` relative), and a trajectory carries each step's
relative error ``δ_s`` on through its move, so after step ``t`` it is off by at
most (to first order) ``Σ_{s≤t} (U32·|w_s| + δ_s·|Δw_s|)``: the last rounding
of ``w`` plus the update's. The bounds here compute that sum from a reference
trajectory, with ``δ_s`` from the operations an update passes through and
whatever they amplify (a cancellation, a bias correction, a schedule evaluated
in float32). Tests state which terms they add and why.

What differs from one CPU to another is which of those roundings happen
(XLA fuses multiply-adds, vectorizes sums in another order, evaluates
transcendental functions with other polynomials), never their bound; so a
test whose tolerance is such a sum holds on every instruction set
(``tests/isa_sweep.sh`` runs the numeric tests on several to check).
"""

from __future__ import annotations

import jax
import numpy as np
import optax

# Unit roundoff: half an ulp of 1, the largest relative error of one rounding.
U32 = 2.0**-24
U64 = 2.0**-53
# bfloat16 keeps 8 significant bits: one rounding is off by up to 2**-8 relative.
U_BFLOAT16 = 2.0**-8

# Roundings an optimizer's update passes through between the gradient and
# ``w − Δ``, counted on the longest of ours (centered RMSProp with momentum):
# the square, the two EMAs' products and sum (3 each), E[g]², the difference,
# the root, ``+ eps``, the division, the buffer's product and sum, ``× lr``;
# the gradient's own (a least-squares product over a few dozen rows: its sums
# round a few times ``U32``, relative to its terms) is of the same order. 16
# counts each once more: a bound, not an estimate.
UPDATE_ROUNDINGS = 16


def moves(start: np.ndarray, path: np.ndarray) -> np.ndarray:
  """``|Δw_s|``, the size of each step of a trajectory (``path`` stacks the steps)."""
  return np.abs(np.diff(np.concatenate([start[None], path]), axis=0))


def carried(relative: np.ndarray | float, start: np.ndarray, path: np.ndarray) -> np.ndarray:
  """``Σ_{s≤t} δ_s·|Δw_s|``: relative errors of each update carried along the trajectory.

  ``relative`` is a number or one value per step; the result is shaped like
  ``path``.
  """
  delta = np.broadcast_to(np.asarray(relative, np.float64), (len(path),))
  return np.cumsum(delta.reshape((-1,) + (1,) * (path.ndim - 1)) * moves(start, path), axis=0)


def float32_drift_bound(
  start: np.ndarray, path: np.ndarray, relative: np.ndarray | float = 0.0
) -> np.ndarray:
  """How far a float32 run of a trajectory may lie from its exact run, per step and element.

  ``Σ_{s≤t} U32·|w_s| + (UPDATE_ROUNDINGS·U32 + relative_s)·|Δw_s|``, from the
  exact (float64) ``path``; ``relative`` adds what a formula amplifies
  (:func:`cancellation`, :func:`bias_correction_error`, a float32 schedule).
  First order: the problems the tests run are stable at their rates, so an
  error made at step ``s`` is carried on, not grown.
  """
  last_rounding = np.cumsum(U32 * np.abs(path), axis=0)
  return last_rounding + carried(UPDATE_ROUNDINGS * U32 + np.asarray(relative), start, path)


def cancellation(minuend: np.ndarray, subtrahend: np.ndarray) -> np.ndarray:
  """Relative error of ``a − b`` from rounded ``a`` and ``b``: ``U32·(|a| + |b|)/|a − b|``.

  Centered RMSProp's ``E[g²] − E[g]²`` loses the leading digits as E[g]
  settles; its root halves the relative error, the caller's to apply.
  """
  return U32 * (np.abs(minuend) + np.abs(subtrahend)) / np.abs(minuend - subtrahend)


def bias_correction_error(beta: float, steps: int) -> np.ndarray:
  """Relative error of Adam's bias correction ``1 − β**t`` as optax and we compute it.

  In float32, with ``β`` itself rounded to float32 (0.999 becomes 0.99900001):
  the subtraction cancels the leading digits, magnifying that rounding by
  ``1/(1 − β**t)``, about 1.3e-5 relative for β = 0.999 and small ``t``
  (1.3e-6 for β = 0.99); plus two ulps of ``β**t`` itself. torch evaluates it
  in float64. One value per step ``t = 1 … steps``.
  """
  t = np.arange(1, steps + 1, dtype=np.float64)
  exact = 1 - beta**t
  rounded_beta = float(np.float32(beta))
  return np.abs((1 - rounded_beta**t) / exact - 1) + 2 * U32 / exact  # 2 ulps of β**t < 1.


def adam_bias_correction_error(b1: float, b2: float, steps: int) -> np.ndarray:
  """Relative error of Adam's update from its two corrections, per step.

  The update scales with ``1/(1 − b1**t)`` and ``1/√(1 − b2**t)``: their
  relative errors add, the second halved by the root. A wrong formula (a
  correction off by one step, or missing) errs by ``~1/t`` relative, far beyond.
  """
  return bias_correction_error(b1, steps) + 0.5 * bias_correction_error(b2, steps)


def in_float64(float32_bound: np.ndarray) -> np.ndarray:
  """A bound of :func:`float32_drift_bound`'s form for the same run in float64.

  Each of its terms is a count of roundings times ``U32``; in float64 each is
  ``U64``. (The bias-correction term is not such a count: scaled down too it
  overstates the float64 one, which has no rounded β, and stays negligible.)
  """
  return float32_bound * (U64 / U32)


def momentum_rounding_bound(learning_rate: float, beta: float, gradients: np.ndarray) -> np.ndarray:
  """How far a float32 momentum update ``lr·Σ_s β^(t−s)·g_s`` (+ ``lr·g_t``, Nesterov's) may
  lie from its exact value, per step and element.

  The velocity is summed one step at a time, two roundings a step (``β·v``,
  the sum); the update adds at most four more (``(1 − β)·g`` or Nesterov's
  ``β·v + g``, ``× lr``, a learning rate rounded to float32). A sum of ``n``
  rounded terms is off by at most ``n·U32·Σ|terms|`` (to first order), so
  at step ``t`` (from 0): ``(2t + 6)·U32·lr·(Σ_s β^(t−s)·|g_s| + |g_t|)``.
  Relative to the update it is unbounded where the gradients cancel; hence
  an absolute bound.
  """
  gradients = np.abs(np.asarray(gradients, np.float64))
  velocity, bounds = np.zeros_like(gradients[0]), []
  for t, g in enumerate(gradients):
    velocity = beta * velocity + g
    bounds.append((2 * t + 6) * U32 * learning_rate * (velocity + g))
  return np.stack(bounds)


def amplification(
  states, steps: int, *, b1: float | None = None, b2: float | None = None, centered: bool = False
) -> np.ndarray | float:
  """What an update amplifies beyond its plain roundings, per step (relative).

  Adam's bias corrections are float32 (:func:`adam_bias_correction_error`,
  given ``b1`` and ``b2``); centered RMSProp divides by ``√(E[g²] − E[g]²)``,
  whose difference cancels as E[g] settles (:func:`cancellation`, halved by
  the root; the largest over the elements, from the run's moments ``states``,
  each stacked per step).
  """
  relative = 0.0
  if b2 is not None:
    relative = adam_bias_correction_error(b1, b2, steps)
  if centered:
    nu, mu = optax.tree.get(states, "nu"), optax.tree.get(states, "mu")
    worst = [
      (0.5 * cancellation(np.abs(_wide(n)), np.abs(_wide(m)) ** 2)).reshape(steps, -1).max(axis=1)
      for n, m in zip(jax.tree.leaves(nu), jax.tree.leaves(mu))
    ]
    relative = relative + np.max(worst, axis=0)
  return relative


def _wide(x) -> np.ndarray:
  x = np.asarray(x)
  return x.astype(np.complex128 if np.iscomplexobj(x) else np.float64)


def run_and_bound(
  tx: optax.GradientTransformation,
  grad_fn,
  params,
  steps: int,
  *,
  centered: bool = False,
  relative: np.ndarray | float = 0.0,
  **betas: float,
):
  """A run of ``tx`` fed ``grad_fn(params)`` (the params after each step, stacked) and, per
  leaf, its :func:`float32_drift_bound` with what the update amplifies
  (:func:`amplification`; ``betas``: Adam's ``b1`` and ``b2``) and ``relative``.

  The bound is computed about this run itself rather than an exact one: the
  two differ by the bound, a second-order change to it. Complex parameters
  are bounded in modulus.
  """

  def step(carry, _):
    p, state = carry
    updates, state = tx.update(grad_fn(p), state, p)
    p = optax.apply_updates(p, updates)
    return (p, state), (p, state)

  _, (path, states) = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=steps))(
    params
  )
  relative = relative + amplification(
    jax.tree.map(np.asarray, states), steps, centered=centered, **betas
  )
  bound = {k: float32_drift_bound(_wide(params[k]), _wide(path[k]), relative) for k in path}
  return path, bound


def assert_within(actual, expected, bound) -> None:
  """``|actual − expected| ≤ bound`` leaf by leaf and element by element, naming the worst."""
  for k in bound:
    error = np.abs(_wide(actual[k]) - _wide(expected[k]))
    worst = np.unravel_index(np.argmax(error - bound[k]), error.shape)
    assert np.all(error <= bound[k]), (
      f"leaf {k!r} at {worst}: |error| {error[worst]:.3g} above the bound {bound[k][worst]:.3g}"
    )


# Roundings of a schedule's float32 formula, counted on the longest (cosine
# annealing): its three hyperparameters, ``t / T``, π and ``× π``, the cosine
# (XLA's polynomial: 2 ulps), ``1 +``, ``init − min``, the two products and
# ``+ min``: 12, each off by up to ``U32`` times the largest value the
# formula takes. 16 leaves room for a fused or reordered operation.
SCHEDULE_ROUNDINGS = 16


def power_amplification(base, exponent) -> np.ndarray:
  """Relative error of a float32 ``base ** exponent`` per ``U32`` of its inputs' rounding.

  ``base`` rounded by ``U32`` moves the power by ``|y|·U32`` relative, and
  XLA's ``exp(y·ln x)`` carries ``ln x``'s rounding times ``|y·ln x|``.
  """
  base = np.asarray(base, np.float64)
  exponent = np.abs(np.asarray(exponent, np.float64))
  with np.errstate(divide="ignore"):  # 0 ** y is exact: nothing to amplify
    return np.where(base == 0, 0.0, exponent * (1 + np.abs(np.log(base))))


def schedule_bound(exact, scale: float, amplification=0.0) -> np.ndarray:
  """How far a float32 schedule may lie from its closed form in exact arithmetic, per step.

  ``SCHEDULE_ROUNDINGS·U32·scale`` (``scale``: the largest value the formula
  takes: the initial or peak value) plus what a power amplifies
  (:func:`power_amplification`) relative to the ``exact`` values. Two float32
  evaluations (vmapped and alone, ours and optax's) lie twice this apart.
  """
  return U32 * (
    SCHEDULE_ROUNDINGS * scale + np.asarray(amplification) * np.abs(np.asarray(exact, np.float64))
  )


def update_rounding_bound(
  exact: np.ndarray, magnitude: np.ndarray, relative: np.ndarray | float = 0.0
) -> np.ndarray:
  """How far a float32 sequence of updates fed given gradients (not applied) may lie from its
  exact values, per step and element.

  An optimizer's accumulators (velocity, first and second moments, sum of
  squares) are sums rounded twice a step, and a sum of ``n`` rounded terms is
  off by at most ``n·U32·Σ|terms|``: at step ``t`` (from 0),
  ``(2t + UPDATE_ROUNDINGS)·U32·magnitude``, where ``magnitude`` is the same
  optimizer's exact updates fed ``|g|`` (and ``|w|``), whose sums are of the
  terms' sizes. Plus ``relative·|exact|``: what the formula amplifies
  (:func:`amplification`). ``exact`` and ``magnitude`` stack the steps.
  """
  exact, magnitude = np.abs(np.asarray(exact)), np.abs(np.asarray(magnitude))
  t = np.arange(len(exact)).reshape((-1,) + (1,) * (exact.ndim - 1))
  relative = np.asarray(relative, np.float64).reshape((-1,) + (1,) * (exact.ndim - 1))
  return (2 * t + UPDATE_ROUNDINGS) * U32 * magnitude + relative * exact
