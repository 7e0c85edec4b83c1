"""Sweep figures: what each plot draws, and the PNG files write_figures leaves."""

from __future__ import annotations

import logging

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import LogNorm

import _sweep_fixture as fixture
from momentum_jax import results
from momentum_jax.report import plots
from momentum_jax.results import SweepResult


@pytest.fixture
def regression():
  return fixture.make_result(classification=False)


@pytest.fixture
def classification():
  return fixture.make_result(classification=True)


def _seed_mean(optimizer, learning_rate, second):
  healthy = [
    fixture.final_loss(optimizer, learning_rate, second, seed)
    for seed in fixture.SEEDS
    if (optimizer, learning_rate, second, seed) not in fixture.DIVERGED
  ]
  return np.mean(healthy) if healthy else np.nan


def _legend_texts(fig):
  return [
    text.get_text()
    for legend in [*fig.legends, *(ax.get_legend() for ax in fig.axes)]
    if legend is not None
    for text in legend.get_texts()
  ]


@pytest.mark.parametrize("optimizer", ["momentum", "rmsprop"])
def test_heatmap_cells_are_seed_means(regression, optimizer):
  second, values = fixture.SECOND[optimizer]
  fig = plots.plot_heatmap(regression.summary, "learning_rate", second, optimizer=optimizer)
  assert len(fig.axes) == 2  # the heatmap and its colourbar
  ax = fig.axes[0]
  (image,) = ax.images
  expected = np.array(
    [[_seed_mean(optimizer, lr, v) for lr in fixture.LEARNING_RATES] for v in values]
  )
  cells = image.get_array()
  np.testing.assert_allclose(cells.filled(np.nan), expected, rtol=1e-12)
  # Only the cell where every seed diverged is empty.
  assert cells.mask.sum() == np.isnan(expected).sum()
  assert isinstance(image.norm, LogNorm)
  assert ax.get_xlabel() == "learning_rate" and ax.get_ylabel() == second
  bottom, top = ax.get_ylim()
  assert bottom < top  # the y values rise upwards
  assert ax.get_title() == f"{optimizer}: final_loss, mean over seeds"
  assert [t.get_text() for t in ax.get_xticklabels()] == ["0.001", "0.01", "0.1"]
  assert [t.get_text() for t in ax.get_yticklabels()] == [f"{v:.3g}" for v in values]
  assert "log scale" in fig.axes[1].get_ylabel()


def test_heatmap_marks_diverged_cells(regression):
  momentum = plots.plot_heatmap(regression.summary, optimizer="momentum")
  hatches = [patch.get_hatch() for patch in momentum.axes[0].patches]
  # lr=0.1, β=0.9 lost one of its two seeds.
  assert hatches == ["//"]
  assert _legend_texts(momentum) == ["some seeds diverged (mean of the others)"]

  rmsprop = plots.plot_heatmap(regression.summary, y="decay", optimizer="rmsprop")
  (patch,) = rmsprop.axes[0].patches
  assert patch.get_hatch() == "xx"
  # The cell at column lr=0.1 (x index 2), row decay=0.99 (y index 1).
  assert patch.get_xy() == (1.5, 0.5)
  assert _legend_texts(rmsprop) == ["diverged (every seed)"]


def test_heatmap_leaves_settings_without_runs_blank(regression):
  summary = regression.summary
  missing = (summary["learning_rate"] == 0.001) & (summary["beta"] == 0.0)
  fig = plots.plot_heatmap(summary[~missing], optimizer="momentum")
  cells = fig.axes[0].images[0].get_array()
  assert cells.mask.tolist() == [[True, False, False], [False, False, False]]
  assert [p.get_hatch() for p in fig.axes[0].patches] == ["//"]  # the blank cell is unmarked
  assert _legend_texts(fig) == ["some seeds diverged (mean of the others)", "not run"]


def test_heatmap_of_accuracy_is_linear_and_takes_the_best_of_other_hyperparameters(classification):
  summary = classification.summary.copy()
  summary["b2"] = np.where(summary["seed"] == 0, 0.99, 0.999)
  fig = plots.plot_heatmap(summary, value="val_accuracy", optimizer="momentum")
  ax = fig.axes[0]
  assert not isinstance(ax.images[0].norm, LogNorm)
  assert ax.get_title() == "momentum: val_accuracy, mean over seeds\n(best over b2)"
  # With b2 tied to the seed, each cell is one run: the better of the two seeds.
  expected = [
    [
      max(
        fixture.val_accuracy(lr, beta, seed)
        for seed in fixture.SEEDS
        if ("momentum", lr, beta, seed) not in fixture.DIVERGED
      )
      for lr in fixture.LEARNING_RATES
    ]
    for beta in (0.0, 0.9)
  ]
  np.testing.assert_allclose(ax.images[0].get_array(), expected)


