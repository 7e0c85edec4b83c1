"""Vanishing gradients: per-layer gradient norms of a deep sigmoid MLP, and the cures.

Claim: saturating activations (the sigmoid's derivative is at most 1/4) and
depth multiply small factors through the chain rule, so the early layers of a
deep sigmoid network barely learn; ReLU-family activations, a better
initialisation, BatchNorm, residual connections (and, the literature says,
gradient clipping) cure it. Set-up: ``configs/vanishing_gradients.yaml``: a
10-hidden-layer MLP on the digits, each variant (a run: the base sweep config
with the model's options or the optimizer changed) trained with the same
heavy-ball momentum, seeds vmapped, with ``train.grad_norms`` logging every
layer's gradient norm. Measured: the first/last layer gradient-norm ratio
over training, and the final validation accuracy (mean and spread over seeds).

    python -m experiments.vanishing_gradients [--out DIR] [--quick] [--set KEY.PATH=VALUE]
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from experiments import _cli
import momentum_jax as mj
from momentum_jax import study as st
from momentum_jax import sweep
from momentum_jax.plots import save_figure
from momentum_jax._files import atomic_path, atomic_write_text
from momentum_jax.train import build_train

SCHEMA: dict[str, st.Setting] = {}  # the study is its runs, one per variant


def clipped_momentum(learning_rate, beta, max_norm, ema=False):
  """Heavy-ball momentum after clipping the gradient's global norm to ``max_norm``."""
  return optax.chain(mj.clip_by_global_norm(max_norm), mj.momentum(learning_rate, beta, ema=ema))


def run(study: st.Study, out_dir: str) -> pd.DataFrame:
  """Trains each variant's seeds in one vmapped program; writes tables and the figure.

  A variant's optimizer takes its one configuration (each hyperparameter's
  first value); the seeds' keys are split from key 0, one per seed.
  """
  os.makedirs(out_dir, exist_ok=True)
  rows, curves = [], []
  for label, config in study.runs.items():
    problem = sweep.build_problem(config)
    (spec,) = config.optimizers
    make_optimizer = sweep.make_optimizer_factory(spec, problem, config.train)
    hyperparameters = {k: jnp.float32(v[0]) for k, v in spec.grid.items()}
    keys = jax.random.split(jax.random.key(0), len(config.seeds))
    train_config = config.train
    train = build_train(problem, make_optimizer, train_config)
    result = jax.jit(jax.vmap(train, in_axes=(None, 0)))(hyperparameters, keys)
    layers = result.metrics["grad_norms"]["layers"]
    first = np.asarray(layers[0]["kernel"])                 # [seeds, logs]
    last_hidden = np.asarray(layers[len(config.problem_options["hidden"]) - 1]["kernel"])
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
  _cli.main(__doc__, "vanishing_gradients", SCHEMA, run, argv)


if __name__ == "__main__":
  main()
