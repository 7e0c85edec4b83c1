"""Each experiment runs at a tiny size and writes sane outputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import yaml

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
