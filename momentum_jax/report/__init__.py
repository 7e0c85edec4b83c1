"""A sweep's report: configurations ranked over seeds, warnings, Markdown, figures.

:func:`save` writes a result with its report (``summary.md``) and figures;
:func:`format_report` is the Markdown (see :mod:`momentum_jax.report._markdown`
for the ranking and the warnings); :mod:`momentum_jax.report.plots` draws
the figures; it also writes ``report.html`` (an interactive page) and the
sweep as Optuna studies in ``optuna.journal``, which :func:`serve_dashboard`
shows in optuna-dashboard. The report reads the result's tables and manifest alone: it
never loads the config or the user's code again.
"""

from momentum_jax.report._dashboard import serve_dashboard
from momentum_jax.report._markdown import (
  BOUNDARY_FRACTION,
  best_configurations,
  best_table,
  boundary_warnings,
  divergence_warnings,
  format_report,
  markdown_table,
  warnings,
)
from momentum_jax.report._save import save

__all__ = [
  "BOUNDARY_FRACTION",
  "best_configurations",
  "best_table",
  "boundary_warnings",
  "divergence_warnings",
  "format_report",
  "markdown_table",
  "save",
  "serve_dashboard",
  "warnings",
]
