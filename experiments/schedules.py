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

from experiments import _cli
import momentum_jax as mj
from momentum_jax import study as st
from momentum_jax import sweep
from momentum_jax.plots import save_figure
from momentum_jax._files import atomic_path, atomic_write_text
from momentum_jax.results import aggregate_over_seeds

SCHEMA: dict[str, st.Setting] = {}  # the study is its runs
TEXTBOOK = {
    "step decay (0.1, ×0.5 every 10)": mj.step_decay(0.1, 0.5, 10),
    "cosine (0.1 → 0.001 over 50)": mj.cosine_annealing(0.1, 50, 0.001),
    "polynomial (0.1 over 50, power 2)": mj.polynomial_decay(0.1, 50, 2.0),
    "exponential (0.1, ×0.95 per step)": mj.exponential_decay(0.1, 0.95),
}


def schedule_figure():
  from matplotlib.figure import Figure

  fig = Figure(figsize=(7, 4.5), layout="constrained")
  axis = fig.subplots()
  steps = jnp.arange(60)
  for label, schedule in TEXTBOOK.items():
    axis.plot(steps, jax.vmap(schedule)(steps), label=label)
  axis.set_xlabel("step (or epoch)")
  axis.set_ylabel("learning rate")
  axis.set_title("The textbook schedules")
  axis.legend(fontsize=8)
  return fig


def best_per_schedule(summary: pd.DataFrame) -> pd.DataFrame:
  """Per optimizer group: the learning rate with the best mean final accuracy, and its spread."""
  pooled = aggregate_over_seeds(summary)
  best = pooled.loc[pooled.groupby("optimizer").val_accuracy_mean.idxmax()]
  return best[["optimizer", "learning_rate", "val_accuracy_mean", "val_accuracy_std",
               "seeds", "diverged"]].reset_index(drop=True)


def accuracy_figure(tables: dict[str, pd.DataFrame]):
  from matplotlib.figure import Figure

  fig = Figure(figsize=(6.5 * len(tables), 4.8), layout="constrained")
  for axis, (name, table) in zip(fig.subplots(1, len(tables), squeeze=False)[0], tables.items()):
    positions = np.arange(len(table))
    axis.barh(positions, table.val_accuracy_mean, xerr=table.val_accuracy_std, color="tab:blue")
    axis.set_yticks(positions, [f"{o}  lr={lr:.3g}" for o, lr in
                                zip(table.optimizer, table.learning_rate)], fontsize=7)
    low = max(0.0, table.val_accuracy_mean.min() - 0.05)
    axis.set_xlim(low, 1.0)
    axis.set_xlabel("final validation accuracy (mean ± std over seeds)")
    axis.set_title(f"{name}: each schedule at its best initial learning rate", fontsize=10)
  return fig


def run(study: st.Study, out_dir: str) -> dict[str, pd.DataFrame]:
  """The schedules' figure and first values, then each run's sweep and its best per group."""
  os.makedirs(out_dir, exist_ok=True)
  save_figure(schedule_figure(), os.path.join(out_dir, "schedules.png"))
  lines = ["## The textbook schedules, first ten values", "",
           "| schedule | " + " | ".join(str(s) for s in range(10)) + " |",
           "|---|" + "---|" * 10]
  for label, schedule in TEXTBOOK.items():
    values = jax.vmap(schedule)(jnp.arange(10))
    lines.append(f"| {label} | " + " | ".join(f"{float(v):.4g}" for v in values) + " |")
  tables = {}
  for name, config in study.runs.items():
    # overwrite: an experiment resumes its own sweep and replaces an earlier size's.
    folder = os.path.join(out_dir, name)
    result = sweep.run(config, folder, quiet=True, overwrite=True)
    result.save(folder)
    table = best_per_schedule(result.summary)
    tables[name] = table
    with atomic_path(os.path.join(out_dir, f"{name}_best.csv")) as temporary:
      table.to_csv(temporary, index=False)
    lines += ["", f"## {name} ({config.train.steps} steps, {len(config.seeds)} seeds)", "",
              "| optimizer (schedule) | best initial lr | final val accuracy, mean ± std |",
              "|---|---|---|"]
    for row in table.itertuples():
      lines.append(f"| {row.optimizer} | {row.learning_rate:.3g} | "
                   f"{row.val_accuracy_mean:.4f} ± {row.val_accuracy_std:.4f} |")
  if tables:
    save_figure(accuracy_figure(tables), os.path.join(out_dir, "accuracy_by_schedule.png"))
  atomic_write_text(os.path.join(out_dir, "summary.md"), "\n".join(lines) + "\n")
  return tables


def main(argv: list[str] | None = None) -> None:
  sweep.use_cpu_cores()  # before JAX starts: the sweeps spread over the cores
  _cli.main(__doc__, "schedules", SCHEMA, run, argv)


if __name__ == "__main__":
  main()
