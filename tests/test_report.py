"""The tuning report: ranking over seeds, warnings, summary.md, the two search figures, a sampled sweep."""

import json
import logging

import numpy as np
import pandas as pd
import pytest

from momentum_jax import cli, report, results
from momentum_jax.report import _figures as _report_figures
from momentum_jax.report import plots
from momentum_jax.results import SweepResult


def _summary(rows, hyperparameters=("learning_rate", "beta")):
  """A summary of ``(optimizer, *hyperparameters, seed, final_loss, diverged)`` rows."""
  frame = pd.DataFrame(
    rows, columns=["optimizer", *hyperparameters, "seed", "final_loss", "diverged"]
  )
  frame.insert(0, "config_id", np.arange(len(frame)))
  frame["best_loss"] = frame["final_loss"]
  frame["diverged_at_step"] = pd.array(
    [3 if d else pd.NA for d in frame["diverged"]], dtype="Int64"
  )
  return frame


def _grid_rows(loss, lrs=(0.01, 0.1, 1.0), betas=(0.0, 0.5, 0.9), seeds=(0, 1)):
  return [
    ("momentum", lr, beta, seed, loss(lr, beta, seed), False)
    for lr in lrs
    for beta in betas
    for seed in seeds
  ]


def test_markdown_table_formats_each_kind_of_cell():
  table = report.markdown_table(
    ("name", 2, "x"),
    [
      ["gd", np.int64(12), 0.123456],
      [True, None, float("nan")],
      ["1 ± 0.5", pd.NA, np.float32(1e-7)],
    ],
  )
  assert table.splitlines() == [
    "| name | 2 | x |",
    "|---|---|---|",
    "| gd | 12 | 0.1235 |",
    "| yes | — | — |",
    "| 1 ± 0.5 | — | 1e-07 |",
  ]
  assert report.markdown_table(["a"], []) == "| a |\n|---|"


def test_configurations_rank_by_their_seed_mean_not_their_luckiest_seed():
  summary = _summary(
    [
      ("momentum", 0.1, 0.9, 0, 0.01, False),
      ("momentum", 0.1, 0.9, 1, 1.0, False),  # lucky
      ("momentum", 0.1, 0.5, 0, 0.2, False),
      ("momentum", 0.1, 0.5, 1, 0.2, False),
      ("momentum", 0.1, 0.0, 0, 0.05, False),
      ("momentum", 0.1, 0.0, 1, np.inf, True),
    ]
  )
  assert results.best_configs(summary, n=1)["beta"].tolist() == [0.9]  # a single run's pick
  ranked = report.best_configurations(summary)
  # The steady 0.5 first; 0.0 lost a seed: below every configuration that lost none.
  assert ranked["beta"].tolist() == [0.5, 0.9, 0.0]
  assert ranked["final_loss_mean"].tolist() == pytest.approx([0.2, 0.505, 0.05])
  assert ranked["final_loss_std"].iloc[1] == pytest.approx(np.std([0.01, 1.0], ddof=1))
  assert ranked["count"].tolist() == [2, 2, 1]
  table = report.best_table(summary, n=2)
  assert list(table.columns) == [
    "optimizer",
    "beta",
    "final_loss_mean",
    "final_loss_std",
    "count",
    "diverged",
    "best_loss_mean",
  ]


def test_boundary_warning_fires_at_a_grid_edge_and_not_inside():
  inside = _summary(_grid_rows(lambda lr, beta, seed: (np.log10(lr) + 1) ** 2 + (beta - 0.5) ** 2))
  assert report.boundary_warnings(SweepResult(inside, pd.DataFrame(), {})) == []
  edge = _summary(_grid_rows(lambda lr, beta, seed: (np.log10(lr) + 1) ** 2 + (beta - 0.9) ** 2))
  found = report.boundary_warnings(SweepResult(edge, pd.DataFrame(), {}))
  assert len(found) == 1
  assert "beta = 0.9" in found[0] and "upper boundary" in found[0] and "[0, 0.9]" in found[0]
  assert "learning_rate" not in found[0]


