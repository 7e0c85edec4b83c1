"""The built-in problems, plain instances of :class:`~momentum_jax.problems.Problem`, by name.

Regression on the literature's synthetic sets, MLPs and CNNs on scikit-learn's
shipped sets and CIFAR-10 from a local folder, and the 2-D landscapes;
:func:`get_problem` finds one by name (the sweep's ``problem.name``) and
:func:`rebuild` builds one again from a manifest's record.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from momentum_jax import data as data_lib
from momentum_jax import models
from momentum_jax.problems._problem import Problem
from momentum_jax.problems._trainable import Trainable


def linear_regression(dataset: str = "normal", seed: int = 0) -> Problem:
  """Linear regression on the literature's synthetic sets.

  Args:
    dataset: ``"normal"`` (1000 samples, ``y = 3x + 2 + 0.5·noise``) or
      ``"uniform"`` (100 samples, ``y = 2 + 3x + noise``).
    seed: Data seed.
  """
  loaders = {"normal": data_lib.regression_normal, "uniform": data_lib.regression_uniform}
  _check_choice("dataset", dataset, loaders)
  dataset_ = loaders[dataset](seed=seed)
  return Problem(
    f"linear_regression_{dataset}", dataset_, lambda rngs: models.LinearRegression(1, rngs=rngs)
  )


def _checked(problem: Problem) -> Problem:
  """``problem``, its model's shapes built, to fail now, with the model's own message, on bad options.

  ``nnx.eval_shape`` runs the constructor without computing any weight: a
  real initialization would compile a small program for every layer's
  shape (~1 s for a two-layer MLP on a CPU core), to be thrown away. The
  shapes are kept (:meth:`Problem.abstract_model`).
  """
  problem.abstract_model()
  return problem


def _mlp_problem(name, dataset_, hidden, activation, batch_norm, residual, init):
  def make_model(rngs):
    return models.MLP(
      dataset_.input_shape[0],
      hidden,
      dataset_.num_classes,
      activation=activation,
      batch_norm=batch_norm,
      residual=residual,
      init=init,
      rngs=rngs,
    )

  return _checked(Problem(name, dataset_, make_model))


def digits_mlp(
  hidden=(128, 128), activation="relu", batch_norm=False, residual=False, init="he_normal", seed=0
) -> Problem:
  """An MLP on scikit-learn's 8x8 digits (64 features, 10 classes)."""
  return _mlp_problem(
    "digits_mlp",
    data_lib.load_digits(seed=seed),
    tuple(hidden),
    activation,
    batch_norm,
    residual,
    init,
  )


def breast_cancer(
  hidden=(32,), activation="relu", batch_norm=False, residual=False, init="he_normal", seed=0
) -> Problem:
  """An MLP on scikit-learn's breast-cancer set (30 features, 2 classes)."""
  return _mlp_problem(
    "breast_cancer",
    data_lib.load_breast_cancer(seed=seed),
    tuple(hidden),
    activation,
    batch_norm,
    residual,
    init,
  )


def _cnn_problem(name, dataset_, channels, dense, batch_norm):
  def make_model(rngs):
    return models.CNN(
      dataset_.input_shape,
      dataset_.num_classes,
      channels=tuple(channels),
      dense=dense,
      batch_norm=batch_norm,
      rngs=rngs,
    )

  return _checked(Problem(name, dataset_, make_model))


def digits_cnn(channels=(16, 32), dense=64, batch_norm=False, seed=0) -> Problem:
  """The small CNN on the 8x8 digits as images (the default image problem)."""
  return _cnn_problem(
    "digits_cnn", data_lib.load_digits(seed=seed, image=True), channels, dense, batch_norm
  )


def cifar10_cnn(path: str | None = None, channels=(32, 64), dense=128, batch_norm=False) -> Problem:
  """The CNN on CIFAR-10 read from a local folder (never downloaded)."""
  return _cnn_problem("cifar10_cnn", data_lib.load_cifar10(path), channels, dense, batch_norm)


