"""Each experiment runs at a tiny size (its --quick overlay) and writes sane outputs."""

from __future__ import annotations

import json

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from _cifar import write_fake_cifar
from experiments import _cli, regression_momentum


def test_regression_momentum_tiny(tmp_path):
  study = _cli.load("regression_momentum", regression_momentum.SCHEMA, quick=True)
  table = regression_momentum.run(study, str(tmp_path))
  assert len(table) == 2 * len(regression_momentum.OPTIMIZERS) * 2
  assert np.isfinite(table.final_loss).all()
  assert (table.final_loss >= table.optimum * (1 - 1e-4)).all()  # nothing beats least squares
  for name in ("results.csv", "summary.md", "loss_curves.png"):
    assert (tmp_path / name).stat().st_size > 0
  assert "| gd |" in (tmp_path / "summary.md").read_text()


def test_broadcast_bug_tiny(tmp_path):
  from experiments import broadcast_bug

  broadcast_bug.run(_cli.load("broadcast_bug", broadcast_bug.SCHEMA, quick=True), str(tmp_path))
  for name in ("broadcast_bug.csv", "summary.md"):
    assert (tmp_path / name).stat().st_size > 0
  bugs = pd.read_csv(tmp_path / "broadcast_bug.csv")
  assert set(bugs.optimizer) == {"gd", "momentum (heavy ball)"}
  assert "| gd |" in (tmp_path / "summary.md").read_text()


def test_landscapes_tiny(tmp_path):
  from experiments import landscapes

  study = _cli.load("landscapes", landscapes.SCHEMA, quick=True)
  table = landscapes.run(study, str(tmp_path))
  names = study.settings["landscapes"]
  assert set(table.landscape) == set(names)
  assert len(table) == len(names) * 6
  for name in ("results.csv", "summary.md", "trajectories.png"):
    assert (tmp_path / name).stat().st_size > 0
  # The double well's failure shows even at this size: GD stays in the shallow
  # well, heavy-ball momentum at beta 0.9 crosses to the global one.
  well = table[table.landscape == "tilted_double_well"].set_index("optimizer")
  assert well.filter(like="gd", axis=0).distance_to_global_minimum.iloc[0] > 1.0
  assert well.loc["momentum β=0.9"].distance_to_global_minimum < 0.1


def test_landscape_success_tiny(tmp_path):
  from experiments import landscape_success

  study = _cli.load("landscape_success", landscape_success.SCHEMA, quick=True)
  fractions = landscape_success.run(study, str(tmp_path))
  assert set(fractions) == set(study.settings["landscapes"])
  shape = (len(study.settings["betas"]), len(study.settings["learning_rate_factors"]))
  assert all(f.shape == shape and ((f >= 0) & (f <= 1)).all() for f in fractions.values())
  for name in ("summary.md", "success_fraction.png"):
    assert (tmp_path / name).stat().st_size > 0


def test_beta_quick(tmp_path):
  from experiments import beta

  tables = beta.run(_cli.load("beta", beta.SCHEMA, quick=True), str(tmp_path))
  summary = (tmp_path / "summary.md").read_text()
  assert "| 0.1 | 0.01 | 1.111 |" in summary  # beta 0.1: 1% two steps back
  assert "| 0.9 | 0.81 | 10 |" in summary
  assert set(tables) == {"regression", "digits"}
  regression = tables["regression"]
  assert set(regression.optimizer) == {"momentum(ema=false)", "momentum(ema=true)"}
  for name in (
    "past_gradient_weights.png",
    "regression_final_loss.png",
    "digits_steps_to_target.png",
    "regression/summary.csv",
  ):
    assert (tmp_path / name).stat().st_size > 0


