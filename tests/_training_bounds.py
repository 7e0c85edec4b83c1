"""Error bounds for tests that compare trained networks across programs.

Two programs that train the same network (vmapped at another width and
alone, one chunk and another, the engine and ``train.train``, an optax loop)
round differently, and a rounding made at one step reaches the logged
metrics through every later step. Through a network's training no closed
form bounds that, so it is measured: a perturbation of relative size
:data:`PERTURBATION` (2**12 ulps: far above the few ulps a step by which two
programs differ, so the difference is the response and not their rounding;
small enough that the response is linear in it) of

* the weights at a few steps (the start of each log interval and the last
  step: :func:`_shifted_at`), each in a run of its own. A step's roundings
  perturb the weights by at most ``UPDATE_ROUNDINGS`` ulps (relative); a
  perturbation at a step between two measured ones reaches a metric by no
  more than the larger of theirs (the response changes monotonically between
  them: it grows as a converging training has fewer steps left to contract
  it, or shrinks as a diverging one has fewer to grow it), so each stretch
  of steps counts its length times that larger response;
* the learning rate: every update off by the same relative amount, the form
  an update's own roundings take (``UPDATE_ROUNDINGS`` ulps each, this
  response already summed over the steps);

plus the metric's own evaluation (:func:`sum_bound`). Each program lies
within that of the exact run: two programs, twice.

``tests/test_training_bounds.py`` checks the measured reach against the exact
one, the closed-form propagation of each step's rounding through heavy-ball
momentum on the regression (a linear map), on every setting of the
engine's test sweep.
"""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

import momentum_jax as mj
from _tolerances import U32, UPDATE_ROUNDINGS
from momentum_jax.train import build_train, compiler_options

PERTURBATION = 2.0**-12
METRICS = ("train_loss", "grad_norm", "val_loss")


def _shifted_at(make_optimizer):
  """``make_optimizer`` taking two more hyperparameters: its update at step ``shift_step``
  moves every weight by ``shift·w`` more, a perturbation of the weights there. As
  hyperparameters, the runs perturbed (at any step) and not are one program.
  """

  def shift_once(shift, shift_step) -> optax.GradientTransformation:
    def update(updates, count, params):
      now = (count == shift_step.astype(jnp.int32)).astype(shift.dtype) * shift
      return jax.tree.map(lambda u, p: u + now * p, updates, params), count + 1

    return optax.GradientTransformation(lambda _: jnp.zeros([], jnp.int32), update)

  def make(shift, shift_step, **hyperparameters):
    return optax.chain(make_optimizer(**hyperparameters), shift_once(shift, shift_step))

  return make


def sum_bound(value, terms: int) -> np.ndarray:
  """How far two float32 programs' means of ``terms`` positive terms may lie apart.

  A float32 sum in any order is within ``(n − 1)·U32`` of the sum of its
  ``n`` terms' sizes (Higham, Accuracy and Stability of Numerical
  Algorithms, §4.2; positive terms: of the value), each term within
  ``UPDATE_ROUNDINGS`` ulps: ``2·(terms + UPDATE_ROUNDINGS)·U32·|value|``.
  """
  return 2 * (terms + UPDATE_ROUNDINGS) * U32 * np.abs(np.asarray(value, np.float64))


def _summands(problem, config, params: int) -> dict[str, int]:
  """How many terms each logged metric's float32 sums add (``params``: the parameter count).

  ``train_loss``: a batch's losses, then the mean of ``log_every`` of them;
  ``val_loss``: the validation split's; ``grad_norm`` and a leaf's
  ``grad_norm/<path>``: a gradient's batch, then the squares of (at most)
  every parameter's (the root halving their error).
  """
  batch = config.batch_size or problem.data.num_train
  norm = batch + params // 2
  return collections.defaultdict(
    lambda: norm, {"train_loss": batch + config.log_every, "val_loss": problem.data.num_val}
  )


def shift_steps(config) -> np.ndarray:
  """The steps whose weights :func:`training_bound` perturbs: each log interval's first, the last."""
  return np.unique(np.r_[np.arange(0, config.steps, config.log_every), config.steps - 1])


def _logged(problem, make_optimizer, config, runs, keys) -> tuple[dict, int]:
  """The metrics :data:`METRICS` (and each leaf's ``grad_norm/<path>``) of ``runs``, one
  vmapped program compiled as the engine compiles, and the number of parameters."""
  train = jax.jit(
    jax.vmap(build_train(problem, _shifted_at(make_optimizer), config)),
    compiler_options=compiler_options(jax.default_backend()),
  )
  result = train(runs, keys)
  metrics = {k: result.metrics[k] for k in METRICS if k in result.metrics}
  if config.grad_norms:
    norms = mj.named_norms(result.metrics["grad_norms"])
    metrics.update({f"grad_norm/{path}": norm for path, norm in norms.items()})
  params = sum(p[0].size for p in jax.tree.leaves(result.params))
  return {k: np.asarray(v, np.float64) for k, v in metrics.items()}, params