def landscape(name: str, start=None, start_spread: float = 0.0) -> Problem:
  """Descent on the 2-D landscape called ``name`` (see :data:`momentum_jax.data.LANDSCAPES`).

  The model is a :class:`~momentum_jax.models.LandscapePoint` at ``start``; the
  loss is the landscape's value at the point, full gradient at every step
  (a landscape has no data: one placeholder example in each split). Besides the loss, a run logs
  the point and its distance to the nearest global minimum
  (its metrics ``x``, ``y`` and ``distance_to_minimum``, logged as ``val_x``,
  …). In a sweep every landscape is also a
  problem by its own name: ``problem: {name: saddle, start: [1.5, 0.01]}``.

  Args:
    name: ``tilted_double_well``, ``saddle``, ``plateau``, ``narrow_valley``
      or ``rosenbrock``.
    start: The starting point ``(x, y)``; ``None``: the landscape's own,
      from which plain GD shows its failure.
    start_spread: Standard deviation of a Gaussian perturbation of the start
      drawn from each run's key, so that seeds start at different points;
      0: every seed at ``start``.

  Example:
    >>> from momentum_jax import problems
    >>> problem = problems.landscape("rosenbrock")
    >>> problem.name, problem.loss_floor
    ('rosenbrock', 0.0)
  """
  land = data_lib.get_landscape(name)
  if start is None:
    start = land.start
  try:  # true/false and "1" would pass as numbers
    numbers = not isinstance(start, (list, tuple)) or not any(
      isinstance(v, (bool, str)) for v in start
    )
    point = np.asarray(start, dtype=np.float64) if numbers else None
  except (TypeError, ValueError):
    point = None
  if point is None or point.shape != (2,) or not np.all(np.isfinite(point)):
    raise ValueError(f"start must be two finite numbers [x, y], got {start!r}")
  start = tuple(float(v) for v in point)
  if (
    isinstance(start_spread, bool)
    or not isinstance(start_spread, (int, float))
    or not (np.isfinite(start_spread) and start_spread >= 0)
  ):
    raise ValueError(f"start_spread must be a finite number >= 0, got {start_spread!r}")

  def make_model(rngs):
    return models.LandscapePoint(land.fn, start, start_spread, rngs=rngs)

  floor = float(
    np.min(np.asarray(jax.jit(jax.vmap(land.fn))(jnp.asarray(land.global_minima, jnp.float32))))
  )
  minima = jnp.asarray(land.global_minima, jnp.float32)

  def value(model, x, y):
    del x, y  # a landscape has no data: its value at the point is the loss
    return model()

  def where(model, x, y):
    """The point, and its Euclidean distance to the nearest global minimum.

    (A point that stopped in a local minimum stays far from it.)
    """
    del x, y
    xy = model.xy[...]
    return {
      "x": xy[0],
      "y": xy[1],
      "distance_to_minimum": jnp.min(jnp.linalg.norm(minima - xy, axis=-1)),
    }

  # One placeholder example in each split: the value is evaluated (val_loss)
  # and the point logged (val_x, …) like any problem's validation metrics.
  zero_x, zero_y = np.zeros((1, 2), np.float32), np.zeros(1, np.float32)
  placeholder = data_lib.Dataset(land.name, zero_x, zero_y, zero_x, zero_y)
  return _checked(
    Problem(
      land.name,
      placeholder,
      make_model,
      loss=value,
      metrics=where,
      loss_floor=floor,
      landscape=land,
    )
  )


def _landscape_by_name(name: str) -> Callable[..., Problem]:
  def build(start=None, start_spread: float = 0.0) -> Problem:
    return landscape(name, start, start_spread)

  build.__name__ = name
  build.__doc__ = f"The {name!r} landscape; see :func:`landscape`."
  return build


PROBLEMS: dict[str, Callable[..., Problem]] = {
  "linear_regression": linear_regression,
  "digits_mlp": digits_mlp,
  "digits_cnn": digits_cnn,
  "breast_cancer": breast_cancer,
  "cifar10_cnn": cifar10_cnn,
  **{name: _landscape_by_name(name) for name in data_lib.LANDSCAPES},
}


def _check_choice(name: str, value: Any, choices) -> None:
  if value not in choices:
    close = difflib.get_close_matches(str(value), list(choices), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}{hint}")


def get_problem(name: str, **options: Any) -> Problem:
  """Builds the problem called ``name`` with its ``options``.

  Raises:
    ValueError: for an unknown name, suggesting the closest.
  """
  _check_choice("problem", name, PROBLEMS)
  return PROBLEMS[name](**options)


def rebuild(name: str, options: Mapping[str, Any]) -> Problem | Trainable:
  """The problem a finished sweep built: by its built-in ``name`` or ``package.module:function``.

  For reading a sweep back (a manifest's ``problem_builder``, see
  :func:`momentum_jax.results.load_model`): its config was checked when it
  ran, so the builder is looked up and called as it was then.

  Raises:
    ValueError: for an unknown name, a builder that cannot be imported
      again, or one that returns neither a :class:`Problem` nor a
      :class:`~momentum_jax.problems.Trainable`.
  """
  if ":" not in name:
    return get_problem(name, **options)
  module, _, qualname = name.partition(":")
  try:
    builder = importlib.import_module(module)
    for part in qualname.split("."):
      builder = getattr(builder, part)
  except (ImportError, AttributeError) as error:
    raise ValueError(
      f"the problem's builder {name} cannot be imported again ({error}); pass the problem itself"
    ) from None
  problem = builder(**options)
  if not isinstance(problem, (Problem, Trainable)):
    raise ValueError(f"{name} returned a {type(problem).__name__}, not a Problem or Trainable")
  return problem