def test_heatmap_rejects_bad_arguments(regression):
  with pytest.raises(
    ValueError,
    match=r"optimizer must be one of \['momentum', 'rmsprop'\] "
    "when the summary holds several, got None",
  ):
    plots.plot_heatmap(regression.summary)
  with pytest.raises(ValueError, match="optimizer must be one of.*got 'adam'"):
    plots.plot_heatmap(regression.summary, optimizer="adam")
  with pytest.raises(ValueError, match="y must be a column of the summary"):
    plots.plot_heatmap(regression.summary, y="momentum", optimizer="momentum")
  with pytest.raises(ValueError, match=r"value must be one of the summary's metrics"):
    plots.plot_heatmap(regression.summary, value="val_accuracy", optimizer="momentum")
  with pytest.raises(ValueError, match="rmsprop has no run with both learning_rate and beta"):
    plots.plot_heatmap(regression.summary, optimizer="rmsprop")


def test_best_curves_show_the_best_runs(regression):
  fig = plots.plot_best_curves(regression.curves, regression.summary, n=3)
  (ax,) = fig.axes
  assert len(ax.lines) == 3
  assert ax.get_yscale() == "log"
  assert ax.get_xlabel() == "step" and ax.get_ylabel() == "train loss"
  assert ax.get_title() == "The 3 best runs by final_loss"
  assert _legend_texts(fig) == [
    "momentum lr=0.01 β=0 seed=0",
    "momentum lr=0.01 β=0 seed=1",
    "momentum lr=0.01 β=0.9 seed=0",
  ]
  np.testing.assert_array_equal(ax.lines[0].get_xdata(), fixture.STEPS)
  assert ax.lines[0].get_ydata()[-1] == pytest.approx(0.1)


def test_best_curves_label_only_what_varies(classification):
  one_seed = classification.summary[classification.summary["seed"] == 0]
  fig = plots.plot_best_curves(classification.curves, one_seed, n=2)
  assert _legend_texts(fig) == ["momentum lr=0.1 β=0", "momentum lr=0.1 β=0.9"]


def test_best_vs_learning_rate(regression):
  fig = plots.plot_best_vs_hyperparameter(regression.summary, "learning_rate")
  (ax,) = fig.axes
  assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
  assert ax.get_xlabel() == "learning_rate"
  assert ax.get_ylabel() == "best final_loss, mean over seeds"
  assert ax.get_title().startswith("Best final_loss at each learning_rate\n")
  lines = {line.get_label(): line for line in ax.lines if not line.get_label().startswith("_")}
  assert sorted(lines) == ["momentum", "rmsprop"]
  for optimizer, line in lines.items():
    _, values = fixture.SECOND[optimizer]
    expected = [
      np.nanmin([_seed_mean(optimizer, lr, v) for v in values]) for lr in fixture.LEARNING_RATES
    ]
    np.testing.assert_array_equal(line.get_xdata(), fixture.LEARNING_RATES)
    np.testing.assert_allclose(line.get_ydata(), expected)
  assert _legend_texts(fig) == ["momentum", "rmsprop"]


def test_best_vs_hyperparameter_marks_values_where_everything_diverged(regression):
  summary = regression.summary.copy()
  summary.loc[summary["learning_rate"] == 0.1, "diverged"] = True
  fig = plots.plot_best_vs_hyperparameter(summary, "beta")
  (ax,) = fig.axes
  assert ax.get_xscale() == "linear"  # β = 0 cannot sit on a log axis
  (momentum,) = [line for line in ax.lines if line.get_label() == "momentum"]
  np.testing.assert_array_equal(momentum.get_xdata(), [0.0, 0.9])
  summary.loc[summary["beta"] == 0.9, "diverged"] = True
  fig = plots.plot_best_vs_hyperparameter(summary, "beta")
  marks = [line for line in fig.axes[0].lines if line.get_marker() == "x"]
  assert [list(mark.get_xdata()) for mark in marks] == [[0.9]]
  assert _legend_texts(fig) == ["momentum", "every run diverged"]


