"""Each experiment runs at a tiny size and writes sane outputs."""

from __future__ import annotations

import functools
import json

import matplotlib.image
import numpy as np
import pandas as pd
import yaml

from _cifar import write_fake_cifar
from experiments import regression_momentum


def test_regression_momentum_tiny(tmp_path):
  with open(regression_momentum.CONFIG, encoding="utf-8") as file:
    config = yaml.safe_load(file)
  table = regression_momentum.run(config, str(tmp_path), seeds=2, steps_scale=0.1)
  assert len(table) == 2 * len(regression_momentum.OPTIMIZERS) * 2
  assert np.isfinite(table.final_loss).all()
  assert (table.final_loss >= table.optimum * (1 - 1e-4)).all()  # nothing beats least squares
  for name in ("results.csv", "broadcast_bug.csv", "summary.md", "loss_curves.png"):
    assert (tmp_path / name).stat().st_size > 0
  bugs = pd.read_csv(tmp_path / "broadcast_bug.csv")
  assert set(bugs.optimizer) == {"gd", "momentum (heavy ball)"}
  assert "| gd |" in (tmp_path / "summary.md").read_text()


def test_landscapes_tiny(tmp_path):
  from experiments import landscapes
  with open(landscapes.CONFIG, encoding="utf-8") as file:
    config = yaml.safe_load(file)
  config["sweep"].update(betas=[0.0, 0.9], learning_rate_factors=[1.0], starts_per_side=2)
  table = landscapes.run(config, str(tmp_path), steps_scale=0.2)
  assert set(table.landscape) == set(config["landscapes"])
  assert len(table) == len(config["landscapes"]) * 6
  for name in ("results.csv", "summary.md", "trajectories.png", "success_fraction.png"):
    assert (tmp_path / name).stat().st_size > 0
  # The double well's failure shows even at this size: GD stays in the shallow
  # well, heavy-ball momentum at beta 0.9 crosses to the global one.
  well = table[table.landscape == "tilted_double_well"].set_index("optimizer")
  assert well.filter(like="gd", axis=0).distance_to_global_minimum.iloc[0] > 1.0
  assert well.loc["momentum β=0.9"].distance_to_global_minimum < 0.1


def test_beta_quick(tmp_path):
  from experiments import beta
  tables = beta.run(str(tmp_path), quick=True)
  summary = (tmp_path / "summary.md").read_text()
  assert "| 0.1 | 0.01 | 1.111 |" in summary  # beta 0.1: 1% two steps back
  assert "| 0.9 | 0.81 | 10 |" in summary
  assert set(tables) == {"regression", "digits"}
  regression = tables["regression"]
  assert set(regression.optimizer) == {"momentum(ema=false)", "momentum(ema=true)"}
  for name in ("past_gradient_weights.png", "regression_final_loss.png",
               "digits_steps_to_target.png", "regression/summary.csv"):
    assert (tmp_path / name).stat().st_size > 0


def test_vanishing_gradients_tiny(tmp_path):
  from experiments import vanishing_gradients
  with open(vanishing_gradients.CONFIG, encoding="utf-8") as file:
    config = yaml.safe_load(file)
  config["variants"] = {k: v for k, v in config["variants"].items()
                        if k in ("sigmoid, naive init", "sigmoid, naive + BatchNorm")}
  table = vanishing_gradients.run(config, str(tmp_path), steps_scale=0.05, seeds=1)
  ratios = table.set_index("variant").ratio_at_start_median
  assert ratios["sigmoid, naive init"] < 1e-6 < ratios["sigmoid, naive + BatchNorm"]
  for name in ("results.csv", "curves.csv", "summary.md", "gradient_ratio.png"):
    assert (tmp_path / name).stat().st_size > 0


def test_schedules_quick(tmp_path):
  from experiments import schedules
  tables = schedules.run(str(tmp_path), quick=True, skip_cnn=True)
  table = tables["digits"]
  assert list(table.optimizer) == ["momentum(ema=false)",
                                   "momentum(ema=false, schedule=cosine_annealing)"]
  assert ((table.val_accuracy_mean > 0.1) & (table.val_accuracy_mean <= 1)).all()
  summary = (tmp_path / "summary.md").read_text()
  assert "| step decay (0.1, ×0.5 every 10) | 0.1 |" in summary
  for name in ("schedules.png", "accuracy_by_schedule.png", "digits/summary.csv"):
    assert (tmp_path / name).stat().st_size > 0


def test_batch_size_tiny(tmp_path):
  from experiments import batch_size
  with open(batch_size.CONFIG, encoding="utf-8") as file:
    config = yaml.safe_load(file)
  config["runs"] = [r for r in config["runs"] if r["batch_size"] in (128, "full")]
  table = batch_size.run(config, str(tmp_path), epochs=2, seeds=1)
  assert list(table.steps) == [2 * (1437 // 128), 2]
  assert (table.final_val_accuracy > 0.1).all()
  for name in ("results.csv", "curves.csv", "summary.md", "batch_size.png"):
    assert (tmp_path / name).stat().st_size > 0


def test_optimizers_images_tiny(tmp_path):
  from experiments import optimizers_images
  best = optimizers_images.run(str(tmp_path), steps=10, seeds=1, optimizers=["sgd", "adam"])
  assert sorted(best.optimizer) == ["adam", "sgd"]
  assert (best.val_accuracy_mean > 0.1).all()
  for name in ("curves.png", "best.csv", "summary.md", "sweep/summary.csv"):
    assert (tmp_path / name).stat().st_size > 0


def test_optimizers_images_on_cifar10_files(tmp_path, monkeypatch, capsys):
  from experiments import optimizers_images
  from momentum_jax import problems
  with open(optimizers_images.CONFIG, encoding="utf-8") as file:
    batch_size = yaml.safe_load(file)["train"]["batch_size"]
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
  # The command line, narrowed to one optimizer (4 learning rates) and one seed.
  monkeypatch.setattr(optimizers_images, "run", functools.partial(
      optimizers_images.run, seeds=1, optimizers=["sgd"]))
  out = tmp_path / "out"
  optimizers_images.main(["--out", str(out), "--cifar", str(folder), "--steps", "1"])

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
