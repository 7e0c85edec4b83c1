"""The tuning report of a sweep: configurations ranked over their seeds, warnings, Markdown.

A configuration is one optimizer group's setting of its hyperparameters; its
runs are its seeds. Ranking single runs picks the luckiest seed, so the report
ranks configurations by the mean of the metric over their seeds and shows the
spread beside it (the sample standard deviation and the count of seeds the
mean is over). Diverged runs are left out of the means, as in
:func:`momentum_jax.results.aggregate_over_seeds`, and a configuration that
lost a seed ranks below every configuration that lost none (its mean is over
its lucky seeds only); one that lost every seed is not ranked.

Warnings (:func:`warnings`) follow the Deep Learning Tuning Playbook's checks
of a search:

- **boundary**: the best configuration of an optimizer group lies on the
  boundary of the range searched for one of its hyperparameters, so a better
  one may lie outside: widen the range. For a grid (a list, ``linspace``,
  ``logspace``) the boundary is its smallest and largest value; for a range
  (``uniform``, ``loguniform``, whose ends are never drawn exactly) it is the
  first and last :data:`BOUNDARY_FRACTION` of the range in its own scale (log
  for ``loguniform``). The ranges are read from the manifest's ``search``; a
  summary without one is treated as a grid of its values. A hyperparameter
  with one value has no boundary, and neither has one whose best value is as
  far as the optimizer lets it go (β = 0: the optimizer's own check refuses a
  value below; the sweep asks it and records the answer in the manifest's
  ``limits``).
  With population-based training (a summary with ``lineage``) the check is
  on the best member's final values (``final_<name>``), against the range of
  ``<name>``: a perturbed value is clipped to its range, so a best member
  that ended at an end was pushed against it. Its initial values are not
  checked: they may have been replaced by a copy.
- **divergence**: more than half of an optimizer group's runs diverged: the
  search spends most of its budget where nothing trains.

:func:`format_report` writes it all as Markdown (its tables by
:func:`markdown_table`), which :func:`momentum_jax.report.save` stores as
``summary.md`` beside ``summary.csv``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from momentum_jax import results
from momentum_jax.results import Manifest, SweepResult

# Within this fraction of a range's width of one of its ends, in the range's
# own scale, a sampled best counts as on the boundary. Sampled points never
# hit the ends themselves; 5% of 16 quasi-random points is about one point's share.
BOUNDARY_FRACTION = 0.05
_FINAL_PREFIX = "final_"  # pbt's final hyperparameters


# --------------------------------------------------------------------------- ranking


def best_configurations(
  summary: pd.DataFrame, n: int | None = None, by: str | None = None
) -> pd.DataFrame:
  """Configurations ranked by the mean of ``by`` over their seeds, best first.

  See :func:`momentum_jax.results.rank_configurations` (the ranking a sweep's
  kept models follow too).
  """
  return results.rank_configurations(summary, n=n, by=by)


def best_table(summary: pd.DataFrame, n: int = 5, by: str | None = None) -> pd.DataFrame:
  """The ``n`` best configurations as the report and the ``sweep`` command show them.

  Columns: ``optimizer``, ``trial`` (with Optuna's search), the swept
  hyperparameters that one of them has, ``<by>_mean``, ``<by>_std``,
  ``count``, ``diverged``, then the means of the other metrics (not the
  ``start_`` ones): no ``seed``, since each row pools its seeds.
  """
  by = results.ranking_metric(summary) if by is None else by
  best = best_configurations(summary, n=n, by=by)
  used = [c for c in results.swept_hyperparameters(summary) if best[c].notna().any()]
  others = [
    f"{m}_mean" for m in results.metric_columns(summary) if m != by and not m.startswith("start_")
  ]
  stopped = ["stopped_at_step"] if "stopped_at_step" in best.columns else []
  trial = ["trial"] if "trial" in best.columns else []  # Optuna's trial number
  return best[
    ["optimizer", *trial, *used, f"{by}_mean", f"{by}_std", "count", "diverged", *stopped, *others]
  ]


# --------------------------------------------------------------------------- warnings


def _searched_range(manifest: Manifest, label: str, name: str) -> _Range | None:
  """The range the search sampled ``name`` of group ``label`` from (the manifest's), if any."""
  groups = (manifest.search or {}).get("groups") or {}
  written = ((groups.get(label) or {}).get("ranges") or {}).get(name)
  if not isinstance(written, Mapping) or len(written) != 1:
    return None
  ((kind, (low, high)),) = written.items()
  return _Range(kind, float(low), float(high))


@dataclasses.dataclass(frozen=True)
class _Range:
  """A searched range as the manifest records it: ``{"loguniform": [low, high]}``."""

  kind: str
  low: float
  high: float

  def position(self, value: float) -> float:
    """Where ``value`` lies, 0 at ``low`` and 1 at ``high``, in the range's scale (log for loguniform)."""
    if self.kind == "loguniform":
      return float((np.log(value) - np.log(self.low)) / (np.log(self.high) - np.log(self.low)))
    return float((value - self.low) / (self.high - self.low))


def _boundary_side(value: float, values: pd.Series, searched) -> str | None:
  """``"lower"``/``"upper"`` if ``value`` is on that boundary of what was searched, else None."""
  if searched is not None:
    position = searched.position(value)
    return (
      "lower"
      if position <= BOUNDARY_FRACTION
      else "upper"
      if position >= 1 - BOUNDARY_FRACTION
      else None
    )
  if value == values.min():
    return "lower"
  return "upper" if value == values.max() else None


def _at_its_limit(manifest: Manifest, label: str, name: str, end: float, side: str) -> bool:
  """Whether the optimizer of group ``label`` refuses ``name`` a step beyond ``end`` on ``side``.

  Then there is no range to widen. The optimizer's own check is the judge
  (``beta must be in [0, 1)``: a grid or range starting at β = 0 starts as
  low as β goes), asked by the sweep and kept in the manifest's ``limits``.
  """
  low, high = manifest.limits.get(label, {}).get(name, (None, None))
  limit = low if side == "lower" else high
  # The end read back from summary.csv may differ from the manifest's JSON in
  # the last digits (two decimal conversions): a relative 1e-9 is far below
  # any step the check was asked at (1e-6) and far above float64 rounding.
  return limit is not None and math.isclose(end, limit, rel_tol=1e-9, abs_tol=1e-12)


def boundary_warnings(result: SweepResult, by: str | None = None) -> list[str]:
  """A warning per hyperparameter whose best value (per optimizer group) is on its searched boundary.

  Not when the boundary is as far as the optimizer lets the hyperparameter
  go (β = 0 at the lower end: the optimizer refuses a value beyond it).
  """
  summary = result.summary
  found = []
  for label in dict.fromkeys(summary["optimizer"]):  # in group order
    own = summary[summary["optimizer"] == label]
    best = best_configurations(own, n=1, by=by)
    if best.empty:
      continue
    names = results.swept_hyperparameters(own)
    if "lineage" in own.columns:  # pbt: the values members ended with
      names = [name for name in names if name.startswith(_FINAL_PREFIX)]
    for name in names:
      value, values = best[name].iloc[0], own[name].dropna()
      if pd.isna(value):
        continue
      setting = name.removeprefix(_FINAL_PREFIX) if "lineage" in own.columns else name
      searched = _searched_range(result.manifest, label, setting)
      side = _boundary_side(float(value), values, searched)
      if side is None:
        continue
      low, high = (searched.low, searched.high) if searched else (values.min(), values.max())
      if _at_its_limit(
        result.manifest, label, setting, float(low if side == "lower" else high), side
      ):
        continue
      kind = f"{searched.kind} range" if searched else "grid"
      found.append(
        f"{label}: the best configuration has {name} = {value:.4g}, on the {side} "
        f"boundary of the searched {kind} [{low:.4g}, {high:.4g}]: widen the range "
        f"where {name} allows it"
      )
  return found


def divergence_warnings(summary: pd.DataFrame) -> list[str]:
  """A warning per optimizer group of which more than half the runs diverged."""
  found = []
  counts = summary.groupby("optimizer", sort=False)["diverged"].agg(["sum", "size"])
  for label, row in counts.iterrows():
    if row["sum"] > row["size"] / 2:
      found.append(
        f"{label}: {int(row['sum'])} of {int(row['size'])} runs diverged (more than "
        "half): narrow the search to where it trains (smaller learning rates)"
      )
  return found


def warnings(result: SweepResult, by: str | None = None) -> list[str]:
  """The report's warnings: :func:`boundary_warnings`, then :func:`divergence_warnings`."""
  return boundary_warnings(result, by) + divergence_warnings(result.summary)


# --------------------------------------------------------------------------- Markdown


def _format_value(value: Any) -> str:
  if value is None or value is pd.NA:
    return "—"
  if isinstance(value, (bool, np.bool_)):
    return "yes" if value else "no"
  if isinstance(value, (int, np.integer)):
    return str(value)
  if isinstance(value, (float, np.floating)):
    return "—" if math.isnan(value) else f"{value:.4g}"
  return str(value)


def markdown_table(header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> str:
  """A Markdown table of ``header`` and ``rows``, one line per row.

  Header cells are written as ``str`` gives them. Row cells: text and integers
  as they are, other numbers to four significant digits, booleans as
  ``yes``/``no``, and ``None``, ``pd.NA`` and NaN as a dash.

  Example:
    >>> print(markdown_table(["name", "loss", "diverged"], [["gd", 0.123456, False]]))
    | name | loss | diverged |
    |---|---|---|
    | gd | 0.1235 | no |
  """
  header = list(header)
  lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(_format_value(v) for v in row) + " |" for row in rows]
  return "\n".join(lines)


def _overview(result: SweepResult) -> list[str]:
  summary, manifest = result.summary, result.manifest
  problem = manifest.problem
  counts = summary["optimizer"].value_counts(sort=False).sort_index()
  lines = []
  if problem is not None:
    lines.append(f"- **problem**: {problem}")
  lines.append(
    "- **optimizers**: " + ", ".join(f"{name} ({count})" for name, count in counts.items())
  )
  lines.append(
    f"- **configurations**: K = {len(summary)}, seeds "
    + ", ".join(str(s) for s in sorted(summary["seed"].unique()))
  )
  search = manifest.config.get("search")
  if isinstance(search, dict):
    lines.append("- **search**: " + ", ".join(f"{k} {v}" for k, v in search.items()))
  if manifest.steps is not None:
    lines.append(f"- **steps**: {manifest.steps}")
  if manifest.devices:
    lines.append(f"- **devices**: {', '.join(map(str, manifest.devices))}")
  run_facts = [
    f"{name.removesuffix('_seconds')} {seconds:.3g} s"
    for name, seconds in sorted(manifest.timings.items())
  ]
  if manifest.compilations is not None:
    run_facts.append(f"{manifest.compilations} compilations")
  if manifest.chunk_size:  # one per optimizer group
    run_facts.append(
      "chunk sizes "
      + ", ".join(f"{name} {size}" for name, size in sorted(manifest.chunk_size.items()))
    )
  if run_facts:
    lines.append("- **timings**: " + ", ".join(run_facts))
  return lines


def _kept_models(manifest: Manifest) -> list[str]:
  """The report's section on the kept models (``keep:``), from the manifest; none without."""
  if manifest.models is None:
    return []
  if not manifest.models:
    return ["## Kept models", "None: no configuration finished without diverging."]
  metric = manifest.models[0]["metric"]
  ranks = len({entry["rank"] for entry in manifest.models})
  return [
    "## Kept models",
    f"{'The best configuration' if ranks == 1 else f'The {ranks} best configurations'} "
    f"by the mean of {metric} over seeds, every seed, "
    "under `models/` (rank 0 is the best; load one with "
    "`momentum_jax.results.load_model(DIR, rank=0, seed=None)`):",
    markdown_table(
      ["rank", "config_id", "seed", metric, f"{metric} mean", "folder"],
      [
        [e["rank"], e["config_id"], e["seed"], e["value"], e["mean"], f"`{e['path']}/`"]
        for e in manifest.models
      ],
    ),
  ]


def format_report(result: SweepResult, n: int = 5) -> str:
  """The tuning report of a sweep, as Markdown.

  It gives the problem, search and steps (where the manifest or its config
  names them), the optimizers with their number of runs, K and the seeds,
  devices, timings, compilations and chunk size; a table of the ``n`` best
  configurations by the mean over seeds (:func:`best_table`); the warnings
  (:func:`warnings`); a table of diverged runs per optimizer; and with
  ``keep:`` where the kept models are (from the manifest's ``models``).

  Args:
    result: The sweep result.
    n: How many of the best configurations to list, > 0.

  Returns:
    Markdown text ending in a newline.
  """
  summary = result.summary
  metric = results.ranking_metric(summary)
  table = best_table(summary, n=n, by=metric)
  rows = [[rank, *row] for rank, row in enumerate(table.itertuples(index=False), start=1)]
  direction = "higher" if results.higher_is_better(metric) else "lower"
  found = warnings(result, by=metric)
  diverged = summary.groupby("optimizer", sort=True)["diverged"].agg(["sum", "size"])
  divergence_rows = [[name, int(row["sum"]), int(row["size"])] for name, row in diverged.iterrows()]
  sections = [
    "# Sweep report",
    "\n".join(_overview(result)),
    f"## Best {len(table)} configurations (by the mean of {metric} over seeds, {direction} "
    "is better)",
    markdown_table(["rank", *table.columns], rows)
    if rows
    else "No configuration finished without diverging.",
    "## Warnings",
    "\n".join(f"- {w}" for w in found) if found else "None.",
    "## Diverged runs",
    markdown_table(["optimizer", "diverged", "runs"], divergence_rows),
    *_kept_models(result.manifest),
  ]
  return "\n\n".join(sections) + "\n"