def training_bound(problem, make_optimizer, config, hyperparameters, keys) -> tuple[dict, dict]:
  """The logged metrics of these trainings, and how far two float32 programs' may lie apart.

  The trainings are ``build_train(problem, make_optimizer, config)`` at each
  row of ``hyperparameters`` (arrays, a ``learning_rate`` among them) and
  ``keys``, perturbed and not, in one vmapped program. Returns, per metric
  of ``train_loss``, ``grad_norm``, ``val_loss`` and (with
  ``config.grad_norms``) each leaf's ``grad_norm/<path>``, shaped
  ``(rows, logs)``, its values and the bound
  ``2·U32·UPDATE_ROUNDINGS·(Σ_k (s_k+1 − s_k)·max(r_k, r_k+1) + r_last + r_rate)``
  plus :func:`sum_bound`, where ``r_k`` is the response per ulp to a
  :data:`PERTURBATION` of the weights at step ``s_k`` (:func:`shift_steps`)
  and ``r_rate`` of the learning rate (the module's docstring says why).
  """
  rows, at = len(hyperparameters["learning_rate"]), shift_steps(config)
  runs = {k: np.tile(np.asarray(v, np.float32), len(at) + 2) for k, v in hyperparameters.items()}
  runs["learning_rate"][-rows:] *= np.float32(1 + PERTURBATION)  # the last block: the rate
  runs["shift"] = np.repeat(np.float32([0, *[PERTURBATION] * len(at), 0]), rows)
  runs["shift_step"] = np.repeat(np.float32([0, *at, 0]), rows)
  logged, params = _logged(
    problem, make_optimizer, config, runs, jnp.concatenate([keys] * (len(at) + 2))
  )
  summands = _summands(problem, config, params)
  bounds = {}
  for name, values in logged.items():
    _, *shifted, rate = np.abs(values.reshape(len(at) + 2, rows, -1) - values[:rows]) / (
      PERTURBATION / U32
    )
    reach = sum(
      (b - a) * np.maximum(shifted[k], shifted[k + 1]) for k, (a, b) in enumerate(zip(at, at[1:]))
    )
    reach = reach + shifted[-1] + rate
    bounds[name] = 2 * UPDATE_ROUNDINGS * reach + sum_bound(values[:rows], summands[name])
  return {k: v[:rows] for k, v in logged.items()}, bounds


def summary_bound(problem, make_optimizer, config, summary, names) -> dict[str, np.ndarray]:
  """:func:`training_bound` of each row of a sweep's ``summary`` (its columns ``names``, the
  hyperparameters, and its ``seed``), per summary column, one value a row.

  ``final_loss`` is the last ``train_loss``, ``val_loss`` the last, and
  ``best_loss`` the least: two runs' least values lie apart by at most the
  bound at either's least log, so the largest bound among the logs whose
  loss is within twice its bound of the least.
  """
  hyperparameters = {name: summary[name].to_numpy() for name in names}
  keys = jax.vmap(jax.random.key)(summary.seed.to_numpy())
  metrics, bound = training_bound(problem, make_optimizer, config, hyperparameters, keys)
  losses, loss_bound = metrics["train_loss"], bound["train_loss"]
  near_least = losses <= losses.min(axis=1, keepdims=True) + 2 * loss_bound
  columns = {
    "final_loss": loss_bound[:, -1],
    "best_loss": np.where(near_least, loss_bound, 0).max(axis=1),
  }
  if "val_loss" in summary:
    columns["val_loss"] = bound["val_loss"][:, -1]
  return columns


def assert_summaries_within(actual, expected, bound) -> None:
  """Two sweeps' summaries: the columns of ``bound`` within it row by row, the others equal."""
  for column, limit in bound.items():
    error = np.abs(actual[column].to_numpy(np.float64) - expected[column].to_numpy(np.float64))
    worst = int(np.argmax(error - limit))
    assert np.all(error <= limit), (
      f"{column} of row {worst}: |error| {error[worst]:.3g} above the bound {limit[worst]:.3g}"
    )
  others = [c for c in expected.columns if c not in bound]
  pd.testing.assert_frame_equal(actual[others], expected[others], check_exact=True)
