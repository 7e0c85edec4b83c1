"""Batch size: full-batch GD vs SGD vs mini-batch, at matched epochs.

Claim: full-batch GD takes exact but few and costly steps; SGD (batch 1)
takes many cheap, noisy ones; mini-batches sit between and are usually the
best use of a given amount of computation. Set-up: ``configs/batch_size.yaml``:
plain SGD on the digits MLP for the same number of epochs at batch sizes 1,
16, 128 and the full training set, seeds vmapped. Measured: training loss and
validation accuracy per epoch, against steps and against wall time (compile
time excluded, measured by a second, compiled run).

    python -m experiments.batch_size [--out DIR] [--quick] [--set study.epochs=N]
"""

from __future__ import annotations

import os
import time

import jax
import numpy as np
import pandas as pd

from experiments import _cli
from experiments._common import (
  markdown_table,
  over_seeds,
  panels,
  seed_keys,
  write_figure,
  write_summary,
  write_tables,
)
import momentum_jax as mj
from momentum_jax import study as st
from momentum_jax.train import TrainConfig, steps_per_epoch


def _batch_size(path: str, value) -> int | str:
  return value if value == "full" else st.integer(minimum=1)(path, value)


BATCH = {
  "batch_size": st.Setting(_batch_size),
  "learning_rate": st.Setting(st.number(positive=True)),
}
SCHEMA = {
  "problem": st.Setting(st.problem),
  "epochs": st.Setting(st.integer(minimum=1)),
  "batches": st.Setting(st.list_of(st.record(BATCH))),
  "seeds": st.Setting(st.integer(minimum=1)),
}


def run(study: st.Study, out_dir: str) -> pd.DataFrame:
  """Each batch size's seeds in one vmapped run, timed once compiled; tables and the figure."""
  os.makedirs(out_dir, exist_ok=True)
  config = study.settings
  problem, epochs, keys = config["problem"](), config["epochs"], seed_keys(config["seeds"])
  curves, rows = [], []
  for spec in config["batches"]:
    batch_size = None if spec["batch_size"] == "full" else int(spec["batch_size"])
    per_epoch = steps_per_epoch(problem, batch_size)
    train_config = TrainConfig(steps=epochs * per_epoch, batch_size=batch_size, log_every=per_epoch)
    run_all = over_seeds(problem, mj.sgd, train_config, {"learning_rate": spec["learning_rate"]})
    jax.block_until_ready(run_all(keys))  # compiles
    start = time.perf_counter()
    result = jax.block_until_ready(run_all(keys))
    seconds = time.perf_counter() - start
    label = f"batch {spec['batch_size']} (lr {spec['learning_rate']:g})"
    loss = np.asarray(result.metrics["train_loss"])
    accuracy = np.asarray(result.metrics["val_accuracy"])
    curves += [
      {
        "run": label,
        "epoch": epoch + 1,
        "steps": (epoch + 1) * per_epoch,
        "seconds": seconds * (epoch + 1) / epochs,
        "train_loss": float(loss[:, epoch].mean()),
        "val_accuracy": float(accuracy[:, epoch].mean()),
        "val_accuracy_std": float(accuracy[:, epoch].std()),
      }
      for epoch in range(epochs)
    ]
    rows.append(
      {
        "run": label,
        "steps": train_config.steps,
        "seconds_per_seed": seconds / len(keys),
        "final_train_loss": float(loss[:, -1].mean()),
        "final_val_accuracy": float(accuracy[:, -1].mean()),
        "final_val_accuracy_std": float(accuracy[:, -1].std()),
      }
    )
  table, curves = pd.DataFrame(rows), pd.DataFrame(curves)
  write_tables(out_dir, {"results.csv": table, "curves.csv": curves})
  write_summary(
    out_dir,
    [
      f"{epochs} epochs, {len(keys)} seeds, {jax.devices()[0].platform}",
      "",
      markdown_table(
        [
          "run",
          "steps",
          "seconds per seed (compiled)",
          "final train loss",
          "final val accuracy (mean ± std)",
        ],
        [
          [
            r.run,
            r.steps,
            f"{r.seconds_per_seed:.2f}",
            f"{r.final_train_loss:.4f}",
            f"{r.final_val_accuracy:.4f} ± {r.final_val_accuracy_std:.4f}",
          ]
          for r in table.itertuples()
        ],
      ),
    ],
  )
  plot(curves, out_dir)
  return table


def plot(curves: pd.DataFrame, out_dir: str) -> str:
  """Training loss against epochs and steps, validation accuracy against wall time."""
  fig, axes = panels(3, 5, 4.5)
  loss = "training loss (mean over seeds)"
  shown = (
    ("epoch", "train_loss", "Matched epochs", "epoch", "linear", loss),
    ("steps", "train_loss", "Against steps", "optimizer steps (log)", "log", loss),
    (
      "seconds",
      "val_accuracy",
      "Against wall time",
      "wall time, seconds (log; compiled, all seeds, spread evenly over epochs)",
      "log",
      "validation accuracy (mean over seeds)",
    ),
  )
  for axis, (x, y, title, xlabel, xscale, ylabel) in zip(axes, shown):
    for label, group in curves.groupby("run", sort=False):
      axis.plot(group[x], group[y], marker="o", markersize=3, label=label)
    axis.set(
      xlabel=xlabel,
      ylabel=ylabel,
      title=title,
      xscale=xscale,
      yscale="log" if y == "train_loss" else "linear",
    )
    axis.legend(fontsize=8)
  return write_figure(fig, out_dir, "batch_size.png")


def main(argv: list[str] | None = None) -> None:
  _cli.main(__doc__, "batch_size", SCHEMA, run, argv)


if __name__ == "__main__":
  main()
