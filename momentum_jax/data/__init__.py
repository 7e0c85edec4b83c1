"""Data for the studies: synthetic regression, scikit-learn sets, CIFAR-10, 2-D landscapes.

Every loader returns a :class:`Dataset` of jax arrays (on the default device),
validated once; the landscapes are small differentiable functions of a point
in the plane, with :func:`run_on_landscape` to trace an optimizer's path.

>>> from momentum_jax import data
>>> data.regression_uniform().x_train.shape
(100, 1)
"""

from momentum_jax.data._cifar10 import CIFAR10_ENV_VAR
from momentum_jax.data._cifar10 import CIFAR10NotFoundError
from momentum_jax.data._cifar10 import load_cifar10
from momentum_jax.data._dataset import Dataset
from momentum_jax.data._landscapes import LANDSCAPES
from momentum_jax.data._landscapes import Landscape
from momentum_jax.data._landscapes import get_landscape
from momentum_jax.data._landscape_runs import reach_fraction
from momentum_jax.data._landscape_runs import run_on_landscape
from momentum_jax.data._stream import Stream
from momentum_jax.data._regression import least_squares
from momentum_jax.data._regression import regression_normal
from momentum_jax.data._regression import regression_uniform
from momentum_jax.data._sklearn import load_breast_cancer
from momentum_jax.data._sklearn import load_digits

__all__ = [
  "CIFAR10NotFoundError",
  "CIFAR10_ENV_VAR",
  "Dataset",
  "LANDSCAPES",
  "Landscape",
  "get_landscape",
  "least_squares",
  "load_breast_cancer",
  "load_cifar10",
  "load_digits",
  "reach_fraction",
  "regression_normal",
  "regression_uniform",
  "run_on_landscape",
  "Stream",
]
