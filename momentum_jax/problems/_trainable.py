"""The :class:`Trainable`: any JAX training, as pure functions the sweep engine batches.

See :mod:`momentum_jax.problems` for how it sits beside :class:`~momentum_jax.problems.Problem`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

Hyperparameters = Mapping[str, jax.Array]


@dataclasses.dataclass(frozen=True, eq=False)
class Trainable:
  """Any JAX training: pure functions that the sweep engine vmaps, shards, segments and searches.

  Everything a :class:`~momentum_jax.problems.Problem` gets from the engine
  (one compiled program per group, every search, checkpoints, kept models),
  for a training loop written by hand: reinforcement learning, a custom
  step, anything that is a ``lax.scan`` of pure steps.

  Attributes:
    name: Short name, used in results tables (the ``optimizer`` column).
    init: ``init(hyperparameters, key) -> state``: the initial state, any
      pytree of arrays. ``hyperparameters`` maps each swept name to a float32
      scalar, traced: the state's shapes must not depend on their values.
    train: ``train(state, hyperparameters, key, steps) -> (state, metrics)``:
      ``steps`` (a Python int) training steps, e.g. a ``lax.scan``. The
      engine calls it once per log interval (``steps`` = ``log_every``) with
      ``key`` folded with the interval's first step, so a run is the same
      however a sweep is segmented or resumed. ``metrics`` maps names to
      float arrays of shape ``()`` (the interval's value) or ``(steps,)``
      (one per step: the interval's mean is logged). It must hold
      ``loss``, the objective trained on: logged as ``train_loss`` (so
      ``final_loss``, ``best_loss``), and a non-finite one marks the run
      diverged (its state then stays as it was). Any other metric is logged
      as ``train_<name>`` (curves only).
    evaluate: ``evaluate(state) -> {name: scalar}``, optional: measured after
      each log interval and logged as ``val_<name>`` (curves and summary),
      and of the initial state as ``start_val_<name>``. Searches, ``keep``
      and the report rank by ``final_loss``, ``best_loss`` or one of these.
      A metric whose name holds ``accuracy``, ``return`` or ``reward`` ranks
      highest first; any other lowest first.
    model: ``model(state) -> pytree``, optional: what ``keep:`` saves of a
      trained state (say, a policy's parameters); default the whole state.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> def init(hp, key):
    ...   return jax.random.normal(key, (3,))
    >>> def train(w, hp, key, steps):
    ...   def step(w, _):
    ...     return w - hp["learning_rate"] * w, 0.5 * jnp.sum(w**2)
    ...   return jax.lax.scan(step, w, None, length=steps)[0], {"loss": 0.5 * jnp.sum(w**2)}
    >>> quadratic = Trainable("quadratic", init, train)
    >>> quadratic.metric_names(("learning_rate",))
    ('final_loss', 'best_loss')
  """

  name: str
  init: Callable[[Hyperparameters, jax.Array], Any]
  train: Callable[[Any, Hyperparameters, jax.Array, int], tuple[Any, Mapping[str, jax.Array]]]
  _: dataclasses.KW_ONLY
  evaluate: Callable[[Any], Mapping[str, jax.Array]] | None = None
  model: Callable[[Any], Any] | None = None

  def __post_init__(self):
    if not isinstance(self.name, str) or not self.name:
      raise ValueError(f"name: a non-empty string, got {self.name!r}")
    for field in ("init", "train", "evaluate", "model"):
      value = getattr(self, field)
      if (value is not None or field in ("init", "train")) and not callable(value):
        raise ValueError(f"{field}: must be a function, got {value!r}")

  def abstract_state(self, names: tuple[str, ...]) -> Any:
    """The state's shapes (``jax.eval_shape`` of ``init``) for hyperparameters ``names``."""
    return jax.eval_shape(self.init, _abstract(names), jax.random.key(0))

  def logged(self, names: tuple[str, ...], steps: int) -> tuple[dict, dict]:
    """``(train metrics, evaluate metrics)``: their shapes for one interval of ``steps``, checked.

    Raises:
      ValueError: starting with the field at fault (``init``, ``train``,
        ``evaluate``, ``model``): a function that fails traced, metrics that
        are not a dict of float scalars (or ``(steps,)`` arrays), no
        ``loss``, a state whose shapes ``train`` changes, or ``init`` or
        ``train`` not pure (traced twice, two programs). Checked once for
        each ``(names, steps)``.
    """
    kept = self.__dict__.setdefault("_logged", {})
    if (names, steps) not in kept:  # (frozen: a cache, not a field; its functions are fixed)
      kept[names, steps] = self._checked(names, steps)
    return kept[names, steps]

  def _checked(self, names: tuple[str, ...], steps: int) -> tuple[dict, dict]:
    hyperparameters, key = _abstract(names), jax.random.key(0)
    state = _traced_twice("init", self.init, hyperparameters, key)
    new, metrics = _traced_twice(
      "train", lambda s, h, k: self.train(s, h, k, steps), state, hyperparameters, key
    )
    if jax.tree.structure(new) != jax.tree.structure(state) or jax.tree.map(
      _shape, new
    ) != jax.tree.map(_shape, state):
      raise ValueError(
        "train: must return a state shaped as init's (the same pytree, shapes and dtypes)"
      )
    _check_metrics("train", metrics, ((), (steps,)))
    if "loss" not in metrics:
      raise ValueError(
        f"train: its metrics must hold 'loss' (the objective trained on), got {sorted(metrics)}"
      )
    evaluated = {}
    if self.evaluate is not None:
      evaluated = _traced("evaluate", lambda: jax.eval_shape(self.evaluate, state))
      _check_metrics("evaluate", evaluated, ((),))
    if self.model is not None:
      _traced("model", lambda: jax.eval_shape(self.model, state))
    return metrics, evaluated

  def metric_names(self, names: tuple[str, ...], steps: int = 1) -> tuple[str, ...]:
    """The summary's metrics a search or ``keep`` may rank by: ``final_loss``, ``best_loss``,
    then ``val_<name>`` for each of ``evaluate``'s (traced with hyperparameters ``names``)."""
    _, evaluated = self.logged(names, steps)
    return ("final_loss", "best_loss", *(f"val_{name}" for name in evaluated))


def _traced_twice(field: str, function: Callable[..., Any], *args: Any) -> Any:
  """``function(*args)``'s output shapes, traced twice (errors as :func:`_traced` words them).

  The engine traces a function once and runs what it traced: one that reads
  a Python random number or a global it changes would train every run (and
  a resumed sweep) with whatever its one trace saw. Traced twice, such a
  function gives two programs; that is what this catches (not every impurity).
  """

  def twice():
    # A fresh wrapper each time: JAX would hand back a cached trace of the same function.
    first, shapes = jax.make_jaxpr(lambda *a: function(*a), return_shape=True)(*args)
    return str(first) == str(jax.make_jaxpr(lambda *a: function(*a))(*args)), shapes

  same, shapes = _traced(field, twice)
  if not same:
    raise ValueError(
      f"{field}: traced twice, it gave two different programs: it is not pure (a Python or "
      "numpy random number, a global it changes?); the engine traces it once and runs that "
      "program for every run, so draw randomness from the key it is given"
    )
  return shapes


def _abstract(names: tuple[str, ...]) -> dict[str, jax.ShapeDtypeStruct]:
  return {name: jax.ShapeDtypeStruct((), jnp.float32) for name in names}


def _shape(leaf: Any) -> Any:
  return (tuple(leaf.shape), str(leaf.dtype)) if hasattr(leaf, "shape") else leaf


def _traced(field: str, function: Callable[[], Any]) -> Any:
  try:
    return function()
  except jax.errors.ConcretizationTypeError as error:
    raise ValueError(
      f"{field}: depends on a hyperparameter's value where JAX needs a concrete one (a shape, "
      "a Python if or loop): the engine traces every hyperparameter as a float32 scalar, "
      f"so use jnp.where / lax.cond instead ({str(error).splitlines()[0]})"
    ) from None
  except KeyError as error:
    raise ValueError(
      f"{field}: reads the hyperparameter {error} that the sweep does not give"
    ) from None
  except Exception as error:  # the user's code: any error is theirs to read
    raise ValueError(f"{field}: failed traced: {type(error).__name__}: {error}") from None


def _check_metrics(field: str, metrics: Any, shapes: tuple[tuple[int, ...], ...]) -> None:
  allowed = " or ".join(str(s) for s in shapes)
  if not isinstance(metrics, Mapping) or not all(isinstance(k, str) for k in metrics):
    raise ValueError(
      f"{field}: its metrics must be a dict of name -> array, got {type(metrics).__name__}"
    )
  for name, value in metrics.items():
    if not (
      isinstance(value, jax.ShapeDtypeStruct)
      and tuple(value.shape) in shapes
      and jnp.issubdtype(value.dtype, jnp.floating)
    ):
      got = (
        f"shape {tuple(value.shape)} dtype {value.dtype}"
        if isinstance(value, jax.ShapeDtypeStruct)
        else type(value).__name__
      )
      raise ValueError(
        f"{field}: metric {name!r} must be a float array of shape {allowed}, got {got}"
      )
