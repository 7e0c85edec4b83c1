"""Population-based training against quasi-random search, at equal configuration-steps.

Claim: at the cost of one quasi-random sweep, population-based training
(Jaderberg et al., 2017) finds a better model, since its worst members stop
wasting steps and continue from the best ones, with perturbed
hyperparameters. Set-up: ``configs/pbt.yaml``: heavy-ball momentum on
the digits MLP, learning rate and beta from ranges, 16 members, an exploit
every 60 of 600 steps; and the quasi-random sweep of the same 16 points (the
PBT run's ``fraction: 0``), for search seeds 0-2. Measured: the best final
validation accuracy and loss of each.

    python -m experiments.pbt [--out DIR] [--quick] [--set study.search_seeds=N]
"""

from __future__ import annotations

import copy
import os

import pandas as pd

from experiments import _cli
from momentum_jax import study as st
from momentum_jax import sweep
from momentum_jax.runtime.files import atomic_path, atomic_write_text
from momentum_jax.report.plots import save_figure

SCHEMA = {"search_seeds": st.Setting(st.integer(minimum=1), default=3)}


def configs(config: dict, seed: int) -> dict[str, dict]:
  """The PBT config and its quasi-random counterpart (the same points) for one search seed."""
  pbt = copy.deepcopy(config)
  pbt.update(seeds=[seed], search={**config["search"], "seed": seed})
  plain = {
    **copy.deepcopy(pbt),
    "search": {"method": "quasirandom", "seed": seed, "samples": config["search"]["population"]},
  }
  return {"pbt": pbt, "quasirandom": plain}


def run(study: st.Study, out_dir: str) -> pd.DataFrame:
  """Both searches per search seed; writes results.csv, summary.md and pbt.png."""
  config = {k: v for k, v in study.raw.items() if k != "study"}  # the sweep (validated)
  rows, curves = [], {}
  for seed in range(study.settings["search_seeds"]):
    for method, each in configs(config, seed).items():
      result = sweep.run(each, quiet=True)
      best = result.summary.sort_values("val_loss").iloc[0]
      rows.append(
        {
          "search seed": seed,
          "search": method,
          "best val_accuracy": result.summary["val_accuracy"].max(),
          "best val_loss": result.summary["val_loss"].min(),
          "median val_loss": result.summary["val_loss"].median(),
          "its learning_rate": best.get("final_learning_rate", best["learning_rate"]),
          "its beta": best.get("final_beta", best["beta"]),
          "exploits": sum(len(e) for e in result.manifest["search"].get("exploits", {}).values()),
          "config_steps": len(result.summary) * config["train"]["steps"],
          "seconds": sum(result.manifest["timings"].values()),
        }
      )
      curves[(seed, method)] = result.curves
  table = pd.DataFrame(rows)
  os.makedirs(out_dir, exist_ok=True)
  with atomic_path(os.path.join(out_dir, "results.csv")) as path:
    table.to_csv(path, index=False)
  measured = ["best val_accuracy", "best val_loss", "median val_loss"]
  means = table.groupby("search", sort=False)[measured].mean()
  lines = [
    "| search seed | search | best val accuracy | best val loss | median val loss "
    "| its lr | its beta | exploits | config-steps |",
    "|" + "---|" * 9,
  ]
  lines += [
    f"| {r[0]} | {r[1]} | {r[2]:.4f} | {r[3]:.4f} | {r[4]:.4f} | {r[5]:.3g} "
    f"| {r[6]:.3g} | {r[7]} | {r[8]} |"
    for r in table.itertuples(index=False)
  ]
  lines += ["", "Mean over search seeds:", ""]
  lines += [
    f"- {m}: " + ", ".join(f"{k} {v:.4f}" for k, v in r.items()) for m, r in means.iterrows()
  ]
  atomic_write_text(os.path.join(out_dir, "summary.md"), "\n".join(lines) + "\n")
  figure(curves[(0, "pbt")], curves[(0, "quasirandom")], out_dir)
  return table


def figure(pbt: pd.DataFrame, plain: pd.DataFrame, out_dir: str) -> str:
  """Search seed 0: each member's validation loss and learning rate against the step."""
  from matplotlib.figure import Figure

  fig = Figure(figsize=(11, 4), layout="constrained")
  loss, rate = fig.subplots(1, 2)
  for frame, style, label in ((plain, ":", "quasirandom"), (pbt, "-", "PBT")):
    for index, (_, curve) in enumerate(frame.groupby("config_id")):
      loss.plot(
        curve.step,
        curve.val_loss,
        style,
        color="tab:grey" if style == ":" else "tab:blue",
        lw=0.8,
        label=label if not index else None,
      )
  for _, curve in pbt.groupby("config_id"):
    rate.step(curve.step, curve.learning_rate, where="pre", color="tab:blue", lw=0.8)
  loss.set(xlabel="step", ylabel="validation loss", yscale="log", title="Members' curves")
  rate.set(
    xlabel="step",
    ylabel="learning rate (PBT)",
    yscale="log",
    title="Each member's learning rate, as exploits change it",
  )
  loss.legend()
  return save_figure(fig, os.path.join(out_dir, "pbt.png"))


def main(argv: list[str] | None = None) -> None:
  sweep.use_cpu_cores()  # before JAX starts: the sweeps spread over the cores
  _cli.main(__doc__, "pbt", SCHEMA, run, argv)


if __name__ == "__main__":
  main()
