"""Writing a sweep's result with its report and figures: what the command and experiments call."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from momentum_jax.report._markdown import format_report
from momentum_jax.results import REPORT_FILE, SweepResult
from momentum_jax.runtime.files import atomic_write_text


def save(result: SweepResult, out_dir: str | os.PathLike, figures: bool = True
         ) -> dict[str, Any]:
  """Writes ``result`` (:meth:`SweepResult.save`), its report ``summary.md`` and its figures.

  On several JAX processes only process 0 writes (each holds the whole
  result); the others return ``{}``.

  Args:
    result: The sweep's result.
    out_dir: The folder, created with its parents if missing.
    figures: Whether to draw the figures (matplotlib; a second or two).

  Returns:
    The written paths: those of :meth:`SweepResult.save`, ``report``, and
    ``figures`` (a list, empty without ``figures``).
  """
  paths: dict[str, Any] = dict(result.save(out_dir))
  if not paths:  # not process 0
    return paths
  paths["report"] = atomic_write_text(Path(out_dir) / REPORT_FILE, format_report(result))
  paths["figures"] = []
  if figures:
    from momentum_jax.report import plots  # matplotlib only when figures are drawn
    paths["figures"] = plots.write_figures(result, out_dir)
  return paths
