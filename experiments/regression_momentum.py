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

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from experiments import _cli
import momentum_jax as mj
from momentum_jax import problems
from momentum_jax import study as st
from momentum_jax.plots import save_figure
from momentum_jax._files import atomic_path, atomic_write_text
from momentum_jax.train import TrainConfig, build_train

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
OPTIMIZERS = {
    "gd": lambda lr, beta: (mj.sgd, {"learning_rate": lr}),
    "momentum (EMA)": lambda lr, beta: (mj.momentum, {"learning_rate": lr, "beta": beta}),
    "momentum (heavy ball)": lambda lr, beta: (
        functools.partial(mj.momentum, ema=False), {"learning_rate": lr, "beta": beta}),
    "nesterov": lambda lr, beta: (mj.nesterov, {"learning_rate": lr, "beta": beta}),
}


def least_squares_loss(problem: problems.Problem) -> float:
  x = np.asarray(problem.data.x_train)[:, 0]
  y = np.asarray(problem.data.y_train)
  design = np.stack([x, np.ones_like(x)], axis=1)
  coef = np.linalg.lstsq(design, y, rcond=None)[0]
  return float(np.mean((design @ coef - y) ** 2))


def broadcast_bug(problem: problems.Problem, tx: optax.GradientTransformation, steps: int):
  """Fits ``w, b`` to the published broadcast loss ``mean((pred[None, :] - y[:, None])**2)``."""
  x = problem.data.x_train[:, 0]
  y = problem.data.y_train[:, None]  # (n, 1) against predictions (n,): an n x n difference

  def loss_fn(p):
    return jnp.mean((p["w"] * x + p["b"] - y) ** 2)

  def step(carry, _):
    p, state = carry
    loss, grads = jax.value_and_grad(loss_fn)(p)
    updates, state = tx.update(grads, state, p)
    return (optax.apply_updates(p, updates), state), loss

  params = {"w": jnp.zeros(()), "b": jnp.zeros(())}
  (params, _), _ = jax.jit(lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=steps))(
      params)
  return float(params["w"]), float(params["b"]), float(loss_fn(params))


def run(study: st.Study, out_dir: str) -> pd.DataFrame:
  """Runs every set-up x optimizer x seed; writes curves, a table and figures.

  The data are the literature's (data seed 0); the seeds vary the initial
  weights, all seeds of one optimizer in one vmapped run.
  """
  os.makedirs(out_dir, exist_ok=True)
  config = study.settings
  seeds = config["seeds"]
  rows, curves, bug_rows = [], [], []
  for setup in config["setups"]:
    steps = setup["steps"]
    problem = problems.get_problem("linear_regression", dataset=setup["dataset"])
    optimum = least_squares_loss(problem)
    keys = jax.random.split(jax.random.key(0), seeds)
    for name, build in OPTIMIZERS.items():
      factory, hyperparameters = build(setup["learning_rate"], setup["beta"])
      # All seeds (initial weights) in one vmapped, compiled run.
      runs = jax.jit(jax.vmap(build_train(problem, factory, TrainConfig(steps=steps, log_every=1)),
                              in_axes=(None, 0)))(
          {k: jnp.float32(v) for k, v in hyperparameters.items()}, keys)
      all_losses = np.asarray(runs.metrics["train_loss"])  # the loss before each update
      for seed, losses in enumerate(all_losses):
        reached = np.nonzero(losses <= optimum * (1 + config["target_excess"]))[0]
        layer = runs.params["layers"][0]
        rows.append({"setup": setup["name"], "optimizer": name, "seed": seed,
                     "learning_rate": setup["learning_rate"], "beta": setup["beta"],
                     "steps_to_target": int(reached[0]) if reached.size else np.nan,
                     "final_loss": float(losses[-1]), "optimum": optimum,
                     "w": float(layer["kernel"][...][seed, 0, 0]),
                     "b": float(layer["bias"][...][seed, 0])})
        curves.append(pd.DataFrame({"setup": setup["name"], "optimizer": name, "seed": seed,
                                    "step": np.arange(steps), "loss": losses}))
    if setup["dataset"] == "uniform":
      for name in ("gd", "momentum (heavy ball)"):
        factory, hyperparameters = OPTIMIZERS[name](setup["learning_rate"], setup["beta"])
        w, b, loss = broadcast_bug(problem, factory(**hyperparameters), steps)
        bug_rows.append({"optimizer": name, "w": w, "b": b, "final_loss": loss,
                         "mean_y": float(np.mean(problem.data.y_train))})
  table = pd.DataFrame(rows)
  curves = pd.concat(curves, ignore_index=True)
  with atomic_path(os.path.join(out_dir, "results.csv")) as path:
    table.to_csv(path, index=False)
  with atomic_path(os.path.join(out_dir, "broadcast_bug.csv")) as path:
    pd.DataFrame(bug_rows).to_csv(path, index=False)
  atomic_write_text(os.path.join(out_dir, "summary.md"), summarise(table, pd.DataFrame(bug_rows)))
  plot(curves, table, out_dir)
  return table


