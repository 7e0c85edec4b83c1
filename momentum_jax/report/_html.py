"""``report.html``: the report as one interactive page (plotly), readable offline.

:func:`write_html` writes ``DIR/report.html`` beside ``summary.md``, from
the result alone, with plotly's JavaScript inlined (``include_plotlyjs=True``):
the page loads nothing from the network, so it opens from a laptop, a CI
artifact or a mail attachment alike. It shows, each section with its id:

- ``ranking``: every configuration ranked by the mean over its seeds, best
  first (:func:`momentum_jax.report.best_table`, the table of ``summary.md``);
- ``parallel-<n>``: per optimizer group that sweeps a hyperparameter, its
  configurations' parallel coordinates (log-spaced ones as ``log10``),
  coloured by the metric; diverged configurations left out;
- ``heatmap-<n>``: the heatmaps the PNG figures draw
  (:func:`momentum_jax.report._figure_plan.plan_figures`), the mean over
  seeds per cell, the best over any other hyperparameter;
- ``curves``: per configuration the metric's curve (``train_loss`` for
  ``final_loss``), the mean over its seeds at each logged step where finite,
  one trace per configuration in ranking order (hover names it).

Plotly is the ``dashboard`` extra's; :func:`momentum_jax.report.save` leaves
the page out, saying so, without it.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np
import pandas as pd

from momentum_jax import results
from momentum_jax.report._figure_plan import SHORT_NAMES, plan_figures
from momentum_jax.report._journal import curve_metric, mean_curve
from momentum_jax.report._markdown import _format_value, best_table
from momentum_jax.results import SweepResult
from momentum_jax.runtime.files import atomic_write_text

HTML_FILE = "report.html"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
.scroll { max-height: 28em; overflow: auto; }
"""


def _label(row: pd.Series, swept: list[str]) -> str:
  """``"momentum lr=0.01 β=0.9"``: the optimizer and its swept hyperparameters."""
  parts = [str(row["optimizer"])]
  parts += [
    f"{SHORT_NAMES.get(name, name)}={row[name]:.3g}" for name in swept if pd.notna(row[name])
  ]
  return " ".join(parts)


def _ranking(result: SweepResult, metric: str) -> str:
  """Every configuration, best first, as an HTML table (the values as ``summary.md`` writes them)."""
  table = best_table(result.summary, n=len(result.summary), by=metric)
  head = "".join(f"<th>{html.escape(str(name))}</th>" for name in table.columns)
  body = "".join(
    "<tr>" + "".join(f"<td>{html.escape(_format_value(value))}</td>" for value in row) + "</tr>"
    for row in table.itertuples(index=False)
  )
  return (
    f'<div class="scroll"><table id="ranking-table"><thead><tr>{head}</tr></thead>'
    f"<tbody>{body}</tbody></table></div>"
  )


def _spans_decades(values: np.ndarray) -> bool:
  finite = values[np.isfinite(values)]
  return bool(len(finite)) and finite.min() > 0 and finite.max() / finite.min() >= 100


def _parallel(pooled: pd.DataFrame, swept: list[str], metric: str):
  """One group's configurations in parallel coordinates, coloured by the metric."""
  import plotly.graph_objects as go

  healthy = pooled[pooled[f"{metric}_mean"].notna()]
  dimensions = []
  for name in [*swept, f"{metric}_mean"]:
    values = healthy[name].to_numpy(dtype="float64")
    log = _spans_decades(values) and name != f"{metric}_mean"
    dimensions.append(
      {"label": f"log10 {name}" if log else name, "values": np.log10(values) if log else values}
    )
  line = {
    "color": healthy[f"{metric}_mean"].to_numpy(dtype="float64"),
    "colorscale": "Viridis",
    "showscale": True,
    "reversescale": not results.higher_is_better(metric),
  }
  return go.Figure(go.Parcoords(line=line, dimensions=dimensions))


def _heatmap(summary: pd.DataFrame, optimizer: str, x: str, y: str, metric: str):
  """The mean over seeds per (x, y) cell, the best over the group's other hyperparameters."""
  import plotly.graph_objects as go
  from momentum_jax.report.plots import _best_per_setting

  best = _best_per_setting(summary[summary["optimizer"] == optimizer], [x, y], metric)
  grid = best.pivot(index=y, columns=x, values=metric)
  return go.Figure(
    go.Heatmap(
      z=grid.to_numpy(),
      x=[f"{v:.3g}" for v in grid.columns],
      y=[f"{v:.3g}" for v in grid.index],
      colorscale="Viridis",
      reversescale=not results.higher_is_better(metric),
      colorbar={"title": {"text": metric}},
      hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{metric}=%{{z:.6g}}<extra></extra>",
    ),
    layout={
      "title": {"text": f"{optimizer}: {metric}, mean over seeds"},
      "xaxis": {"title": {"text": x}, "type": "category"},
      "yaxis": {"title": {"text": y}, "type": "category"},
    },
  )


