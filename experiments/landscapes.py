"""The four failures of plain gradient descent on 2-D landscapes, and what momentum does.

Claim: plain GD gets trapped in shallow local minima, stalls at saddle points
and on plateaus, and zig-zags in narrow valleys; momentum ("a ball rolling
downhill") escapes, crosses and damps. Set-up: ``configs/landscapes.yaml``:
each landscape of :mod:`momentum_jax.data` from its suggested start, with GD,
heavy-ball momentum at several β and Nesterov at the same learning rate, and
RMSProp and Adam at their own. Measured: trajectories on contour plots and
distances to the global minimum. (Over a grid of starts rather than the
suggested one: ``experiments.landscape_success``.)

    python -m experiments.landscapes [--out DIR] [--quick] [--set KEY.PATH=VALUE]
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from experiments import _cli
from experiments._common import markdown_table, panels, write_figure, write_summary, write_tables
import momentum_jax as mj
from momentum_jax import study as st
from momentum_jax.data import LANDSCAPES, get_landscape, run_on_landscape
from momentum_jax.report.plots import draw_paths

_BETA = st.number(minimum=0, maximum=0.999)
SETTINGS = {
  "learning_rate": st.Setting(st.number(positive=True)),
  "adaptive_learning_rate": st.Setting(st.number(positive=True)),
  "steps": st.Setting(st.integer(minimum=1)),
}
SCHEMA = {
  "landscapes": st.Setting(st.mapping_of(st.one_of(LANDSCAPES), st.record(SETTINGS))),
  "betas": st.Setting(st.list_of(_BETA)),
  "nesterov_beta": st.Setting(_BETA),
}


def contenders(config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
  """Label -> optimizer, for one landscape's settings."""
  lr, adaptive = settings["learning_rate"], settings["adaptive_learning_rate"]
  found = {f"gd (lr={lr:g})": mj.sgd(lr)}
  for beta in config["betas"]:
    found[f"momentum β={beta:g}"] = mj.momentum(lr, beta, ema=False)
  found[f"nesterov β={config['nesterov_beta']:g}"] = mj.nesterov(lr, config["nesterov_beta"])
  found[f"rmsprop (lr={adaptive:g})"] = mj.rmsprop(adaptive)
  found[f"adam (lr={adaptive:g})"] = mj.adam(adaptive)
  return found


def run(study: st.Study, out_dir: str) -> pd.DataFrame:
  """Each landscape's paths from its suggested start; the table, summary and figure."""
  os.makedirs(out_dir, exist_ok=True)
  config = study.settings
  rows, paths = [], {}
  for name, settings in config["landscapes"].items():
    landscape = get_landscape(name)
    paths[name] = {
      label: np.asarray(run_on_landscape(landscape, tx, steps=settings["steps"]))
      for label, tx in contenders(config, settings).items()
    }
    rows += [
      {
        "landscape": name,
        "optimizer": label,
        "steps": settings["steps"],
        "final_x": path[-1, 0],
        "final_y": path[-1, 1],
        "final_value": float(landscape.value(path[-1])),
        "distance_to_global_minimum": float(landscape.distance_to_global_minimum(path[-1])),
      }
      for label, path in paths[name].items()
    ]
  table = pd.DataFrame(rows)
  write_tables(out_dir, {"results.csv": table})
  write_summary(
    out_dir,
    [
      markdown_table(
        ["landscape", "optimizer", "distance to the global minimum", "final value"],
        [
          [r.landscape, r.optimizer, f"{r.distance_to_global_minimum:.3g}", f"{r.final_value:.4g}"]
          for r in table.itertuples()
        ],
      )
    ],
  )
  plot(config, paths, out_dir)
  return table


def plot(config, paths, out_dir: str) -> str:
  """Each landscape's contours with every optimizer's path."""
  fig, axes = panels(len(paths), 5.5, 5, columns=3)
  for axis, (name, found) in zip(axes, paths.items()):
    draw_paths(axis, get_landscape(name), found)
    lr = config["landscapes"][name]["learning_rate"]
    axis.set_title(f"{name} ({len(next(iter(found.values()))) - 1} steps, lr={lr:g})", fontsize=10)
  return write_figure(fig, out_dir, "trajectories.png")


def main(argv: list[str] | None = None) -> None:
  _cli.main(__doc__, "landscapes", SCHEMA, run, argv)


if __name__ == "__main__":
  main()