def summarise(table: pd.DataFrame, bugs: pd.DataFrame) -> str:
  lines = ["| set-up | optimizer | steps to 1% of optimum (mean ± std over seeds) | final w | final b |",
           "|---|---|---|---|---|"]
  for (setup, name), group in table.groupby(["setup", "optimizer"], sort=False):
    steps = group["steps_to_target"]
    reached = f"{steps.mean():.1f} ± {steps.std(ddof=0):.1f}" if steps.notna().all() else \
        f"not reached by {steps.isna().sum()} of {len(steps)} seeds"
    lines.append(f"| {setup} | {name} | {reached} | {group.w.mean():.3f} | {group.b.mean():.3f} |")
  if len(bugs):
    lines += ["", "Broadcast loss of the published 100-sample version (y (100, 1) vs predictions (100,)):",
              "", "| optimizer | w | b | mean(y) |", "|---|---|---|---|"]
    for name, group in bugs.groupby("optimizer", sort=False):
      lines.append(f"| {name} | {group.w.mean():.4f} | {group.b.mean():.4f} | "
                   f"{group.mean_y.mean():.4f} |")
  return "\n".join(lines) + "\n"


def plot(curves: pd.DataFrame, table: pd.DataFrame, out_dir: str) -> str:
  from matplotlib.figure import Figure

  setups = list(dict.fromkeys(curves["setup"]))
  fig = Figure(figsize=(6 * len(setups), 4.5), layout="constrained")
  for axis, setup in zip(fig.subplots(1, len(setups), squeeze=False)[0], setups):
    optimum = table[table.setup == setup].optimum.mean()
    for name in OPTIMIZERS:
      runs = curves[(curves.setup == setup) & (curves.optimizer == name)]
      per_step = runs.pivot(index="step", columns="seed", values="loss")
      excess = per_step - optimum
      row = table[(table.setup == setup) & (table.optimizer == name)].iloc[0]
      label = name if name == "gd" else f"{name}, β={row.beta:g}"
      line, = axis.plot(excess.index, excess.median(axis=1), label=f"{label}, lr={row.learning_rate:g}")
      axis.fill_between(excess.index, excess.min(axis=1), excess.max(axis=1),
                        color=line.get_color(), alpha=0.2)
    axis.set_yscale("log")
    axis.set_xlabel("step (full-batch update)")
    axis.set_ylabel("loss − least-squares optimum (MSE)")
    axis.set_title(setup, fontsize=10)
    axis.axhline(optimum * 0.01, color="grey", linestyle=":", label="1% of the optimum")
    axis.legend(fontsize=8)
  fig.suptitle("Momentum vs gradient descent: median and range over seeds")
  path = os.path.join(out_dir, "loss_curves.png")
  save_figure(fig, path)
  return path


def main(argv: list[str] | None = None) -> None:
  _cli.main(__doc__, "regression_momentum", SCHEMA, run, argv)


if __name__ == "__main__":
  main()
