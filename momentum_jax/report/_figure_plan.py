"""Which figures a sweep's result gets, and with what: decided once, then drawn.

:func:`plan_figures` asks :mod:`momentum_jax.results` each question once
(the ranking metric, the hyperparameters swept overall and per optimizer, the
best runs) and finds the landscape, if any, from the problem's record in the
manifest; :func:`momentum_jax.report.plots.write_figures` draws the plan.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping

import pandas as pd

from momentum_jax import results
from momentum_jax.report import _figures as _report_figures
from momentum_jax.data import Landscape, get_landscape
from momentum_jax.results import SweepResult

# Legends use the literature's short names.
SHORT_NAMES = {"learning_rate": "lr", "beta": "β", "b1": "β₁", "b2": "β₂"}
BEST_RUNS = 5  # best_curves.png and paths.png show this many


@dataclasses.dataclass(frozen=True)
class FigurePlan:
  """The figures of one sweep result, and what each shows.

  Attributes:
    value: The metric the figures show (:func:`momentum_jax.results.ranking_metric`).
    heatmaps: File name -> ``(optimizer, x, y)``, for each optimizer with a
      swept ``learning_rate`` and another swept hyperparameter: ``beta`` if
      swept, else the one with the most values.
    hyperparameters: The hyperparameters with more than one value, each a
      ``best_vs_<name>.png``.
    best: The best runs (at most :data:`BEST_RUNS`) that ``best_curves.png``
      and ``paths.png`` show; empty when every run diverged.
    labels: ``config_id`` -> legend label of each of ``best``.
    titles: File name -> title, for ``best_curves.png`` and ``paths.png``.
    report: ``parallel_coordinates.png`` and ``importance.png``, those worth
      drawing (:func:`momentum_jax.report._figures.plan`: not for a full 2-D
      grid, whose heatmap shows it all).
    landscape: The 2-D landscape the problem's record names (``paths.png``),
      or ``None``.
    skipped: Why each figure left out is left out.
  """

  value: str
  heatmaps: Mapping[str, tuple[str, str, str]]
  hyperparameters: tuple[str, ...]
  best: pd.DataFrame
  labels: Mapping[int, str]
  titles: Mapping[str, str]
  report: tuple[str, ...]
  landscape: Landscape | None
  skipped: tuple[str, ...]

  @property
  def files(self) -> list[str]:
    """The figures' file names, in the order they are drawn."""
    names = list(self.heatmaps)
    names += ["best_curves.png"] if "best_curves.png" in self.titles else []
    names += [f"best_vs_{file_stem(name)}.png" for name in self.hyperparameters]
    names += list(self.report)
    return names + (["paths.png"] if "paths.png" in self.titles else [])


def file_stem(name: str) -> str:
  """``name`` fit for a file name: runs of other characters than ``[A-Za-z0-9._-]`` become ``_``."""
  # Group labels such as "momentum(ema=false)" make awkward file names.
  return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")


def _groups(summary: pd.DataFrame) -> dict[str, pd.DataFrame]:
  return dict(tuple(summary.groupby("optimizer", sort=True)))


def _labelled(groups: Mapping[str, pd.DataFrame], swept: Mapping[str, list[str]]):
  """Per optimizer: the hyperparameters its legend labels show (those swept, else all)."""
  return {
    optimizer: tuple(swept[optimizer] or results.hyperparameter_columns(own))
    for optimizer, own in groups.items()
  }


def legend_labels(
  best: pd.DataFrame, summary: pd.DataFrame, shown: Mapping[str, tuple[str, ...]] | None = None
) -> dict[int, str]:
  """``config_id`` -> ``"momentum lr=0.01 β=0.9"``: its optimizer's hyperparameters (``shown``).

  ``shown`` defaults to each optimizer's swept hyperparameters (all if none is swept).
  """
  if shown is None:
    groups = _groups(summary)
    shown = _labelled(
      groups, {o: results.swept_hyperparameters(g, finals=False) for o, g in groups.items()}
    )
  seeds = summary["seed"].nunique() > 1
  labels = {}
  for _, row in best.iterrows():
    parts = [row["optimizer"]]
    parts += [
      f"{SHORT_NAMES.get(name, name)}={row[name]:.3g}"
      for name in shown[row["optimizer"]]
      if pd.notna(row[name])
    ]
    if seeds:
      parts.append(f"seed={row['seed']}")
    labels[row["config_id"]] = " ".join(parts)
  return labels


def best_title(best: pd.DataFrame, value: str) -> str:
  return f"the {len(best)} best runs by {value}"


def _heatmaps(groups: Mapping[str, pd.DataFrame], swept_by_optimizer, skipped: list[str]):
  heatmaps = {}
  for optimizer, own in groups.items():
    swept = swept_by_optimizer[optimizer]
    others = [name for name in swept if name != "learning_rate"]
    if "learning_rate" not in swept or not others:
      skipped.append(
        f"no heatmap for {optimizer}: it needs learning_rate and another "
        f"hyperparameter with more than one value, and sweeps {swept or 'none'}"
      )
      continue
    # max keeps the first of equals, so ties go to the summary's column order.
    y = "beta" if "beta" in others else max(others, key=lambda name: own[name].nunique())
    heatmaps[f"heatmap_{file_stem(optimizer)}.png"] = (optimizer, "learning_rate", y)
  return heatmaps


def _landscape(result: SweepResult, skipped: list[str]) -> Landscape | None:
  record = result.manifest.problem_record or {}
  if not record.get("landscape"):
    return None
  if "val_x" not in result.curves.columns:
    skipped.append("no paths.png: the curves have no val_x, val_y")
    return None
  return get_landscape(record["landscape"])


def plan_figures(result: SweepResult) -> FigurePlan:
  """The figures of a sweep result, and what each shows (see :class:`FigurePlan`).

  The landscape of ``paths.png`` is the one the manifest's problem record
  names (a landscape problem records it), not a guess from the problem's name.
  """
  summary = result.summary
  value = results.ranking_metric(summary)
  skipped: list[str] = []
  # Population-based training's final values are outcomes: no figure's axis.
  swept = tuple(results.swept_hyperparameters(summary, finals=False))
  groups = _groups(summary)
  swept_by_optimizer = {
    o: results.swept_hyperparameters(own, finals=False) for o, own in groups.items()
  }
  heatmaps = _heatmaps(groups, swept_by_optimizer, skipped)
  best = results.best_configs(summary, n=BEST_RUNS)
  landscape = _landscape(result, skipped)
  titles = {}
  if best.empty:
    skipped.append("no best_curves.png: every run diverged")
  else:
    titles["best_curves.png"] = best_title(best, value)
    if landscape is not None:
      titles["paths.png"] = f"{landscape.name}: {best_title(best, value)}"
  if not swept:
    skipped.append(
      "no best_vs_<hyperparameter> figures: no hyperparameter takes more than one value"
    )
  report, reasons = _report_figures.plan(
    summary, value, swept_by_optimizer, [optimizer for optimizer, _, _ in heatmaps.values()]
  )
  return FigurePlan(
    value=value,
    heatmaps=heatmaps,
    hyperparameters=swept,
    best=best,
    labels=legend_labels(best, summary, _labelled(groups, swept_by_optimizer)),
    titles=titles,
    report=tuple(report),
    landscape=landscape,
    skipped=tuple(skipped + reasons),
  )
