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

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from experiments import _cli
from experiments._common import (
  beta_lr_heatmaps,
  markdown_table,
  panels,
  run_sweep,
  write_figure,
  write_summary,
  write_tables,
)
import momentum_jax as mj
from momentum_jax import study as st
from momentum_jax import sweep
from momentum_jax.results import stability_edge, steps_to_target

SCHEMA = {
  "impulse_betas": st.Setting(st.list_of(st.number(minimum=0, maximum=0.999))),
  "loss_target_factor": st.Setting(st.number(minimum=1)),
  "accuracy_target": st.Setting(st.number(minimum=0, maximum=1)),
}


def impulse_figure(betas: list[float]) -> Figure:
  """Each β's measured impulse response: the weight of a gradient k steps back."""
  fig, (axis,) = panels(1, 6.5, 4.5)
  for beta in betas:
    response = mj.impulse_response(mj.scale_by_momentum(beta))
    axis.plot(
      np.arange(len(response)),
      response,
      marker="o",
      markersize=3,
      label=f"β={beta:g}: window 1/(1−β) = {1 / (1 - beta):.3g} steps",
    )
  axis.set(
    yscale="log",
    ylim=(1e-6, 1.1),
    xlabel="k: steps since the gradient",
    ylabel="its weight in the velocity, (1−β)·β^k",
    title="EMA momentum: weight of a gradient k steps back (measured)",
  )
  axis.legend(fontsize=8)
  return fig


def run(study: st.Study, out_dir: str) -> dict[str, pd.DataFrame]:
  """The impulse responses, then each run's sweep, coupling table (its stability edge), figures."""
  os.makedirs(out_dir, exist_ok=True)
  betas = study.settings["impulse_betas"]
  responses = [mj.impulse_response(mj.scale_by_momentum(beta)) for beta in betas]
  lines = [
    "## Weight of past gradients (EMA form), measured impulse response",
    "",
    markdown_table(
      ["β", "weight two steps back relative to the newest", "window 1/(1−β)"],
      [[f"{b:g}", f"{r[2] / r[0]:.4g}", f"{1 / (1 - b):.4g}"] for b, r in zip(betas, responses)],
    ),
  ]
  write_figure(impulse_figure(betas), out_dir, "past_gradient_weights.png")
  tables = {}
  for name, config in study.runs.items():
    result = run_sweep(config, os.path.join(out_dir, name))
    summary = result.summary.copy()
    if "val_accuracy" in summary:
      metric, target = "val_accuracy", study.settings["accuracy_target"]
    else:  # within a factor of the best final loss any configuration reached
      metric = "train_loss"
      target = (
        study.settings["loss_target_factor"] * summary.loc[~summary.diverged, "final_loss"].min()
      )
    reached = steps_to_target(result.curves, metric, target)
    summary["steps_to_target"] = summary.config_id.map(reached).astype(float)
    write_tables(out_dir, {f"{name}_summary.csv": summary})
    tables[name] = coupling = stability_edge(summary, ["optimizer", "beta"], "steps_to_target")
    coupling["best_over_1_minus_beta"] = coupling.best / (1 - coupling.beta)
    for value, title in (
      ("final_loss", "final training loss"),
      ("steps_to_target", f"steps until {metric} reaches {target:.3g}"),
    ):
      write_figure(
        beta_lr_heatmaps(summary, value, f"{name}: {title}"), out_dir, f"{name}_{value}.png"
      )
    lines += [
      "",
      f"## {name}: β x learning rate ({config.train.steps} steps, "
      f"{len(config.seeds)} seeds; steps until {metric} reaches {target:.3g})",
      "",
      markdown_table(
        ["optimizer", "β", "largest stable lr", "best lr (fewest steps)", "best lr/(1−β)", "steps"],
        [
          [
            r.optimizer,
            f"{r.beta:g}",
            f"{r.largest_stable:.3g}",
            f"{r.best:.3g}",
            f"{r.best_over_1_minus_beta:.3g}",
            f"{r.at_best:.0f}",
          ]
          for r in coupling.itertuples()
        ],
      ),
    ]
  write_summary(out_dir, lines)
  return tables


def main(argv: list[str] | None = None) -> None:
  sweep.use_cpu_cores()  # before JAX starts: the sweeps spread over the cores
  _cli.main(__doc__, "beta", SCHEMA, run, argv)


if __name__ == "__main__":
  main()