def test_vanishing_gradients_tiny(tmp_path):
  from experiments import vanishing_gradients

  kept = ("sigmoid, naive init", "sigmoid, naive + BatchNorm")
  full = _cli.load("vanishing_gradients", vanishing_gradients.SCHEMA)
  dropped = {"study": {"runs": {name: None for name in full.runs if name not in kept}}}
  study = _cli.load(
    "vanishing_gradients", vanishing_gradients.SCHEMA, quick=True, overlays=[dropped]
  )
  assert list(study.runs) == list(kept)
  assert {c.train.steps for c in study.runs.values()} == {20}
  table = vanishing_gradients.run(study, str(tmp_path))
  ratios = table.set_index("variant").ratio_at_start_median
  assert ratios["sigmoid, naive init"] < 1e-6 < ratios["sigmoid, naive + BatchNorm"]
  for name in ("results.csv", "curves.csv", "summary.md", "gradient_ratio.png"):
    assert (tmp_path / name).stat().st_size > 0


def test_vanishing_gradients_clipping_variant_is_clipped_momentum():
  from experiments import vanishing_gradients

  study = _cli.load("vanishing_gradients", vanishing_gradients.SCHEMA)
  (clipped,) = study.runs["sigmoid, naive + clipping (norm 1)"].optimizers
  assert clipped.factory is vanishing_gradients.clipped_momentum
  assert {k: v.tolist() for k, v in clipped.grid.items()} == {
    "learning_rate": [0.05],
    "beta": [0.9],
    "max_norm": [1.0],
  }
  assert clipped.static == {"ema": False}


def test_schedules_quick(tmp_path):
  from experiments import schedules

  study = _cli.load("schedules", schedules.SCHEMA, quick=True, overrides=["study.runs.cnn=null"])
  tables = schedules.run(study, str(tmp_path))
  table = tables["digits"]
  assert list(table.optimizer) == [
    "momentum(ema=false)",
    "momentum(ema=false, schedule=cosine_annealing)",
  ]
  assert ((table.val_accuracy_mean > 0.1) & (table.val_accuracy_mean <= 1)).all()
  summary = (tmp_path / "summary.md").read_text()
  assert "| step decay (0.1, ×0.5 every 10) | 0.1 |" in summary
  for name in ("schedules.png", "accuracy_by_schedule.png", "digits/summary.csv"):
    assert (tmp_path / name).stat().st_size > 0


