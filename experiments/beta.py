"""What β means: the weight of past gradients, and the β x learning-rate coupling.

Claims: in the EMA form the gradient k steps back weighs ``(1 − β)·β**k``,
``β**k`` relative to the newest (β = 0.1: 1% two steps back; β = 0.9: 81%),
and the velocity averages over an effective window of ``1/(1 − β)`` steps. In
the heavy-ball form the steady-state step is ``lr/(1 − β)`` times the
gradient, so β and the learning rate are coupled: what matters is close to
``lr/(1 − β)``, and the stable region widens with β (on a quadratic of
curvature L, heavy ball is stable for ``lr·L < 2(1 + β)``).

Set-up (``configs/beta.yaml``): the impulse response of
:func:`momentum_jax.scale_by_momentum` (measured, then compared with the
formula); vmapped β x learning-rate sweeps (its runs,
``configs/beta_regression.yaml`` and ``configs/beta_digits.yaml``) of final
loss and steps to a target loss, for both forms on the regression and
heavy ball on the digits MLP.

    python -m experiments.beta [--out DIR] [--quick] [--set KEY.PATH=VALUE]
"""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from experiments import _cli
from experiments._common import (grid_image, markdown_table, panels, run_sweep, write_figure,
                                 write_summary, write_tables)
import momentum_jax as mj
from momentum_jax import study as st
from momentum_jax import sweep

SCHEMA = {
    "impulse_betas": st.Setting(st.list_of(st.number(minimum=0, maximum=0.999))),
    "loss_target_factor": st.Setting(st.number(minimum=1)),
    "accuracy_target": st.Setting(st.number(minimum=0, maximum=1)),
}


def impulse_response(beta: float, steps: int = 40) -> np.ndarray:
  """The EMA velocity after one unit gradient followed by zeros, measured."""
  tx = mj.scale_by_momentum(beta)
  state = tx.init(jnp.zeros(1))
  out = []
  for k in range(steps):
    update, state = tx.update(jnp.array([1.0 if k == 0 else 0.0]), state)
    out.append(float(update[0]))
  return np.array(out)


def steps_to_target(curves: pd.DataFrame, metric: str, target: float) -> pd.Series:
  """Per config, the first logged step where ``metric`` reaches ``target`` (NaN if never).

  Reaching means at most the target for a loss, at least it for an accuracy.
  """
  values = curves[metric]
  hit = curves[values >= target] if "accuracy" in metric else curves[values <= target]
  return hit.groupby("config_id").step.min()


def coupling_table(summary: pd.DataFrame) -> pd.DataFrame:
  """Per optimizer and β: the largest stable and the best learning rate, and lr/(1 − β)."""
  rows = []
  for (optimizer, beta), group in summary.groupby(["optimizer", "beta"]):
    per_lr = group.groupby("learning_rate").agg(
        diverged=("diverged", "any"), steps=("steps_to_target", "mean"),
        loss=("final_loss", "mean"))
    stable = per_lr[~per_lr.diverged]
    best = stable.steps.idxmin() if stable.steps.notna().any() else np.nan
    rows.append({"optimizer": optimizer, "beta": beta,
                 "largest_stable_lr": stable.index.max() if len(stable) else np.nan,
                 "best_lr": best, "best_lr_over_1_minus_beta": best / (1 - beta),
                 "steps_at_best": stable.steps.min()})
  return pd.DataFrame(rows)


