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
import jax.numpy as jnp
import numpy as np
import pandas as pd

from experiments import _cli
import momentum_jax as mj
from momentum_jax import study as st
from momentum_jax.plots import save_figure
from momentum_jax._files import atomic_path, atomic_write_text
from momentum_jax.train import TrainConfig, build_train, steps_per_epoch



def _batch_size(path: str, value) -> int | str:
  if value == "full":
    return value
  return st.integer(minimum=1)(path, value)


BATCH = {"batch_size": st.Setting(_batch_size),
         "learning_rate": st.Setting(st.number(positive=True))}
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
  problem = config["problem"]()
  epochs = config["epochs"]
  keys = jax.random.split(jax.random.key(0), config["seeds"])
  curves, rows = [], []
  for spec in config["batches"]:
    batch_size = None if spec["batch_size"] == "full" else int(spec["batch_size"])
    per_epoch = steps_per_epoch(problem, batch_size)
    train_config = TrainConfig(steps=epochs * per_epoch, batch_size=batch_size,
                               log_every=per_epoch)
    run_all = jax.jit(jax.vmap(build_train(problem, mj.sgd, train_config), in_axes=(None, 0)))
    hyperparameters = {"learning_rate": jnp.float32(spec["learning_rate"])}
    jax.block_until_ready(run_all(hyperparameters, keys))  # compiles
    start = time.perf_counter()
    result = jax.block_until_ready(run_all(hyperparameters, keys))
    seconds = time.perf_counter() - start
    label = f"batch {spec['batch_size']} (lr {spec['learning_rate']:g})"
    loss = np.asarray(result.metrics["train_loss"])
    accuracy = np.asarray(result.metrics["val_accuracy"])
    for epoch in range(epochs):
      curves.append({"run": label, "epoch": epoch + 1, "steps": (epoch + 1) * per_epoch,
                     "seconds": seconds * (epoch + 1) / epochs,
                     "train_loss": float(loss[:, epoch].mean()),
                     "val_accuracy": float(accuracy[:, epoch].mean()),
                     "val_accuracy_std": float(accuracy[:, epoch].std())})
    rows.append({"run": label, "steps": train_config.steps, "seconds_per_seed": seconds / len(keys),
                 "final_train_loss": float(loss[:, -1].mean()),
                 "final_val_accuracy": float(accuracy[:, -1].mean()),
                 "final_val_accuracy_std": float(accuracy[:, -1].std())})
  table, curves = pd.DataFrame(rows), pd.DataFrame(curves)
  for name, frame in (("results.csv", table), ("curves.csv", curves)):
    with atomic_path(os.path.join(out_dir, name)) as path:
      frame.to_csv(path, index=False)
  lines = [f"{epochs} epochs, {len(keys)} seeds, {jax.devices()[0].platform}", "",
           "| run | steps | seconds per seed (compiled) | final train loss | "
           "final val accuracy (mean ± std) |", "|---|---|---|---|---|"]
  for row in table.itertuples():
    lines.append(f"| {row.run} | {row.steps} | {row.seconds_per_seed:.2f} | "
                 f"{row.final_train_loss:.4f} | {row.final_val_accuracy:.4f} ± "
                 f"{row.final_val_accuracy_std:.4f} |")
  atomic_write_text(os.path.join(out_dir, "summary.md"), "\n".join(lines) + "\n")
  plot(curves, out_dir)
  return table


def plot(curves: pd.DataFrame, out_dir: str) -> str:
  from matplotlib.figure import Figure

  fig = Figure(figsize=(15, 4.5), layout="constrained")
  by_epoch, by_step, by_time = fig.subplots(1, 3)
  for label, group in curves.groupby("run", sort=False):
    by_epoch.plot(group.epoch, group.train_loss, marker="o", markersize=3, label=label)
    by_step.plot(group.steps, group.train_loss, marker="o", markersize=3, label=label)
    by_time.plot(group.seconds, group.val_accuracy, marker="o", markersize=3, label=label)
  for axis, xlabel in ((by_epoch, "epoch"), (by_step, "optimizer steps (log)"),
                       (by_time, "wall time, seconds (log; compiled, all seeds, spread evenly over epochs)")):
    axis.set_xlabel(xlabel)
    axis.legend(fontsize=8)
  by_step.set_xscale("log")
  by_time.set_xscale("log")
  by_epoch.set_yscale("log")
  by_step.set_yscale("log")
  by_epoch.set_ylabel("training loss (mean over seeds)")
  by_step.set_ylabel("training loss (mean over seeds)")
  by_time.set_ylabel("validation accuracy (mean over seeds)")
  by_epoch.set_title("Matched epochs")
  by_step.set_title("Against steps")
  by_time.set_title("Against wall time")
  path = os.path.join(out_dir, "batch_size.png")
  save_figure(fig, path)
  return path


def main(argv: list[str] | None = None) -> None:
  _cli.main(__doc__, "batch_size", SCHEMA, run, argv)


if __name__ == "__main__":
  main()
