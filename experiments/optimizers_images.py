"""Optimizers on images: GD, momentum, Nesterov, RMSProp, AdaGrad and Adam on a CNN.

Claim (reported qualitatively in the literature, on CIFAR-10): Adam is
fastest early and stable; momentum is strong late but needs its β tuned;
RMSProp does well. Set-up: ``configs/optimizers_images.yaml``: each optimizer
over a learning-rate grid x 3 seeds, one vmapped, compiled group each, on the
digits CNN (CIFAR-10 with ``--cifar FOLDER``); each optimizer shown at the
learning rate with the best mean final validation accuracy. Measured: training
loss and validation accuracy curves, mean and spread over seeds.

    python -m experiments.optimizers_images [--out DIR] [--cifar FOLDER] [--quick]
        [--set KEY.PATH=VALUE]

``--cifar FOLDER`` stands for ``--set 'problem={name: cifar10_cnn, path: FOLDER}'``.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pandas as pd

from experiments import _cli
from experiments._common import (
  band,
  markdown_table,
  panels,
  run_sweep,
  write_figure,
  write_summary,
  write_tables,
)
from momentum_jax import study as st
from momentum_jax import sweep
from momentum_jax.results import aggregate_over_seeds

SCHEMA: dict[str, st.Setting] = {}  # the study is one sweep


def best_learning_rates(summary: pd.DataFrame) -> pd.DataFrame:
  """Per optimizer, the seed-pooled row of the learning rate with the best mean val accuracy."""
  pooled = aggregate_over_seeds(summary)
  return pooled.loc[pooled.groupby("optimizer").val_accuracy_mean.idxmax()].reset_index(drop=True)


def plot(curves: pd.DataFrame, out_dir: str, title: str) -> str:
  """Training loss and validation accuracy of each chosen run: mean and range over seeds."""
  fig, (loss_axis, accuracy_axis) = panels(2, 6, 4.5)
  for label, group in curves.groupby("label", sort=False):
    per_step = group.groupby("step")
    line = band(loss_axis, per_step.train_loss, alpha=0.15, label=label)
    band(accuracy_axis, per_step.val_accuracy, alpha=0.15, color=line.get_color(), label=label)
  loss_axis.set(yscale="log", xlabel="step", ylabel="training loss (mean, range over seeds)")
  accuracy_axis.set(xlabel="step", ylabel="validation accuracy (mean, range over seeds)")
  accuracy_axis.legend(fontsize=8)
  fig.suptitle(title)
  return write_figure(fig, out_dir, "curves.png")


def run(study: st.Study, out_dir: str) -> pd.DataFrame:
  """The sweep; each optimizer's curves at its best learning rate, and the table of them."""
  config = study.sweep
  result = run_sweep(config, os.path.join(out_dir, "sweep"))
  best = best_learning_rates(result.summary)
  summary, curves = result.summary, result.curves
  chosen = []
  for row in best.itertuples():
    ids = summary[
      (summary.optimizer == row.optimizer) & np.isclose(summary.learning_rate, row.learning_rate)
    ].config_id
    chosen.append(
      curves[curves.config_id.isin(ids)].assign(label=f"{row.optimizer} lr={row.learning_rate:.3g}")
    )
  plot(pd.concat(chosen), out_dir, f"{config.problem}: each optimizer at its best learning rate")
  write_tables(out_dir, {"best.csv": best})
  early = config.train.logged_steps[len(config.train.logged_steps) // 4]
  rows = []
  for picked in chosen:
    accuracy = picked.groupby("step").val_accuracy
    rows.append(
      [
        picked.label.iloc[0],
        f"{accuracy.mean()[early]:.3f}",
        f"{accuracy.mean().iloc[-1]:.3f} ± {accuracy.std(ddof=0).iloc[-1]:.3f}",
        f"{picked.groupby('step').train_loss.mean().iloc[-1]:.4f}",
      ]
    )
  write_summary(
    out_dir,
    [
      f"{config.problem}, {config.train.steps} steps, batch {config.train.batch_size}, "
      f"{len(config.seeds)} seeds",
      "",
      markdown_table(
        [
          "optimizer, best lr",
          f"val accuracy at step {early}",
          "final val accuracy (mean ± std)",
          "final train loss",
        ],
        rows,
      ),
    ],
  )
  return best


def cifar_shorthand(parser: argparse.ArgumentParser):
  """``--cifar FOLDER``: the override that switches the problem to CIFAR-10 read from FOLDER."""
  parser.add_argument(
    "--cifar", default=None, help="CIFAR-10 python-format folder (else the digits CNN)"
  )
  return lambda args: (
    [f"problem={json.dumps({'name': 'cifar10_cnn', 'path': args.cifar})}"] if args.cifar else []
  )


def main(argv: list[str] | None = None) -> None:
  sweep.use_cpu_cores()  # before JAX starts: the sweeps spread over the cores
  _cli.main(__doc__, "optimizers_images", SCHEMA, run, argv, cifar_shorthand)


if __name__ == "__main__":
  main()