def grid_figure(summary: pd.DataFrame, value: str, title: str) -> Figure:
  """One heatmap per optimizer of ``value`` (mean over seeds) over β x learning rate."""
  optimizers = list(dict.fromkeys(summary.optimizer))
  fig, axes = panels(len(optimizers), 6.5, 5)
  for axis, optimizer in zip(axes, optimizers):
    cells = summary[summary.optimizer == optimizer].groupby(["beta", "learning_rate"])
    grid = cells[value].mean().unstack()
    diverged = cells.diverged.any().unstack()
    shown = grid.where(~diverged).to_numpy()
    positive = shown[np.isfinite(shown)]
    norm = LogNorm(positive.min(), positive.max()) if positive.size and positive.min() > 0 else None
    image = grid_image(axis, shown, [f"{v:.2g}" for v in grid.columns],
                       [f"{v:g}" for v in grid.index], norm=norm, cmap="viridis_r")
    for i, j in np.argwhere(diverged.to_numpy()):
      axis.text(j, i, "×", ha="center", va="center", color="red", fontsize=9)
    axis.set(xlabel="learning rate", ylabel="β")
    axis.set_title(optimizer, fontsize=10)
    fig.colorbar(image, ax=axis, label=f"{value} (mean over seeds; × diverged)")
  fig.suptitle(title)
  return fig


def impulse_figure(betas: list[float]) -> Figure:
  """Each β's measured impulse response: the weight of a gradient k steps back."""
  fig, (axis,) = panels(1, 6.5, 4.5)
  for beta in betas:
    response = impulse_response(beta)
    axis.plot(np.arange(len(response)), response, marker="o", markersize=3,
              label=f"β={beta:g}: window 1/(1−β) = {1 / (1 - beta):.3g} steps")
  axis.set(yscale="log", ylim=(1e-6, 1.1), xlabel="k: steps since the gradient",
           ylabel="its weight in the velocity, (1−β)·β^k",
           title="EMA momentum: weight of a gradient k steps back (measured)")
  axis.legend(fontsize=8)
  return fig


def run(study: st.Study, out_dir: str) -> dict[str, pd.DataFrame]:
  """The impulse responses, then each run's sweep, its coupling table and figures."""
  os.makedirs(out_dir, exist_ok=True)
  betas = study.settings["impulse_betas"]
  responses = [impulse_response(beta) for beta in betas]
  lines = ["## Weight of past gradients (EMA form), measured impulse response", "",
           *markdown_table(["β", "weight two steps back relative to the newest", "window 1/(1−β)"],
                           [[f"{b:g}", f"{r[2] / r[0]:.4g}", f"{1 / (1 - b):.4g}"]
                            for b, r in zip(betas, responses)])]
  write_figure(impulse_figure(betas), out_dir, "past_gradient_weights.png")
  tables = {}
  for name, config in study.runs.items():
    result = run_sweep(config, os.path.join(out_dir, name))
    summary = result.summary.copy()
    if "val_accuracy" in summary:
      metric, target = "val_accuracy", study.settings["accuracy_target"]
    else:  # within a factor of the best final loss any configuration reached
      metric = "train_loss"
      target = (study.settings["loss_target_factor"]
                * summary.loc[~summary.diverged, "final_loss"].min())
    reached = steps_to_target(result.curves, metric, target)
    summary["steps_to_target"] = summary.config_id.map(reached).astype(float)
    write_tables(out_dir, {f"{name}_summary.csv": summary})
    tables[name] = coupling = coupling_table(summary)
    for value, title in (("final_loss", "final training loss"),
                         ("steps_to_target", f"steps until {metric} reaches {target:.3g}")):
      write_figure(grid_figure(summary, value, f"{name}: {title}"), out_dir, f"{name}_{value}.png")
    lines += ["", f"## {name}: β x learning rate ({config.train.steps} steps, "
              f"{len(config.seeds)} seeds; steps until {metric} reaches {target:.3g})", "",
              *markdown_table(
                  ["optimizer", "β", "largest stable lr", "best lr (fewest steps)",
                   "best lr/(1−β)", "steps"],
                  [[r.optimizer, f"{r.beta:g}", f"{r.largest_stable_lr:.3g}", f"{r.best_lr:.3g}",
                    f"{r.best_lr_over_1_minus_beta:.3g}", f"{r.steps_at_best:.0f}"]
                   for r in coupling.itertuples()])]
  write_summary(out_dir, lines)
  return tables


def main(argv: list[str] | None = None) -> None:
  sweep.use_cpu_cores()  # before JAX starts: the sweeps spread over the cores
  _cli.main(__doc__, "beta", SCHEMA, run, argv)


if __name__ == "__main__":
  main()
