"""Sphinx configuration of momentum_jax's documentation site.

Built with ``python -m sphinx -W -b html docs docs/_build/html`` (warnings are
errors). Pages are MyST markdown; those with ``{code-cell}`` blocks are executed
at build time by myst-nb (their outputs cached under ``docs/_build``). The API
reference comes from the docstrings (autodoc, autosummary, napoleon: Google
style); the config and CLI references are generated from the pydantic schema and
the argparse parser by ``_ext/momentum_docs.py``, which also fails the build
when a public name has no API entry.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the checkout's package, as the tests import it
sys.path.insert(0, os.path.join(HERE, "_ext"))

project = "momentum_jax"
author = "momentum_jax contributors"
copyright = "2026, momentum_jax contributors"

extensions = [
  "myst_nb",
  "sphinx.ext.autodoc",
  "sphinx.ext.autosummary",
  "sphinx.ext.napoleon",
  "sphinx.ext.mathjax",
  "momentum_docs",
]

# No network at build time: no intersphinx, no remote images.
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
# reStructuredText first: autosummary writes its stub pages with the first suffix.
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}

myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 4  # "[text](page.md#a-heading)" links resolve, as on GitHub

# Tutorials run when the site is built; a failing cell fails the build. "cache"
# re-executes a page only when its code changed (a fresh checkout, as in CI, runs all).
nb_execution_mode = "cache"
nb_execution_timeout = 300
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# "Attributes:" as a field list: autodoc lists the members themselves (no duplicate entries).
napoleon_use_ivar = True

html_theme = "sphinx_book_theme"
html_title = "momentum_jax"
html_theme_options = {"show_toc_level": 2, "use_download_button": False}
