"""Momentum vs gradient descent on the literature's linear regression.

Claim: momentum reaches the least-squares fit in fewer steps than plain GD.
Set-up: both textbook regressions (``configs/regression_momentum.yaml``),
full batch, GD against momentum in its EMA and heavy-ball forms and Nesterov,
over several seeds of the initial weights (the data: seed 0), vmapped. Measured:
the loss curves and the steps each needs to come within 1% of the closed-form
optimum. (The broadcast loss of one published version: ``experiments.broadcast_bug``.)

    python -m experiments.regression_momentum [--out DIR] [--quick] [--set KEY.PATH=VALUE]
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pandas as pd

from experiments import _cli
from experiments._common import (
  band,
  markdown_table,
  over_seeds,
  panels,
  seed_keys,
  write_figure,
  write_summary,
  write_tables,
)
import momentum_jax as mj
from momentum_jax import problems
from momentum_jax.data import least_squares
from momentum_jax.results import steps_to_target
from momentum_jax import study as st
from momentum_jax.train import TrainConfig

SETUP = {
  "name": st.Setting(st.text),
  "dataset": st.Setting(st.one_of(("normal", "uniform"))),
  "learning_rate": st.Setting(st.number(positive=True)),
  "beta": st.Setting(st.number(minimum=0, maximum=0.999)),
  "steps": st.Setting(st.integer(minimum=1)),
}
SCHEMA = {
  "setups": st.Setting(st.list_of(st.record(SETUP))),
  "seeds": st.Setting(st.integer(minimum=1)),
  "target_excess": st.Setting(st.number(positive=True)),
}
# Name -> optimizer factory; all but GD take the set-up's beta.
OPTIMIZERS = {
  "gd": mj.sgd,
  "momentum (EMA)": mj.momentum,
  "momentum (heavy ball)": functools.partial(mj.momentum, ema=False),
  "nesterov": mj.nesterov,
}


def run(study: st.Study, out_dir: str) -> pd.DataFrame:
  """Runs every set-up x optimizer x seed; writes the table, the summary and the figure."""
  os.makedirs(out_dir, exist_ok=True)
  config = study.settings
  rows, curves = [], []
  for setup in config["setups"]:
    problem = problems.get_problem("linear_regression", dataset=setup["dataset"])
    optimum = least_squares(problem.data)[2]
    for name, factory in OPTIMIZERS.items():
      hyperparameters = {
        "learning_rate": setup["learning_rate"],
        **({} if name == "gd" else {"beta": setup["beta"]}),
      }
      runs = over_seeds(
        problem, factory, TrainConfig(steps=setup["steps"], log_every=1), hyperparameters
      )(seed_keys(config["seeds"]))
      layer = runs.params["layers"][0]
      losses = np.asarray(runs.metrics["train_loss"])  # per seed, before each update
      curves.append(
        pd.DataFrame(
          {
            "setup": setup["name"],
            "optimizer": name,
            "seed": np.repeat(np.arange(len(losses)), setup["steps"]),
            "step": np.tile(np.arange(setup["steps"]), len(losses)),
            "loss": losses.ravel(),
          }
        )
      )
      reached = steps_to_target(curves[-1], "loss", optimum * (1 + config["target_excess"]), "seed")
      rows += [
        {
          "setup": setup["name"],
          "optimizer": name,
          "seed": seed,
          "learning_rate": setup["learning_rate"],
          "beta": setup["beta"],
          "steps_to_target": reached.get(seed, np.nan),
          "final_loss": float(losses[seed, -1]),
          "optimum": optimum,
          "w": float(layer["kernel"][...][seed, 0, 0]),
          "b": float(layer["bias"][...][seed, 0]),
        }
        for seed in range(len(losses))
      ]
  table = pd.DataFrame(rows)
  write_tables(out_dir, {"results.csv": table})
  summary = []
  for (setup, name), group in table.groupby(["setup", "optimizer"], sort=False):
    steps = group["steps_to_target"]
    reached = (
      f"{steps.mean():.1f} ± {steps.std(ddof=0):.1f}"
      if steps.notna().all()
      else f"not reached by {steps.isna().sum()} of {len(steps)} seeds"
    )
    summary.append([setup, name, reached, f"{group.w.mean():.3f}", f"{group.b.mean():.3f}"])
  write_summary(
    out_dir,
    [
      markdown_table(
        [
          "set-up",
          "optimizer",
          "steps to 1% of optimum (mean ± std over seeds)",
          "final w",
          "final b",
        ],
        summary,
      )
    ],
  )
  plot(config, pd.concat(curves, ignore_index=True), table, out_dir)
  return table


def plot(config, curves: pd.DataFrame, table: pd.DataFrame, out_dir: str) -> str:
  """Per set-up, each optimizer's loss above the optimum: median and range over seeds."""
  fig, axes = panels(len(config["setups"]), 6, 4.5)
  for axis, setup in zip(axes, config["setups"]):
    optimum = table[table.setup == setup["name"]].optimum.mean()
    for name in OPTIMIZERS:
      runs = curves[(curves.setup == setup["name"]) & (curves.optimizer == name)]
      label = name if name == "gd" else f"{name}, β={setup['beta']:g}"
      band(
        axis,
        (runs.loss - optimum).groupby(runs.step),
        "median",
        label=f"{label}, lr={setup['learning_rate']:g}",
      )
    axis.set(
      yscale="log", xlabel="step (full-batch update)", ylabel="loss − least-squares optimum (MSE)"
    )
    axis.set_title(setup["name"], fontsize=10)
    axis.axhline(optimum * 0.01, color="grey", linestyle=":", label="1% of the optimum")
    axis.legend(fontsize=8)
  fig.suptitle("Momentum vs gradient descent: median and range over seeds")
  return write_figure(fig, out_dir, "loss_curves.png")


def main(argv: list[str] | None = None) -> None:
  _cli.main(__doc__, "regression_momentum", SCHEMA, run, argv)


if __name__ == "__main__":
  main()
