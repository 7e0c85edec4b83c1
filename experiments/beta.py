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

from experiments import _cli
import momentum_jax as mj
from momentum_jax import study as st
from momentum_jax import sweep
from momentum_jax.plots import save_figure
from momentum_jax._files import atomic_path, atomic_write_text

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


def grid_figure(summary: pd.DataFrame, value: str, title: str):
  """One heatmap per optimizer of ``value`` (mean over seeds) over β x learning rate."""
  from matplotlib.colors import LogNorm
  from matplotlib.figure import Figure

  optimizers = list(dict.fromkeys(summary.optimizer))
  fig = Figure(figsize=(6.5 * len(optimizers), 5), layout="constrained")
  for axis, optimizer in zip(fig.subplots(1, len(optimizers), squeeze=False)[0], optimizers):
    rows = summary[summary.optimizer == optimizer]
    grid = rows.groupby(["beta", "learning_rate"])[value].mean().unstack()
    diverged = rows.groupby(["beta", "learning_rate"]).diverged.any().unstack()
    shown = grid.where(~diverged)
    positive = shown.to_numpy()[np.isfinite(shown.to_numpy())]
    norm = LogNorm(positive.min(), positive.max()) if positive.size and positive.min() > 0 else None
    image = axis.imshow(shown.to_numpy(), origin="lower", aspect="auto", norm=norm,
                        cmap="viridis_r")
    for (i, j), is_diverged in np.ndenumerate(diverged.to_numpy()):
      if is_diverged:
        axis.text(j, i, "×", ha="center", va="center", color="red", fontsize=9)
    axis.set_xticks(range(grid.shape[1]), [f"{v:.2g}" for v in grid.columns], rotation=45)
    axis.set_yticks(range(grid.shape[0]), [f"{v:g}" for v in grid.index])
    axis.set_xlabel("learning rate")
    axis.set_ylabel("β")
    axis.set_title(f"{optimizer}", fontsize=10)
    fig.colorbar(image, ax=axis, label=f"{value} (mean over seeds; × diverged)")
  fig.suptitle(title)
  return fig


def impulse_figure(betas: list[float]):
  from matplotlib.figure import Figure

  fig = Figure(figsize=(6.5, 4.5), layout="constrained")
  axis = fig.subplots()
  for beta in betas:
    response = impulse_response(beta)
    axis.plot(np.arange(len(response)), response, marker="o", markersize=3,
              label=f"β={beta:g}: window 1/(1−β) = {1 / (1 - beta):.3g} steps")
  axis.set_yscale("log")
  axis.set_ylim(1e-6, 1.1)
  axis.set_xlabel("k: steps since the gradient")
  axis.set_ylabel("its weight in the velocity, (1−β)·β^k")
  axis.set_title("EMA momentum: weight of a gradient k steps back (measured)")
  axis.legend(fontsize=8)
  return fig


def run(study: st.Study, out_dir: str) -> dict[str, pd.DataFrame]:
  """The impulse responses, then each run's sweep, its coupling table and figures."""
  os.makedirs(out_dir, exist_ok=True)
  settings = study.settings
  lines = ["## Weight of past gradients (EMA form), measured impulse response", "",
           "| β | weight two steps back relative to the newest | window 1/(1−β) |", "|---|---|---|"]
  for beta in settings["impulse_betas"]:
    response = impulse_response(beta)
    lines.append(f"| {beta:g} | {response[2] / response[0]:.4g} | {1 / (1 - beta):.4g} |")
  save_figure(impulse_figure(settings["impulse_betas"]),
              os.path.join(out_dir, "past_gradient_weights.png"))
  tables = {}
  for name, config in study.runs.items():
    # overwrite: an experiment resumes its own sweep and replaces an earlier size's.
    folder = os.path.join(out_dir, name)
    result = sweep.run(config, folder, quiet=True, overwrite=True)
    result.save(folder)
    summary = result.summary.copy()
    if "val_accuracy" in summary:
      metric, target = "val_accuracy", settings["accuracy_target"]
    else:  # within a factor of the best final loss any configuration reached
      metric = "train_loss"
      target = settings["loss_target_factor"] * summary.loc[~summary.diverged, "final_loss"].min()
    reached = steps_to_target(result.curves, metric, target)
    summary["steps_to_target"] = summary.config_id.map(reached).astype(float)
    with atomic_path(os.path.join(out_dir, f"{name}_summary.csv")) as temporary:
      summary.to_csv(temporary, index=False)
    coupling = coupling_table(summary)
    tables[name] = coupling
    save_figure(grid_figure(summary, "final_loss", f"{name}: final training loss"),
                os.path.join(out_dir, f"{name}_final_loss.png"))
    save_figure(grid_figure(summary, "steps_to_target",
                            f"{name}: steps until {metric} reaches {target:.3g}"),
                os.path.join(out_dir, f"{name}_steps_to_target.png"))
    lines += ["", f"## {name}: β x learning rate ({config.train.steps} steps, "
              f"{len(config.seeds)} seeds; steps until {metric} reaches {target:.3g})", "",
              "| optimizer | β | largest stable lr | best lr (fewest steps) | best lr/(1−β) | steps |",
              "|---|---|---|---|---|---|"]
    for row in coupling.itertuples():
      lines.append(f"| {row.optimizer} | {row.beta:g} | {row.largest_stable_lr:.3g} | "
                   f"{row.best_lr:.3g} | {row.best_lr_over_1_minus_beta:.3g} | "
                   f"{row.steps_at_best:.0f} |")
  atomic_write_text(os.path.join(out_dir, "summary.md"), "\n".join(lines) + "\n")
  return tables


def main(argv: list[str] | None = None) -> None:
  sweep.use_cpu_cores()  # before JAX starts: the sweeps spread over the cores
  _cli.main(__doc__, "beta", SCHEMA, run, argv)


if __name__ == "__main__":
  main()
