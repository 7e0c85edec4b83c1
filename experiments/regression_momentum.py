"""Momentum vs gradient descent on the literature's linear regression.

Claim: momentum reaches the least-squares fit in fewer steps than plain GD.
Set-up: both textbook regressions (``configs/regression_momentum.yaml``),
full batch, GD against momentum in its EMA and heavy-ball forms and Nesterov,
over several seeds of the initial weights. Measured: the loss curves and
the steps each needs to come within 1% of the closed-form optimum.

One published version of the 100-sample example compares ``y`` of shape
(100, 1) with predictions of shape (100,); the difference broadcasts to a
100 x 100 matrix, whose mean square is minimised by the flat line
``w = 0, b = mean(y)``. Both methods then converge to that same wrong line,
which is why that version prints identical results for both. This study fits
the intended model, and also runs the broadcast loss to show what it learns.

    python -m experiments.regression_momentum [--out DIR] [--quick] [--set KEY.PATH=VALUE]
"""

from __future__ import annotations

import functools
import os

import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from experiments import _cli
from experiments._common import (band, markdown_table, over_seeds, panels, seed_keys,
                                 write_figure, write_summary, write_tables)
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
# Name -> (optimizer factory, whether it takes the set-up's beta).
OPTIMIZERS = {"gd": (mj.sgd, False), "momentum (EMA)": (mj.momentum, True),
              "momentum (heavy ball)": (functools.partial(mj.momentum, ema=False), True),
              "nesterov": (mj.nesterov, True)}


def optimizer(name: str, setup: dict) -> tuple:
  """The factory of optimizer ``name`` and its hyperparameters in ``setup``."""
  factory, takes_beta = OPTIMIZERS[name]
  return factory, {"learning_rate": setup["learning_rate"],
                   **({"beta": setup["beta"]} if takes_beta else {})}


def broadcast_bug(problem: problems.Problem, tx: optax.GradientTransformation, steps: int):
  """Fits ``w, b`` to the published broadcast loss ``mean((pred[None, :] - y[:, None])**2)``."""
  x = problem.data.x_train[:, 0]
  y = problem.data.y_train[:, None]  # (n, 1) against predictions (n,): an n x n difference

  def loss_fn(p):
    return jnp.mean((p["w"] * x + p["b"] - y) ** 2)

  params, _ = mj.minimize(loss_fn, {"w": jnp.zeros(()), "b": jnp.zeros(())}, tx, steps)
  return float(params["w"]), float(params["b"]), float(loss_fn(params))


def run(study: st.Study, out_dir: str) -> pd.DataFrame:
  """Runs every set-up x optimizer x seed; writes curves, a table and figures.

  The data are the literature's (data seed 0); the seeds vary the initial
  weights, all seeds of one optimizer in one vmapped run.
  """
  os.makedirs(out_dir, exist_ok=True)
  config = study.settings
  rows, curves, bugs = [], [], []
  for setup in config["setups"]:
    problem = problems.get_problem("linear_regression", dataset=setup["dataset"])
    optimum = least_squares(problem.data)[2]
    for name in OPTIMIZERS:
      factory, hyperparameters = optimizer(name, setup)
      runs = over_seeds(problem, factory, TrainConfig(steps=setup["steps"], log_every=1),
                        hyperparameters)(seed_keys(config["seeds"]))
      layer = runs.params["layers"][0]
      losses = np.asarray(runs.metrics["train_loss"])  # per seed, before each update
      curves.append(pd.DataFrame({"setup": setup["name"], "optimizer": name,
                                  "seed": np.repeat(np.arange(len(losses)), setup["steps"]),
                                  "step": np.tile(np.arange(setup["steps"]), len(losses)),
                                  "loss": losses.ravel()}))
      reached = steps_to_target(curves[-1], "loss", optimum * (1 + config["target_excess"]), "seed")
      rows += [{"setup": setup["name"], "optimizer": name, "seed": seed,
                "learning_rate": setup["learning_rate"], "beta": setup["beta"],
                "steps_to_target": reached.get(seed, np.nan), "final_loss": float(losses[seed, -1]),
                "optimum": optimum, "w": float(layer["kernel"][...][seed, 0, 0]),
                "b": float(layer["bias"][...][seed, 0])} for seed in range(len(losses))]
    if setup["dataset"] == "uniform":
      for name in ("gd", "momentum (heavy ball)"):
        factory, hyperparameters = optimizer(name, setup)
        w, b, loss = broadcast_bug(problem, factory(**hyperparameters), setup["steps"])
        bugs.append({"optimizer": name, "w": w, "b": b, "final_loss": loss,
                     "mean_y": float(np.mean(problem.data.y_train))})
  table, bugs = pd.DataFrame(rows), pd.DataFrame(bugs)
  write_tables(out_dir, {"results.csv": table, "broadcast_bug.csv": bugs})
  write_summary(out_dir, summarise(table, bugs))
  plot(pd.concat(curves, ignore_index=True), table, out_dir)
  return table


def summarise(table: pd.DataFrame, bugs: pd.DataFrame) -> list[str]:
  """The summary's lines: steps to the target per set-up and optimizer; the broadcast fits."""
  rows = []
  for (setup, name), group in table.groupby(["setup", "optimizer"], sort=False):
    steps = group["steps_to_target"]
    reached = f"{steps.mean():.1f} ± {steps.std(ddof=0):.1f}" if steps.notna().all() else \
        f"not reached by {steps.isna().sum()} of {len(steps)} seeds"
    rows.append([setup, name, reached, f"{group.w.mean():.3f}", f"{group.b.mean():.3f}"])
  lines = [markdown_table(["set-up", "optimizer", "steps to 1% of optimum (mean ± std over seeds)",
                           "final w", "final b"], rows)]
  if len(bugs):
    lines += ["", "Broadcast loss of the published 100-sample version (y (100, 1) vs "
              "predictions (100,)):", "", markdown_table(
                  ["optimizer", "w", "b", "mean(y)"],
                  [[name, f"{g.w.mean():.4f}", f"{g.b.mean():.4f}", f"{g.mean_y.mean():.4f}"]
                   for name, g in bugs.groupby("optimizer", sort=False)])]
  return lines


def plot(curves: pd.DataFrame, table: pd.DataFrame, out_dir: str) -> str:
  """Per set-up, each optimizer's loss above the optimum: median and range over seeds."""
  setups = list(dict.fromkeys(curves["setup"]))
  fig, axes = panels(len(setups), 6, 4.5)
  for axis, setup in zip(axes, setups):
    optimum = table[table.setup == setup].optimum.mean()
    for name in OPTIMIZERS:
      runs = curves[(curves.setup == setup) & (curves.optimizer == name)]
      row = table[(table.setup == setup) & (table.optimizer == name)].iloc[0]
      label = name if name == "gd" else f"{name}, β={row.beta:g}"
      band(axis, (runs.loss - optimum).groupby(runs.step), "median",
           label=f"{label}, lr={row.learning_rate:g}")
    axis.set(yscale="log", xlabel="step (full-batch update)",
             ylabel="loss − least-squares optimum (MSE)")
    axis.set_title(setup, fontsize=10)
    axis.axhline(optimum * 0.01, color="grey", linestyle=":", label="1% of the optimum")
    axis.legend(fontsize=8)
  fig.suptitle("Momentum vs gradient descent: median and range over seeds")
  return write_figure(fig, out_dir, "loss_curves.png")


def main(argv: list[str] | None = None) -> None:
  _cli.main(__doc__, "regression_momentum", SCHEMA, run, argv)


if __name__ == "__main__":
  main()
