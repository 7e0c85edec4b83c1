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
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from momentum_jax import data as data_lib
from momentum_jax import models

__all__ = ["PROBLEMS", "Problem", "breast_cancer", "cifar10_cnn", "cross_entropy", "digits_cnn",
           "digits_mlp", "get_problem", "landscape", "linear_regression", "mean_squared_error",
           "rebuild"]

Loss = Callable[[nnx.Module, jax.Array, jax.Array], jax.Array]
Metrics = Callable[[nnx.Module, jax.Array, jax.Array], dict[str, jax.Array]]


def cross_entropy(model: nnx.Module, x: jax.Array, y: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy of the model's logits against integer labels."""
  return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


def mean_squared_error(model: nnx.Module, x: jax.Array, y: jax.Array) -> jax.Array:
  """Mean squared error of the model's outputs against the targets."""
  return jnp.mean((model(x) - y) ** 2)


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
  """A model to train on data, with its loss and metrics.

  Attributes:
    name: Short name, used in results tables.
    data: A :class:`~momentum_jax.data.Dataset` (arrays on the device) or a
      :class:`~momentum_jax.data.Stream` (batches from the host).
    make_model: Builds the Flax model, in training mode, from ``nnx.Rngs``.
    loss: ``loss(model, x, y) -> scalar``, the mean loss over a batch. In
      training the model is in training mode (BatchNorm statistics update);
      in validation in evaluation mode (running statistics). Default:
      :func:`cross_entropy` when the data has ``num_classes``, else
      :func:`mean_squared_error`.
    metrics: ``metrics(model, x, y) -> {name: scalar}``, extra validation
      metrics as batch means, logged as ``val_<name>`` beside ``val_loss``
      (the loss on the validation split) and, for classification,
      ``val_accuracy``; ``None`` for none.
    loss_floor: A lower bound of the loss: 0 for the data losses, the
      minimum value for a landscape. Divergence is measured from it (see
      :class:`momentum_jax.train.TrainConfig`).
    landscape: The :class:`~momentum_jax.data.Landscape` whose plane the
      model is a point of, or ``None`` (a problem on data). Only figures use
      it: the sweep records its name, and ``paths.png`` draws the best runs'
      paths on its contours.

  Example:
    >>> import numpy as np
    >>> from flax import nnx
    >>> from momentum_jax import data, problems
    >>> toy = data.Dataset("toy", np.ones((8, 3)), np.zeros(8), np.ones((4, 3)), np.zeros(4))
    >>> problem = problems.Problem("toy", toy, lambda rngs: nnx.Linear(3, 1, rngs=rngs))
    >>> problem.loss is problems.mean_squared_error
    True
  """

  name: str
  data: data_lib.Dataset | data_lib.Stream
  make_model: Callable[[nnx.Rngs], nnx.Module]
  _: dataclasses.KW_ONLY
  loss: Loss | None = None
  metrics: Metrics | None = None
  loss_floor: float = 0.0
  landscape: data_lib.Landscape | None = None

  def __post_init__(self):
    if not isinstance(self.data, (data_lib.Dataset, data_lib.Stream)):
      raise ValueError(f"problem {self.name!r}: data must be a momentum_jax.data.Dataset or "
                       f"Stream, got {type(self.data).__name__}")
    for field in ("make_model", "loss", "metrics"):
      value = getattr(self, field)
      if value is not None and not callable(value):
        raise ValueError(f"problem {self.name!r}: {field} must be a function, got {value!r}")
    if self.loss is None:
      default = cross_entropy if self.is_classification else mean_squared_error
      object.__setattr__(self, "loss", default)

  @property
  def is_classification(self) -> bool:
    return self.data.num_classes is not None

  @property
  def is_stream(self) -> bool:
    return isinstance(self.data, data_lib.Stream)

  def abstract_model(self) -> nnx.Module:
    """The model with shapes for weights (``nnx.eval_shape`` of ``make_model``), traced once.

    A sweep asks for it several times (its check, its parameter count, its
    record, each group's setup): the first call traces the constructor,
    later ones merge the kept graph and shapes into a fresh module (which
    the caller may change) without tracing again.
    """
    kept = self.__dict__.get("_abstract_model")
    if kept is None:
      kept = nnx.split(nnx.eval_shape(lambda: self.make_model(nnx.Rngs(0))))
      object.__setattr__(self, "_abstract_model", kept)  # (frozen: a cache, not a field)
    return nnx.merge(*kept, copy=True)

  def metric_names(self) -> tuple[str, ...]:
    """The names the problem's ``metrics`` return (checked: a dict of scalars).

    Raises:
      ValueError: if ``loss`` returns no scalar or fails on the model, or
        ``metrics`` returns no dict of scalars; the message starts with the
        field's name.
    """
    return tuple(self._check_functions())

  def _check_functions(self) -> dict[str, Any]:
    x, y = _example_batch(self.data)
    # Traced, not run: the model is built from abstract weights inside.
    model = lambda: self.make_model(nnx.Rngs(0))
    try:
      loss = jax.eval_shape(lambda x, y: self.loss(model(), x, y), x, y)
    except Exception as error:  # the user's code: any error is theirs to read
      raise ValueError(f"loss: {_name(self.loss)} failed on the model's output for a batch "
                       f"of x {x.shape} {x.dtype}, y {y.shape} {y.dtype}: "
                       f"{type(error).__name__}: {error}") from None
    if not (isinstance(loss, jax.ShapeDtypeStruct) and loss.shape == ()
            and jnp.issubdtype(loss.dtype, jnp.floating)):
      raise ValueError(f"loss: {_name(self.loss)} must return a float scalar (the batch's "
                       f"mean loss), got {_describe(loss)}")
    if self.metrics is None:
      return {}
    if self.data.x_val is None:
      raise ValueError("metrics: they are evaluated on the validation split, and the data "
                       "has none (give x_val and y_val)")
    try:
      metrics = jax.eval_shape(lambda x, y: self.metrics(model(), x, y), x, y)
    except Exception as error:
      raise ValueError(f"metrics: {_name(self.metrics)} failed on a batch: "
                       f"{type(error).__name__}: {error}") from None
    if not isinstance(metrics, dict) or not all(
        isinstance(k, str) and isinstance(v, jax.ShapeDtypeStruct) and v.shape == ()
        for k, v in metrics.items()):
      raise ValueError(f"metrics: {_name(self.metrics)} must return a dict of name -> "
                       f"scalar, got {_describe(metrics)}")
    return metrics


def _example_batch(data) -> tuple[jax.ShapeDtypeStruct, jax.ShapeDtypeStruct]:
  if isinstance(data, data_lib.Stream):
    x, y = data.example
  else:
    # The shapes of two rows (not a slice of the device arrays: that would compile).
    x, y = (jax.ShapeDtypeStruct((2, *a.shape[1:]), a.dtype) for a in (data.x_train, data.y_train))
  return jax.ShapeDtypeStruct(x.shape, x.dtype), jax.ShapeDtypeStruct(y.shape, y.dtype)


def _name(function: Callable) -> str:
  return getattr(function, "__qualname__", None) or repr(function)


def _describe(value: Any) -> str:
  if isinstance(value, jax.ShapeDtypeStruct):
    return f"an array of shape {value.shape} and dtype {value.dtype}"
  if isinstance(value, dict):
    return "{" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in value.items()) + "}"
  return type(value).__name__


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
      f"linear_regression_{dataset}", dataset_,
      lambda rngs: models.LinearRegression(1, rngs=rngs))


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
        dataset_.input_shape[0], hidden, dataset_.num_classes,
        activation=activation, batch_norm=batch_norm, residual=residual,
        init=init, rngs=rngs)
  return _checked(Problem(name, dataset_, make_model))


