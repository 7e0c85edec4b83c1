"""The config's typed checks, by pydantic in strict mode, and its errors in our words.

Strict: a boolean is not a number, a string not a boolean, a number not a
string (``batch_norm: "false"`` is refused, not read as true). Each section
of the config is a :class:`Section`; a value that may take several forms
(a number or a list or ``{linspace: ...}``) is an :func:`either`, which picks
the form by the value's own type, so that an error speaks of the form the
user wrote. :func:`validate` turns pydantic's first error into a
:class:`ConfigError` that names the key path (``optimizers[0].beta``), says
what was expected and what came, and suggests the closest name.
"""

from __future__ import annotations

import inspect
import math
import reprlib
from typing import Annotated, Any, Callable, Mapping, Union

import jax
import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Discriminator, Tag, TypeAdapter
from pydantic.json_schema import WithJsonSchema
from pydantic_core import PydanticCustomError

from momentum_jax.sweep._errors import ConfigError
from momentum_jax.sweep._imports import suggest

STRICT = ConfigDict(strict=True, extra="forbid", frozen=True)
# Marks the forms of an either(): left out of the key paths of errors.
_FORM = "·"
_repr = reprlib.Repr()
_repr.maxstring, _repr.maxother, _repr.maxlist, _repr.maxdict, _repr.maxlevel = 60, 60, 6, 4, 2


def shown(value: Any) -> str:
  """``repr(value)``, shortened: a 100,000-character value is not echoed back whole."""
  return _repr.repr(value)


