"""Pages generated from the code, so that they cannot drift from it.

- ``{config-reference}``: every key of a sweep config, its type, default and
  description, read from the JSON Schema of
  :class:`momentum_jax.sweep._schema.SweepSchema` (what ``momentum-jax schema`` prints).
- ``{cli-reference}``: every command and option of ``momentum-jax``, read from
  :func:`momentum_jax.cli.build_parser`.
- The API coverage check: when the site is built, each public name (``__all__``)
  of :data:`API_MODULES` must have an entry in the API reference; a missing one
  is a warning, so ``-W`` fails the build. ``tests/test_docs.py`` runs the same
  check on ``reference/api.md`` without building.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import re
from pathlib import Path

# The modules whose every public name the API reference documents.
API_MODULES = (
  "momentum_jax",
  "momentum_jax.optim",
  "momentum_jax.sweep",
  "momentum_jax.sweep.strategies",
  "momentum_jax.results",
  "momentum_jax.report",
  "momentum_jax.train",
  "momentum_jax.problems",
  "momentum_jax.models",
  "momentum_jax.data",
)
# ``momentum_jax`` re-exports the optimizers: an entry under the module it
# re-exports covers its name (the page says so).
REEXPORTS = {"momentum_jax": "momentum_jax.optim"}
API_PAGE = Path(__file__).resolve().parents[1] / "reference" / "api.md"


def public_names(module_name: str) -> list[str]:
  """The names ``module_name`` publishes: its ``__all__``, which every API module must have."""
  module = importlib.import_module(module_name)
  names = getattr(module, "__all__", None)
  if names is None:
    raise AttributeError(
      f"{module_name} has no __all__: list its public names there, "
      "so the API reference can be checked against them"
    )
  return sorted(names)


def missing_entries(documented: set[str]) -> list[str]:
  """The public names of :data:`API_MODULES` with no entry among ``documented`` (full names)."""
  missing = []
  for module in API_MODULES:
    covering = {module, REEXPORTS.get(module, module)}
    for name in public_names(module):
      if not any(f"{prefix}.{name}" in documented for prefix in covering):
        missing.append(f"{module}.{name}")
  return missing


def autosummary_entries(text: str) -> set[str]:
  """The full names listed in the ``.. autosummary::`` blocks of a MyST page.

  The blocks are reStructuredText (``{eval-rst}``): autosummary finds the stubs
  to generate by reading that syntax, in any source file.
  """
  entries = set()
  for block in re.findall(r"\.\. autosummary::\n(.*?)```", text, re.S):
    entries.update(
      line.strip()
      for line in block.splitlines()
      if line.strip() and not line.strip().startswith(":")
    )
  return entries


def _drop_builtin_docstrings(app, what, name, obj, options, lines) -> None:
  """A registry (a dict, a tuple) would show its type's docstring: ``dict() -> new empty ...``."""
  if what in ("data", "attribute") and not isinstance(obj, type) and lines:
    builtin = type(obj).__doc__
    if isinstance(builtin, str) and inspect.cleandoc(builtin) == "\n".join(lines).strip():
      lines.clear()


def _check_api_coverage(app, env) -> None:
  from sphinx.util import logging

  documented = set(env.get_domain("py").objects)
  for name in missing_entries(documented):
    logging.getLogger(__name__).warning(
      "API reference: the public name %s has no entry; add it to docs/reference/api.md", name
    )


# --- the config reference ---------------------------------------------------------------


def _type(schema: dict) -> str:
  """A JSON Schema type in a reader's words: ``integer ≥ 1``, ``TrainSection``, ``a | b``."""
  if "$ref" in schema:
    name = schema["$ref"].rsplit("/", 1)[-1]
    return f"[{name}](#{name.lower()})" if not name.startswith("_") else "another method's name"
  for key in ("anyOf", "oneOf"):
    if key in schema:
      return " or ".join(dict.fromkeys(_type(option) for option in schema[key]))
  if "const" in schema:
    return f"`{json.dumps(schema['const'])}`"
  if "enum" in schema:
    return " or ".join(f"`{json.dumps(value)}`" for value in schema["enum"])
  kind = schema.get("type", "any value")
  if kind == "array":
    inner = _type(schema.get("items", {}))
    return f"list of {inner}" + _bounds(schema, "minItems", "maxItems", " items")
  if kind == "null":
    return "null"
  return kind + _bounds(schema, "minimum", "maximum") + _exclusive(schema)


