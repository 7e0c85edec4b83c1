"""The four failures of plain gradient descent on 2-D landscapes, and what momentum does.

Claim: plain GD gets trapped in shallow local minima, stalls at saddle points
and on plateaus, and zig-zags in narrow valleys; momentum ("a ball rolling
downhill") escapes, crosses and damps. Set-up: ``configs/landscapes.yaml``:
each landscape of :mod:`momentum_jax.data` from its suggested start, with GD,
heavy-ball momentum at several β and Nesterov at the same learning rate, and
RMSProp and Adam at their own; and a vmapped β x learning-rate sweep of the
fraction of starting points that reach a global minimum. Measured:
trajectories on contour plots, distances to the global minimum, and one
heatmap per landscape.

    python -m experiments.landscapes [--out DIR] [--quick] [--set KEY.PATH=VALUE]
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from experiments import _cli
from experiments._common import (grid_image, markdown_table, panels, write_figure,
                                 write_summary, write_tables)
import momentum_jax as mj
from momentum_jax.sweep import ConfigError
from momentum_jax import study as st
from momentum_jax.data import LANDSCAPES, get_landscape, reach_fraction, run_on_landscape
from momentum_jax.plots import draw_paths

_BETA = st.number(minimum=0, maximum=0.999)


def _factors(path: str, value) -> list[float]:
  factors = st.list_of(st.number(positive=True))(path, value)
  if 1.0 not in factors:
    raise ConfigError(path, f"must hold 1 (the summary's table is at the landscape's own "
                      f"learning rate), got {value!r}")
  return factors


SETTINGS = {"learning_rate": st.Setting(st.number(positive=True)),
            "adaptive_learning_rate": st.Setting(st.number(positive=True)),
            "steps": st.Setting(st.integer(minimum=1))}
SUCCESS = {"betas": st.Setting(st.list_of(_BETA)),
           "learning_rate_factors": st.Setting(_factors),
           "starts_per_side": st.Setting(st.integer(minimum=1)),
           "tolerance": st.Setting(st.number(positive=True))}
SCHEMA = {
    "landscapes": st.Setting(st.mapping_of(st.one_of(LANDSCAPES), st.record(SETTINGS))),
    "betas": st.Setting(st.list_of(_BETA)),
    "nesterov_beta": st.Setting(_BETA),
    "success": st.Setting(st.record(SUCCESS)),
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


def success_fraction(landscape, settings, sweep, steps) -> np.ndarray:
  """Fraction of a grid of starts reaching a global minimum, per (β, learning rate).

  One jitted program, vmapped over betas x learning rates and (in
  :func:`momentum_jax.data.reach_fraction`) the starts.
  """
  starts = landscape.start_grid(sweep["starts_per_side"])
  betas = jnp.asarray(sweep["betas"], jnp.float32)
  rates = settings["learning_rate"] * jnp.asarray(sweep["learning_rate_factors"], jnp.float32)

  def fraction(beta, lr):
    tx = mj.momentum(lr, beta, ema=False)
    return reach_fraction(landscape, tx, starts, steps, sweep["tolerance"])

  grid = jax.jit(jax.vmap(jax.vmap(fraction, in_axes=(None, 0)), in_axes=(0, None)))
  return np.asarray(grid(betas, rates))


def run(study: st.Study, out_dir: str) -> pd.DataFrame:
  """Each landscape's paths and success fractions; the table, summary and two figures."""
  os.makedirs(out_dir, exist_ok=True)
  config, success = study.settings, study.settings["success"]
  rows, paths, fractions = [], {}, {}
  for name, settings in config["landscapes"].items():
    landscape = get_landscape(name)
    paths[name] = {label: np.asarray(run_on_landscape(landscape, tx, steps=settings["steps"]))
                   for label, tx in contenders(config, settings).items()}
    rows += [{"landscape": name, "optimizer": label, "steps": settings["steps"],
              "final_x": path[-1, 0], "final_y": path[-1, 1],
              "final_value": float(landscape.value(path[-1])),
              "distance_to_global_minimum": float(landscape.distance_to_global_minimum(path[-1]))}
             for label, path in paths[name].items()]
    fractions[name] = success_fraction(landscape, settings, success, settings["steps"])
  table = pd.DataFrame(rows)
  write_tables(out_dir, {"results.csv": table})
  one = success["learning_rate_factors"].index(1.0)
  write_summary(out_dir, [
      markdown_table(["landscape", "optimizer", "distance to the global minimum", "final value"],
                     [[r.landscape, r.optimizer, f"{r.distance_to_global_minimum:.3g}",
                       f"{r.final_value:.4g}"] for r in table.itertuples()]),
      "", "Fraction of starting points reaching a global minimum, at the landscape's "
      "learning rate (factor 1):", "",
      markdown_table(["landscape", *(f"β={b:g}" for b in success["betas"])],
                     [[name, *(f"{f:.2f}" for f in fraction[:, one])]
                      for name, fraction in fractions.items()])])
  plot_trajectories(config, paths, out_dir)
  plot_fractions(config, fractions, out_dir)
  return table


def plot_trajectories(config, paths, out_dir: str) -> str:
  """Each landscape's contours with every optimizer's path."""
  fig, axes = panels(len(paths), 5.5, 5, columns=3)
  for axis, (name, found) in zip(axes, paths.items()):
    draw_paths(axis, get_landscape(name), found)
    lr = config["landscapes"][name]["learning_rate"]
    axis.set_title(f"{name} ({len(next(iter(found.values()))) - 1} steps, lr={lr:g})",
                   fontsize=10)
  return write_figure(fig, out_dir, "trajectories.png")


def plot_fractions(config, fractions, out_dir: str) -> str:
  """Each landscape's heatmap of the fraction of starts reaching a global minimum."""
  success = config["success"]
  fig, axes = panels(len(fractions), 4.6, 4.2, columns=3)
  for axis, (name, fraction) in zip(axes, fractions.items()):
    lr = config["landscapes"][name]["learning_rate"]
    image = grid_image(axis, fraction, [f"{f * lr:.3g}" for f in success["learning_rate_factors"]],
                       [f"{b:g}" for b in success["betas"]], ".2f", vmin=0, vmax=1,
                       cmap="viridis")
    axis.set(xlabel="learning rate", ylabel="β (heavy ball; 0 is GD)")
    axis.set_title(name, fontsize=10)
  fig.colorbar(image, ax=axes.tolist(), label="fraction of starts reaching a global minimum")
  side = success["starts_per_side"]
  fig.suptitle(f"Heavy-ball momentum: β x learning rate, {side} x {side} starting points per cell")
  return write_figure(fig, out_dir, "success_fraction.png")


def main(argv: list[str] | None = None) -> None:
  _cli.main(__doc__, "landscapes", SCHEMA, run, argv)


if __name__ == "__main__":
  main()