def python_numbers(value: Any) -> Any:
  """A dict config with its numpy and JAX arrays and scalars as Python's numbers and lists
  (``np.logspace(-4, -2, 3)`` is a list of three values); anything else as it is."""
  if isinstance(value, Mapping):
    return {k: python_numbers(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return type(value)(python_numbers(v) for v in value)
  if isinstance(value, (np.ndarray, np.generic, jax.Array)):
    return np.asarray(value).tolist()
  return value


def unknown_key(key: Any, allowed, message: str | None = None) -> PydanticCustomError:
  """The error of a key no section takes (its path gets ``key``; see :func:`_path`)."""
  if message is None:
    message = f"unknown key{suggest(key, allowed)} (allowed: {', '.join(map(str, allowed))})"
  return PydanticCustomError("unknown_key", "{message}", {"key": str(key), "message": message})


def refuse_unknown_keys(value: Any, allowed, message: Callable[[Any, Any], str | None] = None):
  """``value`` if it is a mapping whose keys are all ``allowed``; else the error of the first other.

  ``message(value, key)``, if given and not ``None``, says what is wrong with ``key``.
  """
  if isinstance(value, Mapping):
    for key in value:
      if key not in allowed:
        raise unknown_key(key, tuple(allowed), message and message(value, key))
  return value


class Section(BaseModel):
  """A mapping of the config: strict, frozen, its unknown keys refused with the closest name."""

  model_config = STRICT

  @pydantic.model_validator(mode="before")
  @classmethod
  def _known_keys(cls, value: Any) -> Any:
    allowed = [f.alias or name for name, f in cls.model_fields.items()]
    return refuse_unknown_keys(value, allowed, cls.unknown_key_message)

  @classmethod
  def unknown_key_message(cls, value: Mapping[str, Any], key: Any) -> str | None:
    """What is wrong with ``key`` where the section's kind says more than "unknown" (else None)."""
    return None


def either(expected: str, pick: Callable[[Any], str | None], **forms: Any) -> Any:
  """A value of one of ``forms`` (name -> type), chosen by ``pick(value)``; none: ``expected``."""
  members = tuple(Annotated[kind, Tag(_FORM + name)] for name, kind in forms.items())
  return Annotated[
    Union[members],  # noqa: UP007  (of a tuple)
    Discriminator(
      lambda value: None if (name := pick(value)) is None else _FORM + name,
      custom_error_type="expected",
      custom_error_message=f"expected {expected}",
    ),
  ]


def choice(*names: str) -> Any:
  """A string, one of ``names``; another is refused with the closest one."""

  def check(value: str) -> str:
    if value not in names:
      raise PydanticCustomError(
        "unknown_name",
        "unknown name {name}{hint} (one of {names})",
        {"name": repr(value), "hint": suggest(value, names), "names": ", ".join(names)},
      )
    return value

  return Annotated[
    str, pydantic.AfterValidator(check), WithJsonSchema({"type": "string", "enum": list(names)})
  ]


def number_kind(value: Any) -> str | None:
  return "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# ------------------------------------------------------------------ errors in our words

_EXPECTED = {
  "bool_type": "expected true or false",
  "int_type": "expected an integer",
  "int_from_float": "expected an integer",
  "float_type": "expected a number",
  "string_type": "expected a string",
  "list_type": "expected a list",
  "tuple_type": "expected a list",
  "dict_type": "expected a mapping of keys to values",
  "model_type": "expected a mapping of keys to values",
  "dataclass_type": "expected a mapping of keys to values",
  "model_attributes_type": "expected a mapping of keys to values",
  "callable_type": "expected a callable",
  "is_instance_of": "expected {class_}",
  "finite_number": "must be a finite number",
  "greater_than": "must be > {gt}",
  "greater_than_equal": "must be >= {ge}",
  "less_than": "must be < {lt}",
  "less_than_equal": "must be <= {le}",
  "too_short": "expected at least {min_length} items",
  "too_long": "expected at most {max_length} items",
  "literal_error": "expected {expected}",
}
# Errors whose message is whole: nothing more is said of the value.
_WHOLE = {"missing", "unknown_key", "unknown_name", "value_error"}


def _path(error: Mapping[str, Any], prefix: str) -> str:
  parts = [p for p in error["loc"] if not (isinstance(p, str) and p.startswith(_FORM))]
  if error["type"] == "unknown_key":
    parts.append(error["ctx"]["key"])
  path = prefix
  for part in parts:
    path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
  return path


def _message(error: Mapping[str, Any]) -> str:
  kind, ctx = error["type"], error.get("ctx") or {}
  if kind == "missing":
    return "required"
  if kind == "value_error":
    return str(ctx.get("error", error["msg"]))
  if kind == "too_short" and ctx.get("min_length") == 1:
    message = "must not be empty"
  elif kind in _EXPECTED:
    message = _EXPECTED[kind].format(**{k: _plain(v) for k, v in ctx.items()})
  else:
    message = error["msg"][:1].lower() + error["msg"][1:]
  return message if kind in _WHOLE else f"{message}, got {shown(error['input'])}"


def _plain(value: Any) -> Any:
  if isinstance(value, float) and math.isfinite(value) and value == int(value):
    return int(value)
  return value


def config_error(error: pydantic.ValidationError, prefix: str = "") -> ConfigError:
  """The first of pydantic's errors as a :class:`ConfigError` at its key path under ``prefix``."""
  first = error.errors(include_url=False)[0]
  return ConfigError(_path(first, prefix), _message(first))


def validate(kind: Any, value: Any, path: str = "") -> Any:
  """``value`` validated as ``kind`` (a type or a :class:`TypeAdapter`), errors under ``path``."""
  adapter = kind if isinstance(kind, TypeAdapter) else TypeAdapter(kind)
  try:
    return adapter.validate_python(value)
  except pydantic.ValidationError as error:
    raise config_error(error, path) from None


# ------------------------------------------------------------------ a function's arguments


def _listed(default: tuple | list) -> Any:
  kinds = {type(v) for v in default}
  item = kinds.pop() if kinds in ({int}, {float}, {str}) else Any
  return Annotated[list[item], pydantic.Strict(False)]  # YAML gives a list, Python a tuple too


def default_type(parameter: inspect.Parameter, numeric: Any) -> Any:
  """The type a function's argument takes, by its default: a bool only a bool, and so on.

  ``numeric`` is what a number's place takes (a grid of values for an
  optimizer's hyperparameter, one number for a problem's option); an
  argument without a default takes it too. ``Any`` where the default says
  nothing (``None``, an object).
  """
  default = parameter.default
  if default is inspect.Parameter.empty:
    return Any if numeric is None else numeric
  if isinstance(default, bool):
    return bool
  if isinstance(default, (int, float)):
    return numeric if numeric is not None else type(default)
  if isinstance(default, str):
    return str
  if isinstance(default, (tuple, list)) and default:
    return _listed(default)
  return Any


def arguments_adapter(parameters: Mapping[str, inspect.Parameter], numeric: Any) -> TypeAdapter:
  """Validates the keyword arguments of a function whose ``parameters`` are given."""
  from typing_extensions import TypedDict  # pydantic needs its own on Python < 3.12

  fields = {name: default_type(p, numeric) for name, p in parameters.items()}
  arguments = TypedDict("Arguments", fields, total=False)  # type: ignore[misc]
  arguments.__pydantic_config__ = ConfigDict(strict=True, extra="allow")
  return TypeAdapter(arguments)
