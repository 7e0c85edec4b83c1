"""Names in a config that stand for Python objects: ``package.module:function`` and the like.

A config may name any function by its import path, and a dict config may hold
the function (or a :class:`~momentum_jax.problems.Problem`) itself. Either
way the manifest records a string: the import path when importing it gives
the object back, so that a YAML file and a dict naming the same function are
the same sweep; else ``python:module:qualname``.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import os
import pkgutil
import sys
from typing import Any, Iterable

from momentum_jax.sweep._errors import ConfigError


def closest(value: Any, choices: Iterable[Any]) -> str | None:
  """The choice nearest to ``value``, or ``None`` when none is near."""
  choices = [str(c) for c in choices]
  close = difflib.get_close_matches(str(value), choices, n=1)
  # A shortened name ("cosine") is too far from the full one for difflib alone.
  close = close or [c for c in choices if str(value) and str(value) in c][:1]
  return close[0] if close else None


def suggest(value: Any, choices: Iterable[Any], prefix: str = "") -> str:
  """``"; did you mean 'x'?"`` for the closest choice, or ``""``."""
  found = closest(value, choices)
  return f"; did you mean {prefix + found!r}?" if found is not None else ""


def _public(namespace: Any) -> list[str]:
  return [n for n in dir(namespace) if not n.startswith("_")]


def get_attribute(
  path: str, namespace: Any, owner: str, names: Iterable[str], separator: str = "."
) -> Any:
  """``namespace.a.b`` for ``names = ["a", "b"]``, or a :class:`ConfigError` with the closest name.

  ``owner`` is how the config wrote ``namespace`` (``"optax"``, a module's
  name), and ``separator`` what it wrote after it (``"."``, or ``":"``
  after a module).
  """
  found = namespace
  for name in names:
    if not name.isidentifier() or not hasattr(found, name):
      hint = suggest(name, _public(found), owner + separator)
      raise ConfigError(path, f"{owner} has no {name!r}{hint}")
    found, owner, separator = getattr(found, name), f"{owner}{separator}{name}", "."
  return found


def _import_module(path: str, module_name: str):
  try:
    return importlib.import_module(module_name)
  except ModuleNotFoundError as error:
    missing = error.name or module_name
    if missing != module_name and not module_name.startswith(missing + "."):
      raise ConfigError(path, f"importing {module_name!r} failed: {error}") from None
    if os.getcwd() not in sys.path and missing == module_name.split(".")[0]:
      # The `momentum-jax` command does not search the current directory as
      # `python -m` does; a module next to the config should be found by both.
      sys.path.append(os.getcwd())
      return _import_module(path, module_name)
    parent, _, child = missing.rpartition(".")
    siblings = (
      [m.name for m in pkgutil.iter_modules(sys.modules[parent].__path__)]
      if parent in sys.modules and hasattr(sys.modules[parent], "__path__")
      else []
    )
    raise ConfigError(
      path, f"no module named {missing!r}{suggest(child, siblings, parent + '.')}"
    ) from None
  except ImportError as error:
    raise ConfigError(path, f"importing {module_name!r} failed: {error}") from None


def import_object(path: str, text: str) -> Any:
  """The object ``"package.module:name"`` (or ``:Outer.name``) stands for.

  Raises:
    ConfigError: naming ``path`` if the module cannot be imported or has no
      such attribute (the closest one suggested).
  """
  module_name, _, attribute = text.partition(":")
  if not module_name or not attribute:
    raise ConfigError(path, f"expected 'package.module:function', got {text!r}")
  module = _import_module(path, module_name)
  return get_attribute(path, module, module_name, attribute.split("."), ":")


def python_name(obj: Any) -> str:
  """``module:qualname`` of a function or class (for a ``functools.partial``, with its arguments)."""
  if isinstance(obj, functools.partial):
    arguments = [repr(a) for a in obj.args] + [f"{k}={v!r}" for k, v in obj.keywords.items()]
    return f"functools.partial({', '.join([python_name(obj.func), *arguments])})"
  module = getattr(obj, "__module__", None) or type(obj).__module__
  qualname = getattr(obj, "__qualname__", None) or type(obj).__qualname__
  return f"{module}:{qualname}"


def recorded_name(obj: Any) -> str:
  """The string a manifest records for ``obj``: its import path, else ``python:module:qualname``.

  The import path is recorded only if importing it gives ``obj`` back, so
  that a config naming it in YAML is the same config.
  """
  name = python_name(obj)
  module_name, _, qualname = name.partition(":")
  # A script's own functions (__main__) are not found by that name from elsewhere.
  if not isinstance(obj, functools.partial) and "<" not in qualname and module_name != "__main__":
    try:
      found = functools.reduce(getattr, qualname.split("."), importlib.import_module(module_name))
    except (ImportError, AttributeError):
      found = None
    if found is obj:
      return name
  return f"python:{name}"
