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
import momentum_jax as mj
from momentum_jax.sweep import ConfigError
from momentum_jax import study as st
from momentum_jax.data import LANDSCAPES, get_landscape, run_on_landscape
from momentum_jax.plots import save_figure
from momentum_jax._files import atomic_path, atomic_write_text

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


def distance_to_global(landscape, points: jax.Array) -> jax.Array:
  minima = jnp.asarray(landscape.global_minima, points.dtype)
  return jnp.min(jnp.linalg.norm(points[..., None, :] - minima, axis=-1), axis=-1)


def success_fraction(landscape, settings, sweep, steps) -> np.ndarray:
  """Fraction of a grid of starts reaching a global minimum, per (β, learning rate).

  One jitted, vmapped program over betas x learning rates x starts.
  """
  (x0, x1), (y0, y1) = landscape.window
  side = sweep["starts_per_side"]
  xs, ys = np.meshgrid(np.linspace(x0, x1, side + 2)[1:-1], np.linspace(y0, y1, side + 2)[1:-1])
  starts = jnp.asarray(np.stack([xs.ravel(), ys.ravel()], axis=1), jnp.float32)
  betas = jnp.asarray(sweep["betas"], jnp.float32)
  rates = settings["learning_rate"] * jnp.asarray(sweep["learning_rate_factors"], jnp.float32)

  def reached(beta, lr, start):
    path = run_on_landscape(landscape, mj.momentum(lr, beta, ema=False), start, steps)
    return distance_to_global(landscape, path[-1]) < sweep["tolerance"]

  per_start = jax.vmap(reached, in_axes=(None, None, 0))
  grid = jax.jit(jax.vmap(jax.vmap(per_start, in_axes=(None, 0, None)), in_axes=(0, None, None)))
  return np.asarray(jnp.mean(grid(betas, rates, starts), axis=-1))


def run(study: st.Study, out_dir: str) -> pd.DataFrame:
  """Each landscape's paths and success fractions; the table, summary and two figures."""
  os.makedirs(out_dir, exist_ok=True)
  config = study.settings
  rows, paths, fractions = [], {}, {}
  for name, settings in config["landscapes"].items():
    landscape = get_landscape(name)
    steps = settings["steps"]
    paths[name] = {}
    for label, tx in contenders(config, settings).items():
      path = np.asarray(run_on_landscape(landscape, tx, steps=steps))
      paths[name][label] = path
      rows.append({"landscape": name, "optimizer": label, "steps": steps,
                   "final_x": path[-1, 0], "final_y": path[-1, 1],
                   "final_value": float(landscape.value(path[-1])),
                   "distance_to_global_minimum": float(distance_to_global(landscape, path[-1]))})
    fractions[name] = success_fraction(landscape, settings, config["success"], steps)
  table = pd.DataFrame(rows)
  with atomic_path(os.path.join(out_dir, "results.csv")) as path:
    table.to_csv(path, index=False)
  atomic_write_text(os.path.join(out_dir, "summary.md"), summarise(table, fractions, config))
  plot_trajectories(config, paths, out_dir)
  plot_fractions(config, fractions, out_dir)
  return table


def summarise(table: pd.DataFrame, fractions: dict[str, np.ndarray], config) -> str:
  lines = ["| landscape | optimizer | distance to the global minimum | final value |",
           "|---|---|---|---|"]
  for row in table.itertuples():
    lines.append(f"| {row.landscape} | {row.optimizer} | {row.distance_to_global_minimum:.3g} | "
                 f"{row.final_value:.4g} |")
  sweep = config["success"]
  lines += ["", "Fraction of starting points reaching a global minimum, at the landscape's "
            "learning rate (factor 1):", "",
            "| landscape | " + " | ".join(f"β={b:g}" for b in sweep["betas"]) + " |",
            "|---|" + "---|" * len(sweep["betas"])]
  one = sweep["learning_rate_factors"].index(1.0)
  for name, fraction in fractions.items():
    lines.append(f"| {name} | " + " | ".join(f"{f:.2f}" for f in fraction[:, one]) + " |")
  return "\n".join(lines) + "\n"


def _panels(count: int, width: float, height: float):
  """A figure of ``count`` panels of ``width x height`` inches, three a row; and their axes."""
  from matplotlib.figure import Figure

  columns = min(3, count)
  rows = -(-count // columns)
  fig = Figure(figsize=(width * columns, height * rows), layout="constrained")
  axes = fig.subplots(rows, columns, squeeze=False).ravel()
  for axis in axes[count:]:
    axis.set_visible(False)
  return fig, axes[:count]


def plot_trajectories(config, paths, out_dir: str) -> str:
  names = list(paths)
  fig, axes = _panels(len(names), 5.5, 5)
  for axis, name in zip(axes, names):
    landscape = get_landscape(name)
    (x0, x1), (y0, y1) = landscape.window
    xs, ys = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 200))
    values = np.asarray(landscape.value(np.stack([xs, ys], axis=-1)))
    axis.contour(xs, ys, values, levels=30, cmap="Greys", linewidths=0.6)
    for label, path in paths[name].items():
      axis.plot(path[:, 0], path[:, 1], marker=".", markersize=2, linewidth=1, label=label)
    axis.scatter(*landscape.global_minima.T, marker="*", s=150, color="gold",
                 edgecolor="black", zorder=5, label="global minimum")
    if len(landscape.local_minima):
      axis.scatter(*landscape.local_minima.T, marker="o", s=60, facecolor="none",
                   edgecolor="red", zorder=5, label="local minimum")
    axis.set_xlim(x0, x1)
    axis.set_ylim(y0, y1)
    axis.set_xlabel("x")
    axis.set_ylabel("y")
    lr = config["landscapes"][name]["learning_rate"]
    axis.set_title(f"{name} ({len(next(iter(paths[name].values()))) - 1} steps, lr={lr:g})",
                   fontsize=10)
    axis.legend(fontsize=7, loc="best")
  return str(save_figure(fig, os.path.join(out_dir, "trajectories.png")))


def plot_fractions(config, fractions, out_dir: str) -> str:
  sweep = config["success"]
  names = list(fractions)
  fig, axes = _panels(len(names), 4.6, 4.2)
  for axis, name in zip(axes, names):
    image = axis.imshow(fractions[name], origin="lower", vmin=0, vmax=1, cmap="viridis",
                        aspect="auto")
    lr = config["landscapes"][name]["learning_rate"]
    axis.set_xticks(range(len(sweep["learning_rate_factors"])),
                    [f"{f * lr:.3g}" for f in sweep["learning_rate_factors"]], rotation=45)
    axis.set_yticks(range(len(sweep["betas"])), [f"{b:g}" for b in sweep["betas"]])
    axis.set_xlabel("learning rate")
    axis.set_ylabel("β (heavy ball; 0 is GD)")
    axis.set_title(name, fontsize=10)
    for (i, j), value in np.ndenumerate(fractions[name]):
      axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                color="white" if value < 0.5 else "black")
  fig.colorbar(image, ax=axes.tolist(),
               label="fraction of starts reaching a global minimum")
  fig.suptitle("Heavy-ball momentum: β x learning rate, 8 x 8 starting points per cell")
  return str(save_figure(fig, os.path.join(out_dir, "success_fraction.png")))


def main(argv: list[str] | None = None) -> None:
  _cli.main(__doc__, "landscapes", SCHEMA, run, argv)


if __name__ == "__main__":
  main()