def _manifest(config):
  """The manifest's config, search and limits as a sweep of ``config`` records them."""
  from momentum_jax import sweep
  from momentum_jax.sweep._limits import optimizer_limits
  from momentum_jax.sweep._search import search_record

  loaded = sweep.load_config(config)
  return {"config": config, "search": search_record(loaded), "limits": optimizer_limits(loaded)}


def test_no_boundary_warning_where_the_optimizer_lets_the_value_go_no_further():
  # Heavy ball refuses beta < 0: a best beta of 0 is no range to widen; 0.9 is.
  def warned(best, manifest):
    summary = _summary(
      _grid_rows(lambda lr, beta, seed: (np.log10(lr) + 1) ** 2 + (beta - best) ** 2)
    )
    return report.boundary_warnings(SweepResult(summary, pd.DataFrame(), manifest))

  config = {
    "problem": {"name": "linear_regression"},
    "seeds": 2,
    "train": {"steps": 10},
    "optimizer": {"name": "momentum", "learning_rate": [0.01, 0.1, 1.0], "beta": [0.0, 0.5, 0.9]},
  }
  manifest = _manifest(config)
  assert manifest["limits"] == {"momentum": {"learning_rate": [None, None], "beta": [0.0, None]}}
  assert warned(0.0, manifest) == []
  (upper,) = warned(0.9, manifest)
  assert "beta = 0.9" in upper and "upper boundary" in upper
  # Without the manifest's limits (a table written by hand), the values alone decide.
  assert len(warned(0.0, {})) == 1
  (lower,) = warned(0.0, {"config": config})
  assert "beta = 0" in lower and "lower boundary" in lower
  # A range starting at beta = 0 can be widened at its top only, whatever the best value drawn.
  sampled = {
    **config,
    "search": {"method": "quasirandom", "samples": 4},
    "optimizer": {**config["optimizer"], "learning_rate": 0.1, "beta": {"uniform": [0.0, 0.9]}},
  }

  def drawn(best):
    rows = [
      ("momentum", 0.1, beta, 0, 0.0 if beta == best else 1.0, False)
      for beta in (best, 0.3, 0.5, 0.6)
    ]
    summary = _summary(rows)
    return report.boundary_warnings(SweepResult(summary, pd.DataFrame(), _manifest(sampled)))

  assert drawn(0.01) == []
  (top,) = drawn(0.89)
  assert "beta = 0.89" in top and "upper boundary" in top


def test_boundary_of_a_sampled_range_is_its_ends_in_its_own_scale():
  # The range as the manifest's config gives it: a loguniform [1e-4, 1]; sampled values.
  manifest = _manifest(
    {
      "problem": {"name": "linear_regression"},
      "train": {"steps": 10},
      "optimizer": {"name": "momentum", "learning_rate": {"loguniform": [1e-4, 1.0]}},
      "search": {"method": "quasirandom", "samples": 4},
    }
  )

  def warned(best_lr):
    lrs = (best_lr, 0.01, 0.02, 0.03)
    rows = [("momentum", lr, 0, 0.0 if lr == best_lr else 1.0 + lr, False) for lr in lrs]
    summary = _summary(rows, hyperparameters=("learning_rate",))
    return report.boundary_warnings(SweepResult(summary, pd.DataFrame(), manifest))

  # 0.7 is 96% of the way up in log scale (within 5% of the top), 0.4 is 90%.
  assert warned(0.4) == []
  (found,) = warned(0.7)
  assert "upper boundary of the searched loguniform range [0.0001, 1]" in found
  assert "learning_rate = 0.7" in found
  # The smallest value drawn is no boundary unless it is near the range's end.
  assert warned(0.005) == []
  assert "lower boundary" in warned(1.4e-4)[0]


def test_divergence_warning_fires_when_more_than_half_of_a_group_diverged():
  def result(diverged):
    rows = [
      ("sgd", lr, 0, 0, np.inf if d else lr, d) for lr, d in zip((0.1, 0.2, 0.3, 0.4), diverged)
    ]
    return SweepResult(_summary(rows, ("learning_rate", "beta")), pd.DataFrame(), {})

  assert report.divergence_warnings(result([True, True, False, False]).summary) == []
  (found,) = report.divergence_warnings(result([True, True, True, False]).summary)
  assert found.startswith("sgd: 3 of 4 runs diverged (more than half)")
  markdown = report.format_report(result([True, True, True, False]))
  assert "\n- sgd: 3 of 4 runs diverged" in markdown.split("## Warnings")[1]


