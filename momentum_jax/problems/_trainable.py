"""The :class:`Trainable`: any JAX training, as pure functions the sweep engine batches.

See :mod:`momentum_jax.problems` for how it sits beside :class:`~momentum_jax.problems.Problem`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Hyperparameters = Mapping[str, jax.Array]


class Traced(NamedTuple):
  """What tracing a :class:`Trainable`'s functions found (:meth:`Trainable.traced`).

  Attributes:
    metrics: ``train``'s metrics' shapes.
    evaluated: ``evaluate``'s metrics' shapes (empty without ``evaluate``).
    unread: The hyperparameters neither ``init`` nor ``train`` reads.
    digest: SHA-256 of the traced programs and the arrays they close over:
      an edit of the code that changes what it computes changes it.
  """

  metrics: dict
  evaluated: dict
  unread: tuple[str, ...]
  digest: str


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
      pytree of arrays (a Flax NNX module, an optax state, PRNG keys).
      ``hyperparameters`` maps each swept name to a float32 scalar, traced:
      the state's shapes must not depend on their values. Each must be read
      by ``init`` or ``train``.
    train: ``train(state, hyperparameters, key, steps) -> (state, metrics)``:
      ``steps`` (a Python int) training steps, e.g. a ``lax.scan``. The
      engine calls it once per log interval (``steps`` = ``log_every``) with
      ``key`` folded with the interval's first step, so a run is the same
      however a sweep is segmented or resumed. ``metrics`` names real
      numbers (see :func:`named_metrics`: a dict, a NamedTuple, a dataclass)
      of shape ``()`` (the interval's value) or ``(steps,)`` (one per step:
      the interval's mean is logged); integers and bools are logged as
      float32. It must hold ``loss``, the objective trained on: logged as
      ``train_loss`` (so ``final_loss``, ``best_loss``), and a non-finite
      one marks the run diverged (its state then stays as it was). Any
      other metric is logged as ``train_<name>`` (curves only).
    evaluate: ``evaluate(state) -> {name: scalar}``, optional, named as
      ``train``'s metrics: measured after each log interval and logged as
      ``val_<name>`` (curves and summary), and of the initial state as
      ``start_val_<name>``. Searches, ``keep`` and the report rank by
      ``final_loss``, ``best_loss`` or one of these. A metric whose name
      holds ``accuracy``, ``return`` or ``reward`` ranks highest first; any
      other lowest first.
    model: ``model(state) -> pytree``, optional: what ``keep:`` saves of a
      trained state (say, a policy's parameters), at least one array;
      default the whole state.

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
        ``evaluate``, ``model``): see :meth:`traced`.
    """
    return self.traced(names, steps)[:2]

  def traced(self, names: tuple[str, ...], steps: int) -> "Traced":
    """The functions traced with hyperparameters ``names`` and ``steps`` a log interval, checked.

    Checked once for each ``(names, steps)`` and x64 mode.

    Raises:
      ValueError: starting with the field at fault (``init``, ``train``,
        ``evaluate``, ``model``): a function that fails traced, a state of
        something else than arrays, metrics that are not named real numbers
        of shape ``()`` (or ``(steps,)``), no ``loss``, a state whose shapes
        ``train`` changes, a ``train`` that ignores ``steps``, a ``model``
        of no array, or ``init`` or ``train`` not pure (traced twice, two
        programs).
    """
    kept = self.__dict__.setdefault("_traced", {})
    key = (names, steps, jax.config.jax_enable_x64)  # x64 traces another program
    if key not in kept:  # (frozen: a cache, not a field; its functions are fixed)
      kept[key] = self._checked(names, steps)
    return kept[key]

  def _checked(self, names: tuple[str, ...], steps: int) -> "Traced":
    hyperparameters, key = _abstract(names), jax.random.key(0)
    # The hyperparameters first: a program's first inputs are theirs, in sorted order.
    init, state = _traced_twice("init", lambda h, k: self.init(h, k), hyperparameters, key)
    train, returned = _traced_twice(
      "train", lambda h, s, k: self.train(s, h, k, steps), hyperparameters, state, key
    )
    if not isinstance(returned, (tuple, list)) or len(returned) != 2:
      kind = type(returned).__name__
      got = f"a {kind} of {len(returned)}" if isinstance(returned, (tuple, list)) else f"a {kind}"
      raise ValueError(f"train: must return (state, metrics), got {got}")
    new, metrics = returned
    # Leaf by leaf: a pytree node may compare by identity (a Flax NNX module does).
    if jax.tree.structure(new) != jax.tree.structure(state) or _shapes(new) != _shapes(state):
      raise ValueError(
        "train: must return a state shaped as init's (the same pytree, shapes and dtypes)"
      )
    metrics = _check_metrics("train", metrics, ((), (steps,)))
    if "loss" not in metrics:
      raise ValueError(
        f"train: its metrics must hold 'loss' (the objective trained on), got {sorted(metrics)}"
      )
    _check_steps(self.train, train, steps, hyperparameters, state, key)
    programs, evaluated = [init, train], {}
    if self.evaluate is not None:
      evaluate, evaluated = _traced("evaluate", lambda: _jaxpr(self.evaluate, state))
      evaluated = _check_metrics("evaluate", evaluated, ((),))
      programs.append(evaluate)
    if self.model is not None:
      model, saved = _traced("model", lambda: _jaxpr(self.model, state))
      if not jax.tree.leaves(saved):
        raise ValueError(
          "model: returned no array (None, an empty pytree): keep has nothing to save"
        )
      programs.append(model)
    sorted_names = sorted(names)
    unread = _unread(init, len(names)) & _unread(train, len(names))
    return Traced(
      metrics, evaluated, tuple(sorted_names[i] for i in sorted(unread)), _digest(programs)
    )

  def metric_names(self, names: tuple[str, ...], steps: int = 1) -> tuple[str, ...]:
    """The summary's metrics a search or ``keep`` may rank by: ``final_loss``, ``best_loss``,
    then ``val_<name>`` for each of ``evaluate``'s (traced with hyperparameters ``names``)."""
    _, evaluated = self.logged(names, steps)
    return ("final_loss", "best_loss", *(f"val_{name}" for name in evaluated))