def test_write_figures_from_a_result_folder(tmp_path, regression):
  results.write_results(regression, tmp_path)
  paths = plots.write_figures(tmp_path)
  assert sorted(path.name for path in paths) == [
    "best_curves.png",
    "best_vs_beta.png",
    "best_vs_decay.png",
    "best_vs_learning_rate.png",
    "heatmap_momentum.png",
    "heatmap_rmsprop.png",
  ]
  for path in paths:
    assert path.parent == tmp_path
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) > 300
  assert not list(tmp_path.glob(".*.tmp"))


def test_write_figures_skips_degenerate_plots_and_says_why(tmp_path, regression, caplog):
  keep = (regression.summary["learning_rate"] == 0.01) & (regression.summary["seed"] == 0)
  summary = regression.summary[keep]
  result = SweepResult(summary, regression.curves, regression.manifest)
  with caplog.at_level(logging.INFO, logger="momentum_jax.report.plots"):
    paths = plots.write_figures(result, tmp_path / "figures")
  assert sorted(path.name for path in paths) == [
    "best_curves.png",
    "best_vs_beta.png",
    "best_vs_decay.png",
  ]
  assert "no heatmap for momentum" in caplog.text and "no heatmap for rmsprop" in caplog.text

  # Only the learning rate swept: no second axis for a heatmap.
  summary = regression.summary
  only_lr = summary[(summary["beta"] == 0.0) | (summary["decay"] == 0.9)]
  caplog.clear()
  with caplog.at_level(logging.INFO, logger="momentum_jax.report.plots"):
    paths = plots.write_figures(SweepResult(only_lr, regression.curves, {}), tmp_path / "lr")
  assert sorted(path.name for path in paths) == ["best_curves.png", "best_vs_learning_rate.png"]
  assert "no heatmap for momentum" in caplog.text

  everything_lost = summary.assign(diverged=True)
  with caplog.at_level(logging.INFO, logger="momentum_jax.report.plots"):
    paths = plots.write_figures(
      SweepResult(everything_lost.head(1), regression.curves, {}), tmp_path / "lost"
    )
  assert paths == []
  assert "no best_curves.png: every run diverged" in caplog.text
  assert "no hyperparameter takes more than one value" in caplog.text


def test_write_figures_heatmap_uses_the_most_swept_hyperparameter(
  tmp_path, monkeypatch, regression
):
  rmsprop = regression.summary[regression.summary["optimizer"] == "rmsprop"].copy()
  rmsprop["b2"] = np.resize([0.9, 0.99, 0.999], len(rmsprop))  # 3 values against decay's 2
  rmsprop["optimizer"] = "rmsprop(centered=true)"  # the engine labels groups by static options
  axes = []
  heatmap = plots.plot_heatmap

  def recording_heatmap(summary, x, y, *args):
    axes.append((x, y))
    return heatmap(summary, x, y, *args)

  monkeypatch.setattr(plots, "plot_heatmap", recording_heatmap)
  paths = plots.write_figures(SweepResult(rmsprop, regression.curves, {}), tmp_path)
  assert axes == [("learning_rate", "b2")]
  assert paths[0].name == "heatmap_rmsprop_centered_true.png"


def test_write_figures_needs_a_folder_for_a_result(regression):
  with pytest.raises(ValueError, match="out_dir is required"):
    plots.write_figures(regression)


def _expected_files(result):
  """The figures a result should get, derived from its tables as write_figures documents them."""
  summary = result.summary
  files = []
  for optimizer, own in summary.groupby("optimizer"):
    swept = results.swept_hyperparameters(own)
    if "learning_rate" in swept and len(swept) > 1:
      files.append(f"heatmap_{optimizer}.png")
  files.append("best_curves.png")
  files += [f"best_vs_{name}.png" for name in results.swept_hyperparameters(summary)]
  return files


def test_plan_of_a_grid_sweep(regression):
  plan = plots.plan_figures(regression)
  summary = regression.summary
  assert plan.value == results.ranking_metric(summary)
  assert plan.files[: len(_expected_files(regression))] == _expected_files(regression)
  # Two full 2-D grids: their heatmaps show every configuration, so no search figures.
  assert plan.files == _expected_files(regression) and plan.report == ()
  assert any(
    "heatmaps and best_vs_<hyperparameter> figures show every configuration" in reason
    for reason in plan.skipped
  )
  assert {name: axes[2] for name, axes in plan.heatmaps.items()} == {
    f"heatmap_{optimizer}.png": second for optimizer, (second, _) in fixture.SECOND.items()
  }
  pd.testing.assert_frame_equal(plan.best, results.best_configs(summary, n=5))
  assert list(plan.labels) == list(plan.best["config_id"])
  assert plan.landscape is None and "paths.png" not in plan.files
  assert plan.titles["best_curves.png"] == f"the {len(plan.best)} best runs by {plan.value}"