def _bounds(schema: dict, low: str, high: str, unit: str = "") -> str:
  parts = [
    f"≥ {schema[low]}" if low in schema else "",
    f"≤ {schema[high]}" if high in schema else "",
  ]
  text = ", ".join(part for part in parts if part)
  return f" ({text}{unit})" if text else ""


def _exclusive(schema: dict) -> str:
  parts = [
    f"> {schema['exclusiveMinimum']}" if "exclusiveMinimum" in schema else "",
    f"< {schema['exclusiveMaximum']}" if "exclusiveMaximum" in schema else "",
  ]
  text = ", ".join(part for part in parts if part)
  return f" ({text})" if text else ""


def _cell(text: str) -> str:
  """One table cell: one line, its pipes escaped, Sphinx roles (``:class:`~x```) as code."""
  text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", " ".join(str(text).split()))
  return text.replace("|", "\\|")


def _section(title: str, schema: dict) -> list[str]:
  lines = [f"## `{title}`", "", _cell(schema.get("description", "")), ""]
  required = set(schema.get("required", []))
  lines += ["| key | type | default | description |", "|---|---|---|---|"]
  for key, field in schema.get("properties", {}).items():
    default = "required" if key in required else f"`{json.dumps(field.get('default'))}`"
    lines.append(
      f"| `{key}` | {_cell(_type(field))} | {default} | {_cell(field.get('description', ''))} |"
    )
  extra = schema.get("additionalProperties")
  if isinstance(extra, dict):
    lines.append(f"| *other keys* | | | {_cell(extra.get('description', ''))} |")
  return [*lines, ""]


def config_reference_markdown() -> str:
  """The config reference: the top level, then each section the schema defines."""
  from momentum_jax.sweep import _schema

  schema = _schema.json_schema()
  lines = _section("SweepSchema", schema)
  for name, section in schema["$defs"].items():
    if not name.startswith("_"):
      lines += _section(name, section)
  return "\n".join(lines)


# --- the CLI reference ------------------------------------------------------------------


def _options(parser: argparse.ArgumentParser) -> list[str]:
  lines = ["| argument | default | description |", "|---|---|---|"]
  for (
    action
  ) in parser._actions:  # argparse keeps them nowhere public; sphinx-argparse reads them too
    if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
      continue
    name = ", ".join(action.option_strings) or action.dest
    if action.metavar and action.option_strings:
      name += f" {action.metavar}"
    default = "" if action.default in (None, False, argparse.SUPPRESS) else f"`{action.default}`"
    lines.append(f"| `{name}` | {default} | {_cell(action.help or '')} |")
  return lines


def cli_reference_markdown() -> str:
  """Each ``momentum-jax`` command: its usage, its help and its arguments."""
  from momentum_jax import cli

  parser = cli.build_parser()
  commands = next(
    action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
  )
  helps = {choice.dest: choice.help for choice in commands._choices_actions}
  lines = [_cell(parser.description), ""]
  for name, command in commands.choices.items():
    lines += [
      f"## `momentum-jax {name}`",
      "",
      _cell(helps.get(name, "")),
      "",
      "```text",
      command.format_usage().strip(),
      "```",
      "",
    ]
    lines += [*_options(command), ""]
  return "\n".join(lines)


def _directive(make):
  """A directive replaced by the markdown ``make()`` returns, parsed in place (headings too)."""
  from docutils import nodes
  from docutils.parsers.rst import Directive
  from docutils.statemachine import StringList

  class Generated(Directive):
    def run(self):
      container = nodes.container()
      self.state.nested_parse(
        StringList(make().splitlines()), self.content_offset, container, match_titles=True
      )
      return container.children

  return Generated


def setup(app):
  """Sphinx's entry: the two directives and the checks (Sphinx is imported only here)."""
  app.add_directive("config-reference", _directive(config_reference_markdown))
  app.add_directive("cli-reference", _directive(cli_reference_markdown))
  app.connect("env-check-consistency", _check_api_coverage)
  app.connect("autodoc-process-docstring", _drop_builtin_docstrings)
  return {"parallel_read_safe": True, "parallel_write_safe": True}
