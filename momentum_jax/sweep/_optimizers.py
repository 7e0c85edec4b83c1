"""The optimizer a sweep names: ours, ``optax.<alias>``, ``package.module:function`` or a callable.

Any function returning an ``optax.GradientTransformation`` may be swept. Its
numeric arguments are traced (``jax.vmap`` over the configurations), so it is
tried here once, abstractly (traced and lowered, a few milliseconds), on a
stand-in parameter tree: a factory that branches in Python on a swept value
fails now, naming the argument, rather than in the middle of compiling.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from momentum_jax import optim
from momentum_jax.sweep._errors import ConfigError
from momentum_jax.sweep._imports import closest, get_attribute, import_object, python_name

OPTIMIZERS: dict[str, Callable[..., Any]] = {
  "sgd": optim.sgd,
  "momentum": optim.momentum,
  "nesterov": optim.nesterov,
  "rmsprop": optim.rmsprop,
  "adagrad": optim.adagrad,
  "adam": optim.adam,
  "adamw": optim.adamw,
}
OPTAX_PREFIX = "optax."

# torch's and the literature's names for arguments that optax names otherwise.
_SYNONYMS = {
  "lr": ("learning_rate",),
  "beta": ("b1", "momentum", "decay"),
  "beta1": ("b1",),
  "beta2": ("b2",),
  "betas": ("b1",),
  "momentum": ("beta", "b1"),
  "epsilon": ("eps",),
  "alpha": ("decay",),
  "wd": ("weight_decay",),
}
# A matrix and a vector: enough for the transforms that treat them apart (muon, adafactor).
_TRIAL_PARAMS = {"w": np.zeros((3, 2), np.float32), "b": np.zeros(2, np.float32)}
_CONCRETIZATION_ERRORS = (
  jax.errors.ConcretizationTypeError,  # includes TracerBoolConversionError
  jax.errors.TracerIntegerConversionError,
  jax.errors.TracerArrayConversionError,
)


def known_name(factory: Callable[..., Any]) -> str | None:
  """``momentum`` or ``optax.adamw`` for one of ours or an optax alias given as an object."""
  for name, ours in OPTIMIZERS.items():
    if factory is ours:
      return name
  for name in dir(optax):
    if not name.startswith("_") and getattr(optax, name) is factory:
      return OPTAX_PREFIX + name
  return None


def _unknown_name(path: str, name: str) -> ConfigError:
  hints = [closest(name, OPTIMIZERS)]
  if "." in name and ":" not in name:
    module, _, function = name.rpartition(".")
    hints.append(f"{module}:{function}")
  if hasattr(optax, name):
    hints.append(OPTAX_PREFIX + name)
  hints = [repr(h) for h in hints if h is not None]
  hint = f"; did you mean {' or '.join(hints)}?" if hints else ""
  return ConfigError(
    path,
    f"unknown name {name!r}{hint} (one of {', '.join(OPTIMIZERS)}, "
    "'optax.<alias>' or 'package.module:function')",
  )


def resolve_optimizer(path: str, name: Any) -> tuple[Callable[..., Any], str]:
  """The factory ``name`` stands for, and the name that labels its group.

  For a string, ``name`` as written; for a callable, ours and optax's
  aliases are named as in YAML, other functions ``module:qualname``.
  """
  if callable(name):
    return name, known_name(name) or python_name(name)
  if name is None:
    raise ConfigError(
      path,
      f"a name is required: one of {', '.join(OPTIMIZERS)}, "
      "'optax.<alias>', 'package.module:function' or a callable",
    )
  if not isinstance(name, str):
    raise ConfigError(path, f"expected a name or a callable, got {name!r}")
  if name in OPTIMIZERS:
    return OPTIMIZERS[name], name
  if name.startswith(OPTAX_PREFIX):
    factory = get_attribute(path, optax, "optax", name[len(OPTAX_PREFIX) :].split("."))
  elif ":" in name:
    factory = import_object(path, name)
  else:
    raise _unknown_name(path, name)
  if not callable(factory):
    raise ConfigError(
      path,
      f"{name} is not callable (it is a {type(factory).__name__}); name a "
      "function that returns an optax.GradientTransformation",
    )
  return factory, name


def keyword_parameters(factory: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], bool]:
  """The parameters ``factory`` takes by keyword, and whether it takes any (``**kwargs``)."""
  try:
    parameters = inspect.signature(factory).parameters
  except (TypeError, ValueError):  # no signature to read: the trial call decides
    return {}, True
  keywords = {
    n: p for n, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
  }
  return keywords, any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def check_arguments(path: str, owner: str, given, allowed) -> None:
  """Refuses an argument ``owner`` does not take, suggesting the closest (or optax's name for it)."""
  allowed = list(allowed)
  for key in given:
    if key in allowed:
      continue
    hint = closest(key, allowed)
    if hint is None and (synonym := closest(key, _SYNONYMS)) is not None:
      hint = next((a for a in _SYNONYMS[synonym] if a in allowed), None)
    hint = f"; did you mean {hint!r}?" if hint is not None else ""
    raise ConfigError(
      f"{path}.{key}", f"{owner} takes no {key!r}{hint} (it takes {', '.join(allowed)})"
    )


def _trial_error(factory, traced, fixed: Mapping[str, Any]) -> Exception | None:
  """The error of a step of ``factory(**traced, **fixed)``, or None.

  The values ``traced`` are abstract and batched, as the engine's ``jax.vmap``
  batches them, and the step is lowered, not only traced: ``jax.random.key``
  of a float tracer fails there alone (lowering costs what tracing does).
  """

  def step(hyperparameters):
    transformation = optax.with_extra_args_support(factory(**hyperparameters, **fixed))
    params = jax.tree.map(jnp.asarray, _TRIAL_PARAMS)
    state = transformation.init(params)
    # The params stand in for the gradients; optax's extra arguments as the step passes them.
    value_fn = lambda p: sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(p))
    return transformation.update(
      params, state, params, value=value_fn(params), grad=params, value_fn=value_fn
    )

  try:
    jax.jit(jax.vmap(step, axis_size=2)).lower(
      {n: jax.ShapeDtypeStruct((2,), jnp.float32) for n in traced}
    )
  except Exception as error:  # pylint: disable=broad-except
    return error
  return None