def test_plan_of_a_landscape_sweep_finds_the_landscape_in_the_problem_record(regression):
  from momentum_jax.data import get_landscape

  curves = regression.curves.assign(val_x=0.5, val_y=-0.5)
  manifest = {
    **regression.manifest,
    "problem": "my_problem",
    "problem_record": {"name": "my_problem", "landscape": "saddle"},
  }
  plan = plots.plan_figures(SweepResult(regression.summary, curves, manifest))
  assert plan.landscape is get_landscape("saddle")
  assert plan.files[-1] == "paths.png"
  assert plan.titles["paths.png"] == f"saddle: the {len(plan.best)} best runs by {plan.value}"
  # A problem merely named like a landscape, whose record names none, gets no paths.
  named = {**regression.manifest, "problem": "saddle", "problem_record": {"name": "saddle"}}
  assert plots.plan_figures(SweepResult(regression.summary, curves, named)).landscape is None
  no_path = SweepResult(regression.summary, regression.curves, manifest)
  plan = plots.plan_figures(no_path)
  assert "paths.png" not in plan.files and "no paths.png: the curves have no val_x" in " ".join(
    plan.skipped
  )


def test_plan_of_a_quasirandom_sweep(regression):
  # Sampled points: every configuration has its own learning rate and beta.
  summary = regression.summary[regression.summary["optimizer"] == "momentum"].copy()
  count = len(summary)
  summary["learning_rate"] = np.geomspace(1e-3, 1e-1, count)
  summary["beta"] = np.linspace(0.0, 0.95, count)
  summary = summary.drop(columns=["decay"])
  result = SweepResult(summary.reset_index(drop=True), regression.curves, {})
  plan = plots.plan_figures(result)
  assert plan.files[: len(_expected_files(result))] == _expected_files(result)
  assert plan.heatmaps == {"heatmap_momentum.png": ("momentum", "learning_rate", "beta")}
  assert plan.hyperparameters == ("learning_rate", "beta")
  finished = (~summary["diverged"]).sum()
  assert ("importance.png" in plan.report) == (finished >= 8)
  assert "parallel_coordinates.png" in plan.report
  assert all(label.startswith("momentum lr=") for label in plan.labels.values())


def test_write_figures_draws_the_plan(tmp_path, regression):
  plan = plots.plan_figures(regression)
  with pytest.raises(ValueError, match="none of the plan's figures"):
    plots.draw(plan, "paths.png", regression)
  fig = plots.draw(plan, "best_curves.png", regression)
  assert [line.get_label() for line in fig.axes[0].lines] == list(plan.labels.values())


def test_draw_landscape_draws_the_contours_the_minima_and_the_window():
  from matplotlib.figure import Figure
  from momentum_jax.data import get_landscape

  landscape = get_landscape("tilted_double_well")
  ax = Figure().add_subplot()
  plots.draw_landscape(ax, landscape)
  ax.plot([100.0], [100.0])  # what is drawn later does not move the window
  (x0, x1), (y0, y1) = landscape.window
  assert ax.get_xlim() == (x0, x1) and ax.get_ylim() == (y0, y1)
  assert (ax.get_xlabel(), ax.get_ylabel()) == ("x", "y")
  labels = [collection.get_label() for collection in ax.collections]
  assert "global minimum" in labels and "local minimum" in labels


def test_draw_paths_draws_each_path_over_the_landscape_with_a_legend():
  from matplotlib.figure import Figure
  from momentum_jax.data import get_landscape

  landscape = get_landscape("saddle")
  paths = {
    "gd": np.array([[1.0, 0.1], [0.9, 0.2], [0.8, 0.4]]),
    "momentum": np.array([[1.0, 0.1], [0.5, 0.9]]),
  }
  ax = Figure().add_subplot()
  plots.draw_paths(ax, landscape, paths)
  assert [line.get_label() for line in ax.lines] == ["gd", "momentum"]
  for line, path in zip(ax.lines, paths.values()):
    np.testing.assert_array_equal(np.asarray(line.get_xydata()), path)
    assert line.get_marker() == "."
  (x0, x1), _ = landscape.window
  assert ax.get_xlim() == (x0, x1)  # the landscape's window, with its minima
  assert "global minimum" in [collection.get_label() for collection in ax.collections]
  legend = [text.get_text() for text in ax.get_legend().get_texts()]
  assert {"gd", "momentum", "global minimum"} <= set(legend)
