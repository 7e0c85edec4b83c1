"""The :class:`Problem` (a model, its data, its loss and its metrics) and the default losses.

See :mod:`momentum_jax.problems` for what a problem is and the built-in ones.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from momentum_jax import data as data_lib

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
      raise ValueError(
        f"problem {self.name!r}: data must be a momentum_jax.data.Dataset or "
        f"Stream, got {type(self.data).__name__}"
      )
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
      raise ValueError(
        f"loss: {_name(self.loss)} failed on the model's output for a batch "
        f"of x {x.shape} {x.dtype}, y {y.shape} {y.dtype}: "
        f"{type(error).__name__}: {error}"
      ) from None
    if not (
      isinstance(loss, jax.ShapeDtypeStruct)
      and loss.shape == ()
      and jnp.issubdtype(loss.dtype, jnp.floating)
    ):
      raise ValueError(
        f"loss: {_name(self.loss)} must return a float scalar (the batch's "
        f"mean loss), got {_describe(loss)}"
      )
    if self.metrics is None:
      return {}
    if self.data.x_val is None:
      raise ValueError(
        "metrics: they are evaluated on the validation split, and the data "
        "has none (give x_val and y_val)"
      )
    try:
      metrics = jax.eval_shape(lambda x, y: self.metrics(model(), x, y), x, y)
    except Exception as error:
      raise ValueError(
        f"metrics: {_name(self.metrics)} failed on a batch: {type(error).__name__}: {error}"
      ) from None
    if not isinstance(metrics, dict) or not all(
      isinstance(k, str) and isinstance(v, jax.ShapeDtypeStruct) and v.shape == ()
      for k, v in metrics.items()
    ):
      raise ValueError(
        f"metrics: {_name(self.metrics)} must return a dict of name -> "
        f"scalar, got {_describe(metrics)}"
      )
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