def _curves(result: SweepResult, ranked: pd.DataFrame, swept: dict[str, list[str]], metric: str):
  """Each configuration's curve of the metric, the mean over its seeds, in ranking order."""
  import plotly.graph_objects as go

  column = curve_metric(metric)
  summary = result.summary
  keys = results.setting_columns(summary)
  fig = go.Figure(
    layout={
      "xaxis": {"title": {"text": "step"}},
      "yaxis": {"title": {"text": column}},
      "hovermode": "closest",
      "title": {"text": f"{column}, mean over seeds, per configuration"},
    }
  )
  if column not in result.curves.columns:
    return fig
  # pandas merges NaN keys as equal: an optimizer's missing hyperparameters match.
  runs = summary.merge(ranked[keys].assign(rank=range(len(ranked))), on=keys)
  for position, row in ranked.iterrows():
    means = mean_curve(result.curves, runs[runs["rank"] == position], column)
    name = _label(row, swept[row["optimizer"]])
    fig.add_trace(
      go.Scatter(
        x=list(means),
        y=list(means.values()),
        mode="lines+markers",
        name=name,
        hovertemplate=f"{html.escape(name)}<br>step %{{x}}<br>{column}=%{{y:.6g}}<extra></extra>",
      )
    )
  finite = result.curves[column].astype("float64").to_numpy()
  if not results.higher_is_better(metric) and _spans_decades(finite):
    fig.update_yaxes(type="log")
  return fig


def _sections(result: SweepResult, metric: str) -> list[tuple[str, str, object]]:
  """``(id, heading, figure)`` of each plot, in page order."""
  summary = result.summary
  pooled = results.aggregate_over_seeds(summary)
  groups = list(dict.fromkeys(summary["optimizer"]))
  swept = {
    g: results.swept_hyperparameters(summary[summary["optimizer"] == g], finals=False)
    for g in groups
  }
  sections = []
  for index, group in enumerate(groups):
    if swept[group]:
      sections.append(
        (
          f"parallel-{index}",
          f"{group}: parallel coordinates",
          _parallel(pooled[pooled["optimizer"] == group], swept[group], metric),
        )
      )
  for index, (optimizer, x, y) in enumerate(plan_figures(result).heatmaps.values()):
    sections.append(
      (f"heatmap-{index}", f"{optimizer}: {x} × {y}", _heatmap(summary, optimizer, x, y, metric))
    )
  ranked = results.rank_configurations(summary, by=metric)
  sections.append(("curves", "Curves", _curves(result, ranked, swept, metric)))
  return sections


def render_html(result: SweepResult) -> str:
  """The page (see the module docstring)."""
  import plotly.io as pio

  metric = results.ranking_metric(result.summary)
  manifest = result.manifest
  count = len(results.aggregate_over_seeds(result.summary))
  title = f"{manifest.name or 'sweep'}: {manifest.problem or ''}"
  parts = [
    f"<h1>{html.escape(title)}</h1>",
    f'<p id="overview"><span id="configurations">{count}</span> configurations '
    f"({len(result.summary)} runs, seeds counted)"
    + (f", {manifest.steps} steps each" if manifest.steps else "")
    + f", ranked by the mean of {html.escape(metric)} over seeds.</p>",
    "<h2>Ranking</h2>",
    _ranking(result, metric),
  ]
  first = True
  for div_id, heading, figure in _sections(result, metric):
    figure.update_layout(height=480, margin={"t": 60})
    parts += [
      f"<h2>{html.escape(heading)}</h2>",
      pio.to_html(
        figure,
        full_html=False,
        include_plotlyjs=first,
        div_id=div_id,
        config={"displaylogo": False},
      ),
    ]
    first = False
  return (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
    f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
    + "\n".join(parts)
    + "\n</body></html>\n"
  )


def write_html(result: SweepResult, out_dir: str | os.PathLike) -> Path:
  """Writes ``out_dir/report.html`` (replaced atomically); returns its path.

  Raises:
    ImportError: Without plotly (the ``dashboard`` extra installs it).
  """
  return atomic_write_text(Path(out_dir) / HTML_FILE, render_html(result))
