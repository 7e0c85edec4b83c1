"""Writing a sweep's result with its report and figures: what the command and experiments call."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from momentum_jax.report._markdown import format_report
from momentum_jax.results import REPORT_FILE, SweepResult
from momentum_jax.runtime.files import atomic_write_text

logger = logging.getLogger(__name__)


def save(result: SweepResult, out_dir: str | os.PathLike, figures: bool = True) -> dict[str, Any]:
  """Writes ``result`` (:meth:`SweepResult.save`), its reports and its figures.

  The reports: ``summary.md``; ``report.html``, the interactive page
  (:mod:`momentum_jax.report._html`, needs plotly); the Optuna studies of
  ``optuna.journal`` that ``momentum-jax dashboard DIR`` shows
  (:mod:`momentum_jax.report._journal`, needs Optuna). Without plotly or
  Optuna (the ``dashboard`` extra) their file is left out and the log says so.

  On several JAX processes only process 0 writes (each holds the whole
  result); the others return ``{}``.

  Args:
    result: The sweep's result.
    out_dir: The folder, created with its parents if missing.
    figures: Whether to draw the figures (matplotlib; a second or two).

  Returns:
    The written paths: those of :meth:`SweepResult.save`, ``report``,
    ``html`` and ``journal`` (None where left out), and ``figures`` (a list,
    empty without ``figures``).
  """
  paths: dict[str, Any] = dict(result.save(out_dir))
  if not paths:  # not process 0
    return paths
  paths["report"] = atomic_write_text(Path(out_dir) / REPORT_FILE, format_report(result))
  # Imported here, as the figures' matplotlib: loading a result needs none of them.
  from momentum_jax.report._html import write_html
  from momentum_jax.report._journal import write_journal

  paths["html"] = _optional(write_html, result, out_dir, "report.html", "plotly")
  paths["journal"] = _optional(write_journal, result, out_dir, "optuna.journal", "optuna")
  paths["figures"] = []
  if figures:
    from momentum_jax.report import plots  # matplotlib only when figures are drawn

    paths["figures"] = plots.write_figures(result, out_dir)
  return paths


def _optional(write, result: SweepResult, out_dir, name: str, package: str) -> Path | None:
  """``write(result, out_dir)``, or None, logged, when ``package`` is not installed."""
  try:
    return write(result, out_dir)
  except ModuleNotFoundError as error:
    if error.name != package and not (error.name or "").startswith(package + "."):
      raise
    logger.info("no %s: %s is not installed (pip install 'momentum_jax[dashboard]')", name, package)
    return None
