"""Learning-rate schedules: their shapes, and what they buy on the digits.

Claim: schedules trade early speed for late precision: a large learning rate
early, a small one late, ends better than any constant one. Set-up: the four
schedules with the textbook parameters (step decay 0.1 halved every 10, cosine
0.1 → 0.001 over 50, polynomial 0.1 over 50 with power 2, exponential 0.1 at
0.95), drawn; then vmapped sweeps of schedule x optimizer x learning rate
(``configs/schedules.yaml``: its runs ``configs/schedules_digits.yaml`` and
``configs/schedules_cnn.yaml``), each (optimizer, schedule) one compiled
group. Measured: the final validation accuracy of each schedule at its best
learning rate, mean and spread over seeds.

    python -m experiments.schedules [--out DIR] [--quick] [--set study.runs.cnn=null]
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from experiments import _cli
from experiments._common import (
  markdown_table,
  panels,
  run_sweep,
  write_figure,
  write_summary,
  write_tables,
)
import momentum_jax as mj
from momentum_jax import study as st
from momentum_jax import sweep
from momentum_jax.results import aggregate_over_seeds

SCHEMA: dict[str, st.Setting] = {}  # the study is its runs
TEXTBOOK = {
  "step decay (0.1, ×0.5 every 10)": mj.step_decay(0.1, 0.5, 10),
  "cosine (0.1 → 0.001 over 50)": mj.cosine_annealing(0.1, 50, 0.001),
  "polynomial (0.1 over 50, power 2)": mj.polynomial_decay(0.1, 50, 2.0),
  "exponential (0.1, ×0.95 per step)": mj.exponential_decay(0.1, 0.95),
}


def schedule_figure() -> Figure:
  """The textbook schedules over their first 60 steps."""
  fig, (axis,) = panels(1, 7, 4.5)
  steps = jnp.arange(60)
  for label, schedule in TEXTBOOK.items():
    axis.plot(steps, jax.vmap(schedule)(steps), label=label)
  axis.set(xlabel="step (or epoch)", ylabel="learning rate", title="The textbook schedules")
  axis.legend(fontsize=8)
  return fig


def best_per_schedule(summary: pd.DataFrame) -> pd.DataFrame:
  """Per optimizer group: the learning rate with the best mean final accuracy, and its spread."""
  pooled = aggregate_over_seeds(summary)
  best = pooled.loc[pooled.groupby("optimizer").val_accuracy_mean.idxmax()]
  return best[
    ["optimizer", "learning_rate", "val_accuracy_mean", "val_accuracy_std", "seeds", "diverged"]
  ].reset_index(drop=True)


def accuracy_figure(tables: dict[str, pd.DataFrame]) -> Figure:
  """Per run, each group's best final validation accuracy, mean ± std over seeds."""
  fig, axes = panels(len(tables), 6.5, 4.8)
  for axis, (name, table) in zip(axes, tables.items()):
    positions = np.arange(len(table))
    axis.barh(positions, table.val_accuracy_mean, xerr=table.val_accuracy_std, color="tab:blue")
    axis.set_yticks(
      positions,
      [f"{o}  lr={lr:.3g}" for o, lr in zip(table.optimizer, table.learning_rate)],
      fontsize=7,
    )
    axis.set(
      xlim=(max(0.0, table.val_accuracy_mean.min() - 0.05), 1.0),
      xlabel="final validation accuracy (mean ± std over seeds)",
    )
    axis.set_title(f"{name}: each schedule at its best initial learning rate", fontsize=10)
  return fig


def run(study: st.Study, out_dir: str) -> dict[str, pd.DataFrame]:
  """The schedules' figure and first values, then each run's sweep and its best per group."""
  os.makedirs(out_dir, exist_ok=True)
  write_figure(schedule_figure(), out_dir, "schedules.png")
  lines = [
    "## The textbook schedules, first ten values",
    "",
    markdown_table(
      ["schedule", *range(10)],
      [
        [label, *(f"{float(v):.4g}" for v in jax.vmap(schedule)(jnp.arange(10)))]
        for label, schedule in TEXTBOOK.items()
      ],
    ),
  ]
  tables = {}
  for name, config in study.runs.items():
    tables[name] = table = best_per_schedule(run_sweep(config, os.path.join(out_dir, name)).summary)
    write_tables(out_dir, {f"{name}_best.csv": table})
    lines += [
      "",
      f"## {name} ({config.train.steps} steps, {len(config.seeds)} seeds)",
      "",
      markdown_table(
        ["optimizer (schedule)", "best initial lr", "final val accuracy, mean ± std"],
        [
          [
            r.optimizer,
            f"{r.learning_rate:.3g}",
            f"{r.val_accuracy_mean:.4f} ± {r.val_accuracy_std:.4f}",
          ]
          for r in table.itertuples()
        ],
      ),
    ]
  if tables:
    write_figure(accuracy_figure(tables), out_dir, "accuracy_by_schedule.png")
  write_summary(out_dir, lines)
  return tables


def main(argv: list[str] | None = None) -> None:
  sweep.use_cpu_cores()  # before JAX starts: the sweeps spread over the cores
  _cli.main(__doc__, "schedules", SCHEMA, run, argv)


if __name__ == "__main__":
  main()
