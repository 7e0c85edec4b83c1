"""Config files read as people write them: YAML 1.2's plain data, and nothing that is not data.

PyYAML's ``SafeLoader`` speaks YAML 1.1, in which ``1e-3`` is a string (1.1
wants ``1.0e-3``), ``no`` and ``off`` are false, ``010`` is eight and ``1:30``
is ninety. Here the scalars are resolved as YAML 1.2's core schema resolves
them (``1e-3``, ``1E5`` and ``.5`` are floats; booleans only ``true``/``false``;
integers decimal, ``0o`` or ``0x``), and whatever a config cannot mean is
refused by name with its line: a key given twice, a date, ``!!binary`` and
Python tags, an anchor that contains itself, aliases that expand past
:data:`MAX_NODES` nodes (a "billion laughs" file is a few hundred bytes),
nesting deeper than :data:`MAX_DEPTH`, a file that is not UTF-8 text.

Why a subclass of PyYAML's loader rather than ruamel.yaml (which speaks 1.2):
PyYAML is already a dependency, the resolvers are a few regular expressions,
and ruamel.yaml would still need every refusal here added by hand.
"""

from __future__ import annotations

import os
import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from momentum_jax.sweep._errors import ConfigError

MAX_DEPTH = 64
# Nodes after every alias is expanded: a config is tens to hundreds of them.
MAX_NODES = 100_000

_TAG = "tag:yaml.org,2002:"
_CORE_SCALARS = (
  ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
  ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
  (
    "float",
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
    "-+0123456789.",
  ),
)


class _Refused(yaml.MarkedYAMLError):
  """What this loader refuses; ``problem`` says what, ``problem_mark`` where."""

  def __init__(self, problem: str, mark):
    super().__init__(problem=problem, problem_mark=mark)


class ConfigLoader(yaml.SafeLoader):
  """``yaml.SafeLoader`` with YAML 1.2 core scalars and the refusals of this module."""

  yaml_implicit_resolvers = {
    first: [
      (tag, regexp)
      for tag, regexp in resolvers
      if tag not in {_TAG + name for name, _, _ in _CORE_SCALARS}
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
  }

  def __init__(self, stream):
    super().__init__(stream)
    self._depth = 0

  def compose_node(self, parent, index):
    self._depth += 1
    try:
      if self._depth > MAX_DEPTH:
        raise _Refused(f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
      return super().compose_node(parent, index)
    finally:
      self._depth -= 1

  def compose_document(self):
    node = super().compose_document()
    _expanded_size(node, {}, set())
    return node

  def construct_mapping(self, node, deep=False):
    if isinstance(node, MappingNode):
      seen = {}
      for key, _ in node.value:
        if not isinstance(key, ScalarNode) or key.tag == _TAG + "merge":
          continue
        if (key.tag, key.value) in seen:
          raise _Refused(
            f"duplicate key {key.value!r} (first on line {seen[key.tag, key.value].line + 1})",
            key.start_mark,
          )
        seen[key.tag, key.value] = key.start_mark
    return super().construct_mapping(node, deep=deep)

  def construct_yaml_int(self, node):
    text = self.construct_scalar(node)
    if text.startswith(("0o", "0x")):
      return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)  # YAML 1.2: "010" is ten

  def refuse(self, node):
    kind = {
      _TAG + "timestamp": "a date (quote it if it is text)",
      _TAG + "binary": "binary data (!!binary)",
    }.get(node.tag)
    if kind is None:
      kind = (
        f"the tag {node.tag.replace(_TAG, '!!')!r} (a config holds mappings, lists, text, numbers, "
        "true/false and null)"
      )
    raise _Refused(f"{kind} is not allowed here", node.start_mark)


for _name, _regexp, _first in _CORE_SCALARS:
  ConfigLoader.add_implicit_resolver(_TAG + _name, re.compile(_regexp), list(_first))
ConfigLoader.add_constructor(_TAG + "int", ConfigLoader.construct_yaml_int)
for _tag in ("timestamp", "binary", "set", "omap", "pairs"):
  ConfigLoader.add_constructor(_TAG + _tag, ConfigLoader.refuse)
ConfigLoader.add_constructor(None, ConfigLoader.refuse)  # any other tag (!!python/..., !foo)


def _expanded_size(node, sizes: dict[int, int], open_nodes: set[int]) -> int:
  """Nodes under ``node`` with aliases expanded; refuses a node inside itself or too many."""
  key = id(node)
  if key in sizes:
    return sizes[key]
  if key in open_nodes:
    raise _Refused("an anchor that contains itself (a recursive alias)", node.start_mark)
  open_nodes.add(key)
  if isinstance(node, SequenceNode):
    children = node.value
  elif isinstance(node, MappingNode):
    children = [part for pair in node.value for part in pair]
  else:
    children = []
  total = 1 + sum(_expanded_size(child, sizes, open_nodes) for child in children)
  open_nodes.discard(key)
  if total > MAX_NODES:
    raise _Refused(f"aliases expand to more than {MAX_NODES} values", node.start_mark)
  sizes[key] = total
  return total


def read_yaml(path: str | os.PathLike) -> Any:
  """The plain data of the YAML file ``path``.

  Raises:
    ConfigError: naming the file (and the line) if it is a folder, not
      UTF-8, not YAML, or holds what :class:`ConfigLoader` refuses.
    FileNotFoundError: if there is no such file.
  """
  name = os.fspath(path)
  if os.path.isdir(name):
    raise ConfigError(name, "is a folder; give the path of a YAML config file")
  try:
    with open(name, "rb") as file:
      text = file.read().decode("utf-8")
  except UnicodeDecodeError as error:
    raise ConfigError(
      name,
      f"is not UTF-8 text (byte {error.object[error.start]:#04x} at "
      f"offset {error.start}); save it as UTF-8",
    ) from None
  except PermissionError as error:
    raise ConfigError(name, f"cannot be read: {error.strerror}") from None
  try:
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506  (a SafeLoader)
  except yaml.MarkedYAMLError as error:
    mark = error.problem_mark or error.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = error.problem or error.context or "not valid YAML"
    raise ConfigError(
      name, f"{where}{what}" + ("" if isinstance(error, _Refused) else " (not valid YAML)")
    ) from None
  except yaml.YAMLError as error:
    raise ConfigError(name, f"is not valid YAML: {error}") from None