def test_batch_size_tiny(tmp_path):
  from experiments import batch_size

  table = batch_size.run(_cli.load("batch_size", batch_size.SCHEMA, quick=True), str(tmp_path))
  assert list(table.steps) == [2 * (1437 // 128), 2]
  assert (table.final_val_accuracy > 0.1).all()
  for name in ("results.csv", "curves.csv", "summary.md", "batch_size.png"):
    assert (tmp_path / name).stat().st_size > 0


def test_optimizers_images_tiny(tmp_path):
  from experiments import optimizers_images

  study = _cli.load("optimizers_images", optimizers_images.SCHEMA, quick=True)
  best = optimizers_images.run(study, str(tmp_path))
  assert sorted(best.optimizer) == ["adam", "sgd"]
  assert (best.val_accuracy_mean > 0.1).all()
  for name in ("curves.png", "best.csv", "summary.md", "sweep/summary.csv"):
    assert (tmp_path / name).stat().st_size > 0


def test_optimizers_images_on_cifar10_files(tmp_path, monkeypatch, capsys):
  from experiments import optimizers_images
  from momentum_jax import problems

  batch_size = _cli.load("optimizers_images", optimizers_images.SCHEMA).sweep.train.batch_size
  # Just enough rows for one batch of the config's size over the five files.
  rows = -(-batch_size // 5)
  folder = tmp_path / "cifar-10-batches-py"
  write_fake_cifar(folder, rows=rows)
  loaded = []
  get_problem = problems.get_problem

  def recording_get_problem(name, **options):
    loaded.append(get_problem(name, **options))
    return loaded[-1]

  monkeypatch.setattr(problems, "get_problem", recording_get_problem)
  # The command line, narrowed to one optimizer (4 learning rates), one seed and one step.
  out = tmp_path / "out"
  optimizers_images.main(
    [
      "--out",
      str(out),
      "--cifar",
      str(folder),
      "--quick",
      "--set",
      "train={steps: 1, log_every: 1}",
      "--set",
      "optimizers=[{name: sgd, learning_rate: {logspace: [0.01, 1.0, 4]}}]",
    ]
  )

  assert [p.name for p in loaded] == ["cifar10_cnn"]
  data = loaded[0].data
  assert data.x_train.shape == (5 * rows, 32, 32, 3) and data.x_val.shape == (rows, 32, 32, 3)
  manifest = json.loads((out / "sweep" / "manifest.json").read_text())
  assert manifest["problem"] == "cifar10_cnn"
  assert manifest["config"]["problem"] == {"name": "cifar10_cnn", "path": str(folder)}
  assert manifest["config"]["train"]["batch_size"] == batch_size
  for name in ("best.csv", "summary.md", "sweep/summary.csv", "sweep/curves.parquet"):
    assert (out / name).stat().st_size > 0
  assert matplotlib.image.imread(out / "curves.png").shape[2] in (3, 4)
  summary = pd.read_csv(out / "sweep" / "summary.csv")
  assert len(summary) == 4 and set(summary.optimizer) == {"sgd"}
  assert not summary.diverged.any()
  curves = pd.read_parquet(out / "sweep" / "curves.parquet")
  for table in (summary, curves):
    assert np.isfinite(table.filter(like="loss")).all().all()
    assert table.val_accuracy.between(0, 1).all()
  best = pd.read_csv(out / "best.csv")
  assert list(best.optimizer) == ["sgd"] and best.val_accuracy_mean.between(0, 1).all()
  assert np.isfinite(best.final_loss_mean).all()
  report = (out / "summary.md").read_text()
  assert report.startswith(f"cifar10_cnn, 1 steps, batch {batch_size}, 1 seeds\n")
  assert "| sgd lr=" in report
  assert report in capsys.readouterr().out


@pytest.mark.parametrize(
  "arguments, message",
  [
    (["--set", "study.seeds=0"], "study.seeds: expected an integer >= 1, got 0"),
    (
      [
        "--set",
        "study.setups=[{name: a, dataset: normall, learning_rate: 0.1, beta: 0.9, steps: 1}]",
      ],
      "study.setups[0].dataset: unknown name 'normall'; did you mean 'normal'?",
    ),
    (["--set", "study.seedz=2"], "study.seedz: unknown key; did you mean 'seeds'?"),
    (["--set", "seeds"], "--set: expected KEY.PATH=VALUE"),
  ],
)
def test_a_bad_study_exits_2_naming_the_path(tmp_path, capsys, arguments, message):
  with pytest.raises(SystemExit) as exited:
    regression_momentum.main(["--out", str(tmp_path), *arguments])
  assert exited.value.code == 2
  error = capsys.readouterr().err
  assert error.startswith("python -m experiments.regression_momentum: error: ")
  assert message in error and "Traceback" not in error
  assert not list(tmp_path.iterdir())  # nothing ran


def test_an_overlay_error_names_the_run_and_key(tmp_path, capsys):
  from experiments import schedules

  with pytest.raises(SystemExit) as exited:
    schedules.main(["--out", str(tmp_path), "--quick", "--set", "study.runs.digits.train.steps=-3"])
  assert exited.value.code == 2
  assert "error: study.runs.digits.train.steps: " in capsys.readouterr().err


def test_pbt_quick(tmp_path):
  from experiments import pbt

  table = pbt.run(_cli.load("pbt", pbt.SCHEMA, quick=True), str(tmp_path)).set_index("search")
  assert table.loc["pbt", "exploits"] >= 1  # a quarter of 4 members, after step 20 of 40
  assert table.loc["quasirandom", "exploits"] == 0
  assert table.loc["pbt", "config_steps"] == table.loc["quasirandom", "config_steps"] == 4 * 40
  assert ((table["best val_accuracy"] > 0) & (table["best val_accuracy"] <= 1)).all()
  for name in ("results.csv", "summary.md", "pbt.png"):
    assert (tmp_path / name).stat().st_size > 0
  assert "| 0 | pbt |" in (tmp_path / "summary.md").read_text()
