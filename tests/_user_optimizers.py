"""A user's own optimizers and problems, named in sweep configs by import path.

``tests/`` is on ``sys.path`` (see conftest.py), so a config names these as
``_user_optimizers:scaled_sgd``.
"""

import jax
import optax

from momentum_jax import problems

NOT_CALLABLE = 3


def scaled_sgd(learning_rate, scale=1.0):
  """Gradient descent on ``scale`` times the gradient."""
  return optax.chain(optax.scale(scale), optax.sgd(learning_rate))


def branching(learning_rate, beta=0.9):
  """Momentum above 0.5 only: a Python branch on a value, which cannot be traced."""
  if beta > 0.5:
    return optax.sgd(learning_rate, momentum=beta)
  return optax.sgd(learning_rate)


def not_a_transformation(learning_rate):
  return {"learning_rate": learning_rate}


def small_regression(dataset="uniform", seed=0):
  """The literature's regression, 100 samples by default."""
  return problems.linear_regression(dataset, seed)


def not_a_problem(dataset="uniform"):
  return dataset


def sgd_reduced_on_plateau(learning_rate):
  """SGD whose steps are halved when the loss stops falling (optax's reduce_on_plateau)."""
  return optax.chain(
    optax.sgd(learning_rate),
    optax.contrib.reduce_on_plateau(factor=0.5, patience=2, accumulation_size=5),
  )


def half_params(opt_state, params):
  """Evaluation parameters: half the iterate (a model that must evaluate apart from it)."""
  del opt_state
  return jax.tree.map(lambda p: p / 2, params)


def sophia(learning_rate):
  """optax.contrib.sophia, given the batch's loss by the name it reads (``obj_fn``)."""
  tx = optax.contrib.sophia(learning_rate)

  def update(updates, state, params=None, value_fn=None, **extra_args):
    del extra_args
    return tx.update(updates, state, params, obj_fn=value_fn)

  return optax.GradientTransformationExtraArgs(tx.init, update)


def sgd_with_options(learning_rate, **options):
  """Gradient descent taking any other argument, as a user's factory may: each is traced."""
  return optax.sgd(learning_rate + 0.0 * sum(options.values()))
