"""A user's own optimizers and problems, named in sweep configs by import path.

``tests/`` is on ``sys.path`` (see conftest.py), so a config names these as
``_user_optimizers:scaled_sgd``.
"""

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