def test_report_save_writes_the_result_and_its_report_as_summary_md(tmp_path):
  summary = _summary(_grid_rows(lambda lr, beta, seed: lr + beta + 0.01 * seed))
  curves = pd.DataFrame(
    {
      "config_id": summary["config_id"],
      "optimizer": "momentum",
      "step": 4,
      "train_loss": summary["final_loss"],
      "grad_norm": 1.0,
    }
  )
  result = SweepResult(summary, curves, {})
  result.save(tmp_path / "tables")  # the result alone: no report, no figures
  assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == [
    "curves.parquet",
    "manifest.json",
    "summary.csv",
  ]
  written = report.save(result, tmp_path, figures=False)
  assert written["report"] == tmp_path / "summary.md" and written["figures"] == []
  text = (tmp_path / "summary.md").read_text()
  assert text == report.format_report(results.load_results(tmp_path))
  assert "| 1 | momentum | 0.01 | 0 | 0.015 | 0.007071 | 2 | 0 | 0.015 |" in text
  assert "learning_rate = 0.01, on the lower boundary" in text


def test_the_command_leaves_quietly_when_its_reader_does(tmp_path):
  # ``momentum-jax report DIR | head -1``: the pipe closed before the report is printed.
  import os
  import subprocess
  import sys

  summary = _summary(_grid_rows(lambda lr, beta, seed: lr + beta))
  curves = pd.DataFrame(
    {
      "config_id": summary["config_id"],
      "optimizer": "momentum",
      "step": 4,
      "train_loss": summary["final_loss"],
      "grad_norm": 1.0,
    }
  )
  results.write_results(SweepResult(summary, curves, {}), tmp_path)
  read, write = os.pipe()
  os.close(read)
  done = subprocess.run(
    [sys.executable, "-m", "momentum_jax", "report", str(tmp_path)],
    stdout=write,
    stderr=subprocess.PIPE,
    text=True,
    timeout=120,
  )
  os.close(write)
  assert done.returncode == 1
  assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_search_figures_are_skipped_with_the_reason_when_degenerate(tmp_path, caplog):
  one = _summary([("sgd", lr, 0, 0, lr, False) for lr in (0.1, 0.2, 0.3)])
  plan = plots.plan_figures(SweepResult(one, pd.DataFrame(), {}))
  assert plan.report == ()
  reasons = " ".join(plan.skipped)
  assert "no parallel_coordinates.png or importance.png" in reasons
  # A full 3 x 3 grid: its heatmap shows every configuration.
  grid = _summary(_grid_rows(lambda lr, beta, seed: lr + beta))
  plan = plots.plan_figures(SweepResult(grid, pd.DataFrame(), {}))
  assert plan.report == () and "no parallel_coordinates.png or importance.png" in " ".join(
    plan.skipped
  )
  # The same nine configurations with one cell missing are no longer a grid's whole picture.
  plan = plots.plan_figures(SweepResult(grid.iloc[2:], pd.DataFrame(), {}))  # its 2 seeds
  assert plan.report == ("parallel_coordinates.png", "importance.png")
  # Sampled points (each its own learning rate and beta): importance from 8 of them on.
  sampled = _summary(
    [("momentum", 0.01 * (1 + i), 0.1 * i, 0, 0.01 * (i + 1), False) for i in range(7)]
  )
  plan = plots.plan_figures(SweepResult(sampled, pd.DataFrame(), {}))
  assert plan.report == ("parallel_coordinates.png",)
  assert "no importance.png" in " ".join(plan.skipped) and "got 7" in " ".join(plan.skipped)
  # Three swept hyperparameters on a full grid: more than a heatmap shows.
  three = _summary(
    [
      ("adam", lr, b1, b2, 0, lr * b1 * b2, False)
      for lr in (0.01, 0.1)
      for b1 in (0.5, 0.9)
      for b2 in (0.9, 0.99)
    ],
    hyperparameters=("learning_rate", "b1", "b2"),
  )
  plan = plots.plan_figures(SweepResult(three, pd.DataFrame(), {}))
  assert plan.report == ("parallel_coordinates.png", "importance.png")
  # write_figures logs the reasons it skips a figure for.
  curves = pd.DataFrame(
    {
      "config_id": one["config_id"],
      "optimizer": "sgd",
      "step": 4,
      "train_loss": one["final_loss"],
      "grad_norm": 1.0,
    }
  )
  with caplog.at_level(logging.INFO, logger="momentum_jax.report.plots"):
    plots.write_figures(SweepResult(one, curves, {}), tmp_path)
  assert "no parallel_coordinates.png or importance.png" in caplog.text


