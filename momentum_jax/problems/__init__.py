"""Problems: a model, its data, its loss and its metrics.

A :class:`Problem` is everything :mod:`momentum_jax.train` needs besides the
optimizer: the data (a :class:`~momentum_jax.data.Dataset` on the device or a
:class:`~momentum_jax.data.Stream` from the host), a function that builds the
Flax model from ``nnx.Rngs``, the loss and any extra validation metrics. It
is open: a user's own model, loss and data are problems like the built-in
ones, which are plain instances of it (chosen by name in a sweep). Regression
problems use the mean squared error; classification problems the softmax
cross-entropy, and report accuracy. A 2-D landscape (:func:`landscape`, or
its name: ``saddle``, ``rosenbrock``, ...) is a problem too: its model is a
point of the plane, its loss the landscape's value there, and its metrics
say where the point is.

A :class:`Trainable` is any other JAX training (reinforcement learning, a
hand-written step): pure ``init`` and ``train`` functions, and optionally
``evaluate``, whose hyperparameters a sweep batches as it batches a
Problem's optimizers.
"""

from momentum_jax.problems._builtin import (
  PROBLEMS,
  breast_cancer,
  cifar10_cnn,
  digits_cnn,
  digits_mlp,
  get_problem,
  landscape,
  linear_regression,
  rebuild,
)
from momentum_jax.problems._trainable import Trainable
from momentum_jax.problems._problem import Loss, Metrics, Problem, cross_entropy, mean_squared_error  # noqa: F401  (Loss, Metrics: the types)

__all__ = [
  "PROBLEMS",
  "Problem",
  "Trainable",
  "breast_cancer",
  "cifar10_cnn",
  "cross_entropy",
  "digits_cnn",
  "digits_mlp",
  "get_problem",
  "landscape",
  "linear_regression",
  "mean_squared_error",
  "rebuild",
]