def _concretization_error(
  factory, traced: Mapping[str, Any], fixed: Mapping[str, Any]
) -> Exception | None:
  """The error of a step of ``factory`` with the values ``traced`` traced, if it needs them concrete.

  A concretization error says so; any other counts when the same step passes
  with the values concrete (a check that an argument is an int, a seed for a
  PRNG key). Else it comes of the stand-in params (a mask for the user's
  tree, say), and the training step will tell.
  """
  error = _trial_error(factory, traced, fixed)
  if error is None or isinstance(error, _CONCRETIZATION_ERRORS):
    return error
  return error if _trial_error(factory, (), {**fixed, **traced}) is None else None


def _as_written(given: Any, value: float) -> Any:
  """A grid's first value as the config wrote it when it wrote ints (a rank, a seed), else a
  float: tried concrete, an int the factory needs (a PRNG seed) passes as it would alone."""
  written = given if isinstance(given, (list, tuple)) and given else [given]
  if all(isinstance(v, int) and not isinstance(v, bool) for v in written):
    return written[0]
  return float(value)


def check_factory(
  path: str,
  name: str,
  factory: Callable[..., Any],
  grid: Mapping[str, np.ndarray],
  static: Mapping[str, Any],
  given: Mapping[str, Any],
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """Checks a factory on the grid's first values, then with them traced.

  An argument the factory cannot take traced is refused if swept; given
  one value, it becomes a static option (passed as the number ``given``).

  Returns:
    The ``(grid, static)`` the group trains with.

  Raises:
    ConfigError: if the call fails, does not return a GradientTransformation,
      or a swept argument must be concrete.
  """
  first = {n: _as_written(given.get(n), v[0]) for n, v in grid.items()}
  try:
    transformation = factory(**first, **static)
  except (TypeError, ValueError) as error:
    raise ConfigError(path, f"{name}: {error}") from None
  if not isinstance(transformation, optax.GradientTransformation):
    raise ConfigError(
      f"{path}.name",
      f"{name} returned a value of type "
      f"{type(transformation).__name__}, not an optax.GradientTransformation",
    )
  grid, static = dict(grid), dict(static)
  if _concretization_error(factory, first, static) is None:
    return grid, static
  concrete = [
    n
    for n in grid
    if _concretization_error(
      factory, {n: first[n]}, {**static, **{m: first[m] for m in grid if m != n}}
    )
    is not None
  ]
  for argument in concrete:
    if len(grid[argument]) > 1:
      raise ConfigError(
        f"{path}.{argument}",
        f"{name} cannot take a traced value; give it one value, or list one group per "
        "value under optimizers:",
      )
    value = given[argument]
    static[argument] = (
      value[0]
      if isinstance(value, (list, tuple))
      else (value if isinstance(value, (int, float)) else first[argument])
    )
    del grid[argument]
  if (error := _concretization_error(factory, {n: first[n] for n in grid}, static)) is not None:
    raise ConfigError(
      path,
      f"{name} cannot take {', '.join(grid)} traced together; give them "
      f"one value each ({str(error).splitlines()[0]})",
    )
  return grid, static
