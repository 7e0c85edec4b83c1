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
from momentum_jax import study as st
from momentum_jax import sweep
from momentum_jax.plots import save_figure
from momentum_jax._files import atomic_path, atomic_write_text
from momentum_jax.results import aggregate_over_seeds

SCHEMA: dict[str, st.Setting] = {}  # the study is one sweep


def best_learning_rates(summary: pd.DataFrame) -> pd.DataFrame:
  pooled = aggregate_over_seeds(summary)
  return pooled.loc[pooled.groupby("optimizer").val_accuracy_mean.idxmax()].reset_index(drop=True)


def plot(curves: pd.DataFrame, out_dir: str, title: str) -> str:
  from matplotlib.figure import Figure

  fig = Figure(figsize=(12, 4.5), layout="constrained")
  loss_axis, accuracy_axis = fig.subplots(1, 2)
  for label, group in curves.groupby("label", sort=False):
    per_step = group.groupby("step")
    line, = loss_axis.plot(per_step.train_loss.mean().index, per_step.train_loss.mean(),
                           label=label)
    loss_axis.fill_between(per_step.train_loss.min().index, per_step.train_loss.min(),
                           per_step.train_loss.max(), color=line.get_color(), alpha=0.15)
    accuracy_axis.plot(per_step.val_accuracy.mean().index, per_step.val_accuracy.mean(),
                       color=line.get_color(), label=label)
    accuracy_axis.fill_between(per_step.val_accuracy.min().index, per_step.val_accuracy.min(),
                               per_step.val_accuracy.max(), color=line.get_color(), alpha=0.15)
  loss_axis.set_yscale("log")
  loss_axis.set_xlabel("step")
  loss_axis.set_ylabel("training loss (mean, range over seeds)")
  accuracy_axis.set_xlabel("step")
  accuracy_axis.set_ylabel("validation accuracy (mean, range over seeds)")
  accuracy_axis.legend(fontsize=8)
  fig.suptitle(title)
  path = os.path.join(out_dir, "curves.png")
  save_figure(fig, path)
  return path


def run(study: st.Study, out_dir: str) -> pd.DataFrame:
  """The sweep; each optimizer's curves at its best learning rate, and the table of them."""
  config = study.sweep
  # overwrite: an experiment resumes its own sweep and replaces an earlier size's.
  folder = os.path.join(out_dir, "sweep")
  result = sweep.run(config, folder, quiet=True, overwrite=True)
  result.save(folder)
  best = best_learning_rates(result.summary)
  summary, curves = result.summary, result.curves
  chosen = []
  for row in best.itertuples():
    ids = summary[(summary.optimizer == row.optimizer)
                  & np.isclose(summary.learning_rate, row.learning_rate)].config_id
    picked = curves[curves.config_id.isin(ids)].copy()
    picked["label"] = f"{row.optimizer} lr={row.learning_rate:.3g}"
    chosen.append(picked)
  plot(pd.concat(chosen), out_dir, f"{config.problem}: each optimizer at its best learning rate")
  with atomic_path(os.path.join(out_dir, "best.csv")) as temporary:
    best.to_csv(temporary, index=False)
  early = config.train.logged_steps[len(config.train.logged_steps) // 4]
  lines = [f"{config.problem}, {config.train.steps} steps, batch {config.train.batch_size}, "
           f"{len(config.seeds)} seeds", "",
           f"| optimizer, best lr | val accuracy at step {early} | final val accuracy "
           "(mean ± std) | final train loss |", "|---|---|---|---|"]
  for picked in chosen:
    per_step = picked.groupby("step")
    lines.append(f"| {picked.label.iloc[0]} | {per_step.val_accuracy.mean()[early]:.3f} | "
                 f"{per_step.val_accuracy.mean().iloc[-1]:.3f} ± "
                 f"{per_step.val_accuracy.std(ddof=0).iloc[-1]:.3f} | "
                 f"{per_step.train_loss.mean().iloc[-1]:.4f} |")
  atomic_write_text(os.path.join(out_dir, "summary.md"), "\n".join(lines) + "\n")
  return best


def cifar_shorthand(parser: argparse.ArgumentParser):
  """``--cifar FOLDER``: the override that switches the problem to CIFAR-10 read from FOLDER."""
  parser.add_argument("--cifar", default=None,
                      help="CIFAR-10 python-format folder (else the digits CNN)")
  return lambda args: ([f"problem={json.dumps({'name': 'cifar10_cnn', 'path': args.cifar})}"]
                       if args.cifar else [])


def main(argv: list[str] | None = None) -> None:
  sweep.use_cpu_cores()  # before JAX starts: the sweeps spread over the cores
  _cli.main(__doc__, "optimizers_images", SCHEMA, run, argv, cifar_shorthand)


if __name__ == "__main__":
  main()