def _traced_twice(field: str, function: Callable[..., Any], *args: Any) -> tuple[Any, Any]:
  """``(program, output shapes)`` of ``function(*args)``, traced twice (errors as :func:`_traced`
  words them); ``function`` a fresh wrapper (JAX would hand back a cached trace of one it saw).

  The engine traces a function once and runs what it traced: one that reads
  a Python random number or a global it changes would train every run (and
  a resumed sweep) with whatever its one trace saw. Traced twice, such a
  function gives two programs; that is what this catches (not every impurity).
  """

  def twice():
    first, shapes = _jaxpr(function, *args)
    return first, shapes, str(first) == str(_jaxpr(lambda *a: function(*a), *args)[0])

  program, shapes, same = _traced(field, twice)
  if not same:
    raise ValueError(
      f"{field}: traced twice, it gave two different programs: it is not pure (a Python or "
      "numpy random number, a global it changes?); the engine traces it once and runs that "
      "program for every run, so draw randomness from the key it is given"
    )
  return program, shapes


def _jaxpr(function: Callable[..., Any], *args: Any) -> tuple[Any, Any]:
  return jax.make_jaxpr(function, return_shape=True)(*args)


def _check_steps(train: Callable[..., Any], program: Any, steps: int, *args: Any) -> None:
  """A ``train`` that trains one step whatever ``steps`` asks logs ``steps`` times too few."""
  if steps == 1:
    return
  one = _traced("train", lambda: _jaxpr(lambda h, s, k: train(s, h, k, 1), *args)[0])
  if str(one) == str(program):
    raise ValueError(
      f"train: traced with steps=1 and steps={steps} it gave the same program: it must train "
      "`steps` steps (say, lax.scan(step, state, None, length=steps)); the engine calls it "
      "once per log interval, with steps = train.log_every"
    )


def _unread(program: Any, count: int) -> set[int]:
  """Which of the program's first ``count`` inputs it never reads."""
  jaxpr = program.jaxpr
  read = {id(v) for eqn in jaxpr.eqns for v in eqn.invars} | {id(v) for v in jaxpr.outvars}
  return {i for i, v in enumerate(jaxpr.invars[:count]) if id(v) not in read}


