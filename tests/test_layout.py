"""The package's shape: modules of at most 400 lines, functions of at most 60 lines of code.

The tests' modules (``tests/*.py``: the tests, their helpers, conftest.py) are held
to the same 400 lines. The 60-line rule is the package's only: one helper,
``_reference_engine.build_train`` (the old engine's whole run, kept as it was
as the tests' reference), runs over it.

How a function is counted: from its ``def`` line to its last line
(``end_lineno - lineno + 1``, decorators not included), less its docstring's
lines, blank lines and lines holding only a comment. A nested function counts
in the function around it and is checked on its own too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "momentum_jax"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> list[str]:
  return sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py"))


def _test_modules() -> list[str]:
  return sorted(p.name for p in TESTS.glob("*.py"))


def code_lines(function: ast.FunctionDef | ast.AsyncFunctionDef, source: list[str]) -> int:
  """Lines of code in ``function``: its lines less docstring, blank and comment-only lines."""
  skipped = set()
  body = function.body
  if (
    body
    and isinstance(body[0], ast.Expr)
    and isinstance(body[0].value, ast.Constant)
    and isinstance(body[0].value.value, str)
  ):
    skipped.update(range(body[0].lineno, body[0].end_lineno + 1))
  return sum(
    1
    for number in range(function.lineno, function.end_lineno + 1)
    if number not in skipped and (text := source[number - 1].strip()) and not text.startswith("#")
  )


def test_code_lines_counts_as_the_docstring_says():
  source = '''def f(x):
  """Doc.

  More doc.
  """
  # a comment

  y = x + 1  # a trailing comment counts: the line holds code
  return y
'''.splitlines()
  (function,) = ast.parse("\n".join(source)).body
  assert code_lines(function, source) == 3  # def, y = ..., return


@pytest.mark.parametrize("module", _modules())
def test_module_is_at_most_400_lines(module):
  lines = len((PACKAGE / module).read_text(encoding="utf-8").splitlines())
  assert lines <= MAX_MODULE_LINES, f"{module}: {lines} lines; split it by concept"


@pytest.mark.parametrize("module", _test_modules())
def test_test_module_is_at_most_400_lines(module):
  lines = len((TESTS / module).read_text(encoding="utf-8").splitlines())
  assert lines <= MAX_MODULE_LINES, f"tests/{module}: {lines} lines; split it by concept"


@pytest.mark.parametrize("module", _modules())
def test_functions_are_at_most_60_lines_of_code(module):
  text = (PACKAGE / module).read_text(encoding="utf-8")
  source = text.splitlines()
  long = [
    f"{node.name} (line {node.lineno}): {count} lines of code"
    for node in ast.walk(ast.parse(text))
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    and (count := code_lines(node, source)) > MAX_FUNCTION_LINES
  ]
  assert not long, f"{module}: " + "; ".join(long)