def digits_mlp(hidden=(128, 128), activation="relu", batch_norm=False,
               residual=False, init="he_normal", seed=0) -> Problem:
  """An MLP on scikit-learn's 8x8 digits (64 features, 10 classes)."""
  return _mlp_problem("digits_mlp", data_lib.load_digits(seed=seed), tuple(hidden),
                      activation, batch_norm, residual, init)


def breast_cancer(hidden=(32,), activation="relu", batch_norm=False,
                  residual=False, init="he_normal", seed=0) -> Problem:
  """An MLP on scikit-learn's breast-cancer set (30 features, 2 classes)."""
  return _mlp_problem("breast_cancer", data_lib.load_breast_cancer(seed=seed),
                      tuple(hidden), activation, batch_norm, residual, init)


def _cnn_problem(name, dataset_, channels, dense, batch_norm):
  def make_model(rngs):
    return models.CNN(dataset_.input_shape, dataset_.num_classes,
                      channels=tuple(channels), dense=dense,
                      batch_norm=batch_norm, rngs=rngs)
  return _checked(Problem(name, dataset_, make_model))


def digits_cnn(channels=(16, 32), dense=64, batch_norm=False, seed=0) -> Problem:
  """The small CNN on the 8x8 digits as images (the default image problem)."""
  return _cnn_problem("digits_cnn", data_lib.load_digits(seed=seed, image=True),
                      channels, dense, batch_norm)