def _digest(programs: list[Any]) -> str:
  digest = hashlib.sha256()
  for program in programs:
    digest.update(str(program.jaxpr).encode())
    for const in program.consts:  # arrays closed over: a dataset, a table
      if jnp.issubdtype(getattr(const, "dtype", np.float32), jax.dtypes.prng_key):
        const = jax.random.key_data(const)
      host = np.ascontiguousarray(np.asarray(const))
      digest.update(f"{host.shape}{host.dtype}".encode() + host.tobytes())
  return digest.hexdigest()


def _abstract(names: tuple[str, ...]) -> dict[str, jax.ShapeDtypeStruct]:
  return {name: jax.ShapeDtypeStruct((), jnp.float32) for name in names}


def _shapes(tree: Any) -> list[Any]:
  return [
    (tuple(x.shape), str(x.dtype)) if hasattr(x, "shape") else x for x in jax.tree.leaves(tree)
  ]


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
  except TypeError as error:
    raise ValueError(_type_error(field, error)) from None
  except Exception as error:  # the user's code: any error is theirs to read
    raise ValueError(f"{field}: failed traced: {type(error).__name__}: {error}") from None


def _type_error(field: str, error: TypeError) -> str:
  not_jax = re.search(
    r"returned a value of type <class '([\w.]+)'>(?: at output component (.+?))?, which is not "
    "a valid JAX type",
    str(error),
  )
  if not_jax is None:
    return f"{field}: failed traced: TypeError: {error}"
  kind, where = not_jax.group(1), not_jax.group(2)
  return (
    f"{field}: returned a {kind}{f' at {where}' if where else ''}, not an array: what it "
    "returns holds arrays only; leave fixed settings out (close over them, or make them "
    "options of the function under problem:)"
  )


def named_metrics(metrics: Any) -> dict[str, Any]:
  """``train``'s or ``evaluate``'s metrics as ``{name: value}``.

  A dict, a ``NamedTuple`` or a dataclass (a ``flax.struct.dataclass``) names
  its values; one nested in another is named ``outer/inner``.

  Raises:
    TypeError: for metrics of no names, or a name that is not a non-empty
      string or that comes twice.
  """
  if isinstance(metrics, Mapping):
    items = list(metrics.items())
  elif hasattr(metrics, "_asdict"):  # a NamedTuple
    items = list(metrics._asdict().items())
  elif dataclasses.is_dataclass(metrics) and not isinstance(metrics, type):
    items = [(f.name, getattr(metrics, f.name)) for f in dataclasses.fields(metrics)]
  else:
    raise TypeError(
      f"its metrics must be a dict (or a NamedTuple, a dataclass) of name -> array, got "
      f"{type(metrics).__name__}"
    )
  flat: dict[str, Any] = {}
  for name, value in items:
    if not isinstance(name, str) or not name:
      raise TypeError(f"a metric's name must be a non-empty string, got {name!r}")
    try:
      inner = {f"{name}/{k}": v for k, v in named_metrics(value).items()}
    except TypeError:
      inner = {name: value}
    for key, value in inner.items():
      if key in flat:
        raise TypeError(f"two metrics are named {key!r}")
      flat[key] = value
  return flat


def as_logged(value: Any) -> jax.Array:
  """A metric as it is logged: a float; an integer or a bool as float32 (exact to 2**24)."""
  value = jnp.asarray(value)
  return value if jnp.issubdtype(value.dtype, jnp.inexact) else value.astype(jnp.float32)


def _check_metrics(field: str, metrics: Any, shapes: tuple[tuple[int, ...], ...]) -> dict:
  """``metrics`` :func:`named_metrics`, each checked to be a number of one of ``shapes``."""
  allowed = " or ".join(str(s) for s in shapes)
  try:
    metrics = named_metrics(metrics)
  except TypeError as error:
    raise ValueError(f"{field}: {error}") from None
  for name, value in metrics.items():
    if not (
      isinstance(value, jax.ShapeDtypeStruct)
      and tuple(value.shape) in shapes
      and (jnp.issubdtype(value.dtype, jnp.number) or value.dtype == jnp.bool_)
      and not jnp.issubdtype(value.dtype, jnp.complexfloating)
    ):
      got = (
        f"shape {tuple(value.shape)} dtype {value.dtype}"
        if isinstance(value, jax.ShapeDtypeStruct)
        else type(value).__name__
      )
      raise ValueError(
        f"{field}: metric {name!r} must be a real number (a float, an integer or a bool) of "
        f"shape {allowed}, got {got}"
      )
  return metrics
