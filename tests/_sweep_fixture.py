"""A small hand-built SweepResult shared by the results and plots tests.

Two optimizers × three learning rates × two values of a second hyperparameter ×
two seeds = 24 runs, with losses from a closed formula so that tests can state
the expected numbers by hand:

  final_loss = 0.1 + (log10(lr) + 2)² + second + 0.01·seed + (0.5 for rmsprop)

``second`` is ``beta`` for momentum and ``decay`` for rmsprop. Three runs
diverge: momentum lr=0.1 β=0.9 seed 1 (one seed of a cell) and rmsprop lr=0.1
decay=0.99, both seeds (a whole cell).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from momentum_jax.results import SweepResult

LEARNING_RATES = (0.001, 0.01, 0.1)
SECOND = {"momentum": ("beta", (0.0, 0.9)), "rmsprop": ("decay", (0.9, 0.99))}
SEEDS = (0, 1)
STEPS = np.arange(0, 60, 10)
DIVERGED = {("momentum", 0.1, 0.9, 1), ("rmsprop", 0.1, 0.99, 0), ("rmsprop", 0.1, 0.99, 1)}
DIVERGED_AT_STEP = 30


def final_loss(optimizer: str, learning_rate: float, second: float, seed: int) -> float:
  return (
    0.1
    + (math.log10(learning_rate) + 2) ** 2
    + second
    + 0.01 * seed
    + (0.5 if optimizer == "rmsprop" else 0.0)
  )


def val_accuracy(learning_rate: float, second: float, seed: int) -> float:
  # Ranks differently from final_loss: best at lr=0.1, not 0.01.
  return 0.9 - 0.1 * abs(math.log10(learning_rate) + 1) - 0.05 * second + 0.001 * seed


def _curve(optimizer, learning_rate, second, seed) -> np.ndarray:
  if (optimizer, learning_rate, second, seed) in DIVERGED:
    # Falls below every healthy loss at step 0, then blows up.
    return np.where(STEPS < DIVERGED_AT_STEP, 0.01 * 100.0 ** (STEPS / 10), np.inf)
  final = final_loss(optimizer, learning_rate, second, seed)
  return final + 3.0 * (1 - STEPS / STEPS[-1]) ** 2


def make_result(classification: bool = False) -> SweepResult:
  """The 24-run sweep; ``classification`` adds ``val_loss`` and ``val_accuracy``."""
  summary_rows, curve_rows = [], []
  runs = [
    (optimizer, lr, second, seed)
    for optimizer, (_, values) in SECOND.items()
    for lr, second, seed in itertools.product(LEARNING_RATES, values, SEEDS)
  ]
  for config_id, (optimizer, lr, second, seed) in enumerate(runs):
    name = SECOND[optimizer][0]
    curve = _curve(optimizer, lr, second, seed)
    diverged = (optimizer, lr, second, seed) in DIVERGED
    row = {
      "config_id": config_id,
      "optimizer": optimizer,
      "learning_rate": lr,
      "beta": np.nan,
      "decay": np.nan,
      "seed": seed,
      "final_loss": curve[-1],
      "best_loss": curve.min(),
    }
    row[name] = second
    if classification:
      row["val_loss"] = np.nan if diverged else 1.1 * curve[-1]
      row["val_accuracy"] = np.nan if diverged else val_accuracy(lr, second, seed)
    row["diverged"] = diverged
    row["diverged_at_step"] = DIVERGED_AT_STEP if diverged else pd.NA
    summary_rows.append(row)
    for step, loss in zip(STEPS, curve):
      curve_rows.append(
        {
          "config_id": config_id,
          "optimizer": optimizer,
          "step": int(step),
          "train_loss": loss,
          "grad_norm": 2 * loss,
        }
      )
  summary = pd.DataFrame(summary_rows)
  summary["diverged_at_step"] = summary["diverged_at_step"].astype("Int64")
  problem = "digits_mlp" if classification else "linear_regression"
  manifest = {  # as a sweep writes it (momentum_jax.results.Manifest), in part
    "config": {"problem": {"name": problem}, "train": {"steps": 50, "log_every": 10}},
    "problem": problem,
    "steps": 50,
    "versions": {"jax": "0.7.0", "momentum_jax": "0.1.0"},
    "devices": ["cpu:0"],
    "timings": {"compile_seconds": 1.5, "run_seconds": 12.25},
    "compilations": 2,
    "chunk_size": {"momentum": 12, "rmsprop": 12},
  }
  return SweepResult(summary, pd.DataFrame(curve_rows), manifest)
