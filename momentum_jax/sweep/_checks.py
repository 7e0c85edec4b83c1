"""The small checks every part of a sweep's config shares, each a path-named ``ConfigError``."""

from __future__ import annotations

from typing import Any, Mapping

from momentum_jax.results._result import names_a_column
from momentum_jax.sweep._errors import ConfigError
from momentum_jax.sweep._imports import suggest


def check_keys(path: str, raw: Mapping[str, Any], allowed) -> None:
  for key in raw:
    if key not in allowed:
      raise ConfigError(
        f"{path}.{key}" if path else str(key),
        f"unknown key{suggest(key, allowed)} (allowed: {', '.join(map(str, allowed))})",
      )


def check_name(path: str, name: Any, choices, other: str = "") -> str:
  """``name`` if it is one of ``choices``; ``other`` says what else could be named."""
  listed = ", ".join(choices) + (f", or {other}" if other else "")
  if name is None:
    raise ConfigError(path, f"a name is required, one of {listed}")
  if name not in choices:
    raise ConfigError(path, f"unknown name {name!r}{suggest(name, choices)} (one of {listed})")
  return name


def check_integer(path: str, value: Any, least: int = 1) -> int:
  """``value`` if it is an integer (not a bool) >= ``least``."""
  if isinstance(value, bool) or not isinstance(value, int) or value < least:
    raise ConfigError(path, f"expected an integer >= {least}, got {value!r}")
  return value


def as_mapping(path: str, raw: Any) -> Mapping[str, Any]:
  if not isinstance(raw, Mapping):
    raise ConfigError(path, f"expected a mapping of keys to values, got {raw!r}")
  return raw


def check_run_arguments(chunk_size, width, checkpoint_every) -> None:
  """``sweep.run``'s own arguments, each named in its error."""
  if chunk_size is not None and (
    isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
  ):
    raise ConfigError("chunk_size", f"expected a positive integer, got {chunk_size!r}")
  if (
    width is not None
    and width != "measure"
    and (isinstance(width, bool) or not isinstance(width, int) or width < 1)
  ):
    raise ConfigError("width", f"expected a positive integer or 'measure', got {width!r}")
  if checkpoint_every is not None and (
    isinstance(checkpoint_every, bool)
    or not isinstance(checkpoint_every, (int, float))
    or not checkpoint_every > 0
  ):
    raise ConfigError(
      "checkpoint_every", f"expected a number of seconds > 0 or None, got {checkpoint_every!r}"
    )


_A_COLUMN = (
  "a column of the results (config_id, optimizer, seed, step, the metrics: final_loss, "
  "best_loss, train_…, val_…, start_…, diverged…)"
)


def check_hyperparameter_name(path: str, name: str, pbt_names=()) -> None:
  """A Trainable's hyperparameter: a summary column, so not one the tables already give a
  meaning (:func:`~momentum_jax.results._result.names_a_column`), nor, of ``pbt_names``
  (population-based training's), the ``final_<name>`` of another."""
  if name.startswith("final_") and name.removeprefix("final_") in pbt_names:
    raise ConfigError(
      path,
      f"population-based training writes {name.removeprefix('final_')!r}'s last value as "
      f"{name!r}: call it something else, and read it by that name in init and train",
    )
  if names_a_column(name):
    raise ConfigError(
      path,
      f"{name!r} is {_A_COLUMN}: call it something else, and read it by that name in init "
      "and train",
    )


def check_argument_names(path: str, owner: str, names) -> None:
  """An optimizer's arguments that are swept or traced: each a summary column, as a
  Trainable's hyperparameter is (:func:`check_hyperparameter_name`); one the factory takes
  concrete is not (a static option, in the ``optimizer`` label)."""
  for name in filter(names_a_column, names):
    raise ConfigError(
      f"{path}.{name}",
      f"{owner}'s argument {name!r} would be written over {_A_COLUMN}: wrap {owner} in a "
      "function of your own whose argument has another name, and name that function "
      "(package.module:function)",
    )


def check_written_number(path: str, value: Any) -> None:
  """A Trainable's hyperparameter as written (a number or a list): a bool or a number in
  quotes is refused saying what to write instead."""
  items = enumerate(value) if isinstance(value, list) else [(None, value)]
  for index, item in items:
    where = path if index is None else f"{path}[{index}]"
    if isinstance(item, bool):
      raise ConfigError(
        where,
        f"expected a number, got {str(item).lower()}: a Trainable's hyperparameters train "
        "as float32 numbers; sweep 0 or 1 and choose with jnp.where or lax.cond, or make "
        "it an option of the function under problem: (fixed for the sweep)",
      )
    if isinstance(item, str) and _numeric(item):
      raise ConfigError(where, f"expected a number, got the text {item!r}: write it unquoted")


def _numeric(text: str) -> bool:
  try:
    float(text)
  except ValueError:
    return False
  return True
