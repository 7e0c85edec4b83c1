"""The optax optimizers a sweep must take by name, read from the installed optax itself.

Derived, so the list cannot drift from optax's: every public function of
the module that defines ``optax.adam`` (optax's aliases), every optimizer
optax's own ``alias_test.py`` runs, and every ``optax.contrib`` optimizer its
``contrib/_common_test.py`` runs (both read with ``ast``, not imported: they
need absl). :data:`NOT_BY_NAME` holds those a config cannot name alone, each
with the reason; docs/sweeps.md lists them.
"""

from __future__ import annotations

import ast
import functools
import inspect
import pathlib
import sys

import optax
import optax.contrib

_OPTAX = pathlib.Path(optax.__file__).parent
ALIAS_TEST = _OPTAX / "_src" / "alias_test.py"
CONTRIB_TEST = _OPTAX / "contrib" / "_common_test.py"

# name -> why a config cannot name it alone (docs/sweeps.md says the same).
NOT_BY_NAME = {
  "optax.contrib.sophia": "needs the extra argument obj_fn, which optax.lbfgs's line search "
  "refuses beside its value_fn",
  "optax.contrib.mechanize": "wraps another optimizer",
  "optax.contrib.schedule_free": "wraps another optimizer",
  "optax.contrib.reduce_on_plateau": "scales another optimizer's updates",
}


def _tested(path: pathlib.Path, key: str) -> dict[str, dict]:
  """``{name: its first keyword arguments}`` of the dict literals ``{key: name, ...}`` of ``path``.

  ``path`` is one of optax's test files; the arguments are its ``opt_kwargs``
  (or ``wrapper_kwargs``) beside the name.
  """
  found = {}
  for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
    if not isinstance(node, ast.Dict):
      continue
    fields = {k.value: v for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant)}
    name = fields.get(key)
    if isinstance(name, ast.Constant) and name.value and name.value not in found:
      arguments = fields.get(key.replace("name", "kwargs"))
      found[name.value] = ast.literal_eval(arguments) if arguments is not None else {}
  return found


def _tested_names(path: pathlib.Path, key: str) -> set[str]:
  return set(_tested(path, key))


def tested_arguments(name: str) -> dict:
  """The keyword arguments optax's own tests first run ``name`` (``optax.<alias>``, …) with."""
  short = name.rpartition(".")[2]
  path = CONTRIB_TEST if name.startswith("optax.contrib.") else ALIAS_TEST
  return dict(_tested(path, "opt_name").get(short) or {})


def aliases() -> list[str]:
  """``optax.<alias>`` for every optimizer of optax's alias module and of its alias tests."""
  module = sys.modules[optax.adam.__module__]
  defined = lambda f: getattr(getattr(f, "func", f), "__module__", None) == module.__name__
  own = {
    name
    for name, f in vars(module).items()
    if (inspect.isfunction(f) or isinstance(f, functools.partial))
    and defined(f)
    and not name.startswith("_")
    and getattr(optax, name, None) is f
  }
  return sorted(f"optax.{name}" for name in own | _tested_names(ALIAS_TEST, "opt_name"))


def contrib() -> list[str]:
  """``optax.contrib.<name>`` for every optimizer and wrapper optax's contrib tests run."""
  tested = _tested_names(CONTRIB_TEST, "opt_name") | _tested_names(CONTRIB_TEST, "wrapper_name")
  return sorted(f"optax.contrib.{name}" for name in tested if hasattr(optax.contrib, name))


def by_name() -> list[str]:
  """Every optax optimizer a config names alone (all but :data:`NOT_BY_NAME`)."""
  return [name for name in aliases() + contrib() if name not in NOT_BY_NAME]