def cifar10_cnn(path: str | None = None, channels=(32, 64), dense=128,
                batch_norm=False) -> Problem:
  """The CNN on CIFAR-10 read from a local folder (never downloaded)."""
  return _cnn_problem("cifar10_cnn", data_lib.load_cifar10(path), channels, dense,
                      batch_norm)


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
        isinstance(v, (bool, str)) for v in start)
    point = np.asarray(start, dtype=np.float64) if numbers else None
  except (TypeError, ValueError):
    point = None
  if point is None or point.shape != (2,) or not np.all(np.isfinite(point)):
    raise ValueError(f"start must be two finite numbers [x, y], got {start!r}")
  start = tuple(float(v) for v in point)
  if isinstance(start_spread, bool) or not isinstance(start_spread, (int, float)) or not (
      np.isfinite(start_spread) and start_spread >= 0):
    raise ValueError(f"start_spread must be a finite number >= 0, got {start_spread!r}")

  def make_model(rngs):
    return models.LandscapePoint(land.fn, start, start_spread, rngs=rngs)

  floor = float(np.min(np.asarray(jax.jit(jax.vmap(land.fn))(
      jnp.asarray(land.global_minima, jnp.float32)))))
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
    return {"x": xy[0], "y": xy[1],
            "distance_to_minimum": jnp.min(jnp.linalg.norm(minima - xy, axis=-1))}

  # One placeholder example in each split: the value is evaluated (val_loss)
  # and the point logged (val_x, …) like any problem's validation metrics.
  zero_x, zero_y = np.zeros((1, 2), np.float32), np.zeros(1, np.float32)
  placeholder = data_lib.Dataset(land.name, zero_x, zero_y, zero_x, zero_y)
  return _checked(Problem(land.name, placeholder, make_model, loss=value, metrics=where,
                          loss_floor=floor, landscape=land))


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
    raise ValueError(
        f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}{hint}")


def get_problem(name: str, **options: Any) -> Problem:
  """Builds the problem called ``name`` with its ``options``.

  Raises:
    ValueError: for an unknown name, suggesting the closest.
  """
  _check_choice("problem", name, PROBLEMS)
  return PROBLEMS[name](**options)


def rebuild(name: str, options: Mapping[str, Any]) -> Problem:
  """The problem a finished sweep built: by its built-in ``name`` or ``package.module:function``.

  For reading a sweep back (a manifest's ``problem_builder``, see
  :func:`momentum_jax.results.load_model`): its config was checked when it
  ran, so the builder is looked up and called as it was then.

  Raises:
    ValueError: for an unknown name, a builder that cannot be imported
      again, or one that returns no :class:`Problem`.
  """
  if ":" not in name:
    return get_problem(name, **options)
  module, _, qualname = name.partition(":")
  try:
    builder = importlib.import_module(module)
    for part in qualname.split("."):
      builder = getattr(builder, part)
  except (ImportError, AttributeError) as error:
    raise ValueError(f"the problem's builder {name} cannot be imported again ({error}); "
                     "pass the problem itself") from None
  problem = builder(**options)
  if not isinstance(problem, Problem):
    raise ValueError(f"{name} returned a {type(problem).__name__}, not a Problem")
  return problem
