"""The documentation site: every public name has an API entry; the site builds with -W.

The coverage check reads ``docs/reference/api.md`` (no build, a second); the
build test runs where Sphinx and the ``docs`` extra are installed, with the
tutorials not executed (``.ci/run`` builds the site once more, executing them).
"""

from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))
import momentum_docs  # noqa: E402 - found in docs/_ext; imports Sphinx only when Sphinx loads it


def _documented() -> set[str]:
  return momentum_docs.autosummary_entries(momentum_docs.API_PAGE.read_text(encoding="utf-8"))


def test_every_public_name_has_an_api_entry():
  assert momentum_docs.missing_entries(_documented()) == []


def test_the_coverage_check_finds_a_missing_name():
  documented = _documented()
  documented.discard("momentum_jax.optim.nesterov")
  assert momentum_docs.missing_entries(documented) == [
    "momentum_jax.nesterov",
    "momentum_jax.optim.nesterov",
  ]


def test_every_api_entry_names_a_public_name():
  """An entry whose name went away would fail the build (autosummary: no such object)."""
  public = {
    f"{module}.{name}"
    for module in momentum_docs.API_MODULES
    for name in momentum_docs.public_names(module)
  }
  assert sorted(_documented() - public) == []


def test_a_module_without_all_is_refused(monkeypatch):
  monkeypatch.setattr(momentum_docs, "API_MODULES", ("momentum_jax.cli",))
  with pytest.raises(AttributeError, match="momentum_jax.cli has no __all__"):
    momentum_docs.missing_entries(set())


def test_the_config_reference_lists_every_key():
  from momentum_jax.sweep import _schema

  page = momentum_docs.config_reference_markdown()
  schema = _schema.json_schema()
  sections = [schema, *(s for name, s in schema["$defs"].items() if not name.startswith("_"))]
  for section in sections:
    for key in section.get("properties", {}):
      assert f"| `{key}` |" in page, key
  assert "| `divergence_factor` | number (> 1) | `1000.0` |" in page


def test_the_cli_reference_lists_every_option():
  from momentum_jax import cli

  page = momentum_docs.cli_reference_markdown()
  for command in ("sweep", "check", "schema", "plot", "report", "demo"):
    assert f"## `momentum-jax {command}`" in page
  for option in (
    "--chunk-size",
    "--width",
    "--checkpoint-every SECONDS",
    "--coordinator HOST:PORT",
  ):
    assert f"`{option}`" in page, option
  assert cli.build_parser().prog == "momentum-jax"


@pytest.mark.skipif(
  importlib.util.find_spec("myst_nb") is None
  or importlib.util.find_spec("sphinx_book_theme") is None,
  reason="needs the docs extra: pip install '.[docs]'",
)
def test_the_site_builds_without_warnings(tmp_path):
  build = subprocess.run(
    [
      sys.executable,
      "-m",
      "sphinx",
      "-W",
      "-q",
      "-b",
      "html",
      "-D",
      "nb_execution_mode=off",
      "-d",
      str(tmp_path / "doctrees"),
      str(ROOT / "docs"),
      str(tmp_path / "html"),
    ],
    capture_output=True,
    text=True,
    cwd=ROOT,
    timeout=600,
  )
  assert build.returncode == 0, build.stderr[-4000:]
  assert (tmp_path / "html" / "reference" / "config.html").exists()
  api = (tmp_path / "html" / "reference" / "api.html").read_text(encoding="utf-8")
  assert "momentum_jax.sweep.run" in api


def test_every_config_key_is_described():
  """The schema describes each key (from the Attributes of its section or spec): add one there."""
  from momentum_jax.sweep import _schema

  schema = _schema.json_schema()
  sections = {"SweepSchema": schema, **schema["$defs"]}
  undescribed = [
    f"{title}.{key}"
    for title, section in sections.items()
    if not title.startswith("_")
    for key, field in section.get("properties", {}).items()
    if not field.get("description")
  ]
  assert undescribed == []


def test_no_page_is_overwritten_by_one_of_sphinxs_own():
  """Sphinx writes search.html, genindex.html and py-modindex.html after the pages, silently."""
  own = {"search", "genindex", "py-modindex"}
  pages = {page.stem for page in (ROOT / "docs").glob("*.md")}
  assert not pages & own
