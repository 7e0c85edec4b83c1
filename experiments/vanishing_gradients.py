"""Vanishing gradients: per-layer gradient norms of a deep sigmoid MLP, and the cures.

Claim: saturating activations (the sigmoid's derivative is at most 1/4) and
depth multiply small factors through the chain rule, so the early layers of a
deep sigmoid network barely learn; ReLU-family activations, a better
initialisation, BatchNorm, residual connections (and, the literature says,
gradient clipping) cure it. Set-up: ``configs/vanishing_gradients.yaml``: a
10-hidden-layer MLP on the digits, each variant trained with the same
heavy-ball momentum, seeds vmapped, with ``record_grad_norms`` logging every
layer's gradient norm. Measured: the first/last layer gradient-norm ratio
over training, and the final validation accuracy (mean and spread over seeds).

    python -m experiments.vanishing_gradients [--out DIR] [--steps-scale S]
"""

from __future__ import annotations

import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from experiments import _cli
import momentum_jax as mj
from momentum_jax import problems
from momentum_jax.plots import save_figure
from momentum_jax._files import atomic_path, atomic_write_text
from momentum_jax.train import TrainConfig, build_train

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "vanishing_gradients.yaml")


def optimizer_factory(clip: float | None):
  def make(learning_rate, beta):
    tx = mj.momentum(learning_rate, beta, ema=False)
    return tx if clip is None else optax.chain(mj.clip_by_global_norm(clip), tx)
  return make


def run(config: dict[str, Any], out_dir: str, steps_scale: float = 1.0,
        seeds: int | None = None) -> pd.DataFrame:
  os.makedirs(out_dir, exist_ok=True)
  train_options = dict(config["train"])
  log_every = train_options["log_every"]
  train_options["steps"] = max(log_every, int(train_options["steps"] * steps_scale) //
                               log_every * log_every)
  train_config = TrainConfig(**train_options, grad_norms=True)
  keys = jax.random.split(jax.random.key(0), seeds or config["seeds"])
  hyperparameters = {k: jnp.float32(v) for k, v in config["optimizer"].items()}
  rows, curves = [], []
  for label, variant in config["variants"].items():
    variant = dict(variant)
    clip = variant.pop("clip", None)
    problem = problems.get_problem("digits_mlp", hidden=[config["width"]] * config["depth"],
                                   **variant)
    train = build_train(problem, optimizer_factory(clip), train_config)
    result = jax.jit(jax.vmap(train, in_axes=(None, 0)))(hyperparameters, keys)
    layers = result.metrics["grad_norms"]["layers"]
    first = np.asarray(layers[0]["kernel"])                 # [seeds, logs]
    last_hidden = np.asarray(layers[config["depth"] - 1]["kernel"])
    ratio = first / last_hidden
    accuracy = np.asarray(result.metrics["val_accuracy"])
    for seed in range(len(keys)):
      for index, step in enumerate(train_config.logged_steps):
        curves.append({"variant": label, "seed": seed, "step": int(step),
                       "first_layer_grad_norm": first[seed, index],
                       "last_hidden_grad_norm": last_hidden[seed, index],
                       "ratio": ratio[seed, index], "val_accuracy": accuracy[seed, index]})
    rows.append({"variant": label,
                 "ratio_at_start_median": float(np.median(ratio[:, 0])),
                 "ratio_at_end_median": float(np.median(ratio[:, -1])),
                 "val_accuracy_mean": float(accuracy[:, -1].mean()),
                 "val_accuracy_min": float(accuracy[:, -1].min()),
                 "val_accuracy_max": float(accuracy[:, -1].max()),
                 "diverged_seeds": int(np.sum(np.asarray(result.diverged_at_step) >= 0))})
  table = pd.DataFrame(rows)
  curves = pd.DataFrame(curves)
  for name, frame in (("results.csv", table), ("curves.csv", curves)):
    with atomic_path(os.path.join(out_dir, name)) as path:
      frame.to_csv(path, index=False)
  lines = ["| variant | first/last-hidden gradient norm, first log (median) | at the end | "
           "final val accuracy, mean [min, max] over seeds | diverged seeds |",
           "|---|---|---|---|---|"]
  for row in table.itertuples():
    lines.append(f"| {row.variant} | {row.ratio_at_start_median:.2g} | "
                 f"{row.ratio_at_end_median:.2g} | {row.val_accuracy_mean:.3f} "
                 f"[{row.val_accuracy_min:.3f}, {row.val_accuracy_max:.3f}] | "
                 f"{row.diverged_seeds} of {len(keys)} |")
  atomic_write_text(os.path.join(out_dir, "summary.md"), "\n".join(lines) + "\n")
  plot(curves, out_dir)
  return table


def plot(curves: pd.DataFrame, out_dir: str) -> str:
  from matplotlib.figure import Figure

  fig = Figure(figsize=(12, 4.5), layout="constrained")
  ratio_axis, accuracy_axis = fig.subplots(1, 2)
  for variant, group in curves.groupby("variant", sort=False):
    per_step = group.groupby("step")
    line, = ratio_axis.plot(per_step.ratio.median().index, per_step.ratio.median(), label=variant)
    ratio_axis.fill_between(per_step.ratio.min().index, per_step.ratio.min(),
                            per_step.ratio.max(), color=line.get_color(), alpha=0.2)
    accuracy_axis.plot(per_step.val_accuracy.mean().index, per_step.val_accuracy.mean(),
                       color=line.get_color(), label=variant)
  ratio_axis.set_yscale("log")
  ratio_axis.set_xlabel("step")
  ratio_axis.set_ylabel("‖∇ first layer‖ / ‖∇ last hidden layer‖")
  ratio_axis.set_title("Gradient reaching the first layer (median, range over seeds)")
  accuracy_axis.set_xlabel("step")
  accuracy_axis.set_ylabel("validation accuracy (mean over seeds)")
  accuracy_axis.set_title("Does the network learn?")
  accuracy_axis.legend(fontsize=8)
  path = os.path.join(out_dir, "gradient_ratio.png")
  save_figure(fig, path)
  return path


def main(argv: list[str] | None = None) -> None:
  parser = _cli.parser(__doc__, "vanishing_gradients")
  parser.add_argument("--config", default=CONFIG)
  parser.add_argument("--steps-scale", type=float, default=1.0)
  args = parser.parse_args(argv)
  config = _cli.read_config(args.config)
  run(config, args.out, args.steps_scale)
  _cli.print_summary(args.out)


if __name__ == "__main__":
  main()