def test_importance_ranks_the_hyperparameter_that_matters_first():
  rng = np.random.default_rng(0)
  rows = [
    ("momentum", lr, beta, 0, 10 ** (2 * np.log10(lr)) * (1 + 0.01 * beta), False)
    for lr, beta in zip(10 ** rng.uniform(-3, 0, 24), rng.uniform(0, 0.9, 24))
  ]
  fig = _report_figures.plot_importance(_summary(rows), "final_loss")
  labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
  assert labels[-1] == "log10 learning_rate"  # bars sorted: the largest last, on top


QUASIRANDOM = {
  "problem": {"name": "linear_regression"},
  "optimizer": {
    "name": "momentum",
    "ema": False,
    "learning_rate": {"loguniform": [0.003, 0.3]},
    "beta": {"uniform": [0.0, 0.9]},
  },
  "search": {"method": "quasirandom", "samples": 8, "seed": 0},
  "train": {"steps": 8, "log_every": 4},
  "seeds": 2,
}


def test_a_quasirandom_sweep_runs_end_to_end_through_the_cli(tmp_path, capsys):
  from momentum_jax import sweep

  config_path = tmp_path / "search.yaml"
  config_path.write_text(json.dumps(QUASIRANDOM))
  out = tmp_path / "out"
  assert cli.main(["sweep", str(config_path), "--out", str(out), "--quiet"]) == 0
  printed = capsys.readouterr().out
  assert "16 configurations" in printed
  table = printed.split("best 5 configurations (mean, std and count over seeds):\n")[1]
  header = table.splitlines()[0].split()
  assert header[:3] == ["optimizer", "learning_rate", "beta"]
  assert {"final_loss_mean", "final_loss_std", "count"} <= set(header)
  assert "seed" not in header

  drawn = sweep.load_config(QUASIRANDOM).optimizers[0].samples
  summary = pd.read_csv(out / "summary.csv")
  assert len(summary) == 16 and summary["seed"].tolist() == [0, 1] * 8
  np.testing.assert_array_equal(summary["learning_rate"].to_numpy()[::2], drawn["learning_rate"])
  np.testing.assert_array_equal(summary["beta"].to_numpy()[::2], drawn["beta"])
  manifest = json.loads((out / "manifest.json").read_text())
  assert manifest["config"]["search"] == QUASIRANDOM["search"]
  assert "## Best 5 configurations (by the mean of final_loss" in (out / "summary.md").read_text()
  for name in ("parallel_coordinates.png", "importance.png"):
    assert (out / name).stat().st_size > 0
  assert cli.main(["report", str(out)]) == 0
  assert "| rank | optimizer | learning_rate | beta | final_loss_mean" in capsys.readouterr().out


def test_the_warnings_never_load_the_config(monkeypatch):
  # The report reads the manifest's ranges and limits: a config naming code
  # that is gone, or a loader that fails, changes nothing.
  from momentum_jax import sweep

  config = {
    "problem": {"name": "linear_regression"},
    "seeds": 2,
    "train": {"steps": 10},
    "optimizer": {"name": "momentum", "learning_rate": [0.01, 0.1, 1.0], "beta": [0.0, 0.5, 0.9]},
  }
  manifest = _manifest(config)
  manifest["config"] = {
    **config,
    "optimizer": {**config["optimizer"], "name": "no_such_package.module:make"},
  }
  monkeypatch.setattr(sweep, "load_config", lambda *a, **k: pytest.fail("the config was loaded"))
  summary = _summary(_grid_rows(lambda lr, beta, seed: (np.log10(lr) + 1) ** 2 + beta**2))
  assert report.boundary_warnings(SweepResult(summary, pd.DataFrame(), manifest)) == []
