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

import numpy as np
import optax
import pandas as pd

from experiments import _cli
from experiments._common import (
  band,
  markdown_table,
  over_seeds,
  panels,
  seed_keys,
  write_figure,
  write_summary,
  write_tables,
)
import momentum_jax as mj
from momentum_jax import study as st
from momentum_jax import sweep

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
    keys = seed_keys(len(config.seeds))
    result = over_seeds(
      problem, make_optimizer, config.train, {k: v[0] for k, v in spec.grid.items()}
    )(keys)
    layers = result.metrics["grad_norms"]["layers"]
    first = np.asarray(layers[0]["kernel"])  # [seeds, logs]
    last_hidden = np.asarray(layers[len(config.problem_options["hidden"]) - 1]["kernel"])
    ratio = first / last_hidden
    accuracy = np.asarray(result.metrics["val_accuracy"])
    curves += [
      {
        "variant": label,
        "seed": seed,
        "step": int(step),
        "first_layer_grad_norm": first[seed, index],
        "last_hidden_grad_norm": last_hidden[seed, index],
        "ratio": ratio[seed, index],
        "val_accuracy": accuracy[seed, index],
      }
      for seed in range(len(keys))
      for index, step in enumerate(config.train.logged_steps)
    ]
    rows.append(
      {
        "variant": label,
        "ratio_at_start_median": float(np.median(ratio[:, 0])),
        "ratio_at_end_median": float(np.median(ratio[:, -1])),
        "val_accuracy_mean": float(accuracy[:, -1].mean()),
        "val_accuracy_min": float(accuracy[:, -1].min()),
        "val_accuracy_max": float(accuracy[:, -1].max()),
        "diverged_seeds": int(np.sum(np.asarray(result.diverged_at_step) >= 0)),
        "seeds": len(keys),
      }
    )
  table, curves = pd.DataFrame(rows), pd.DataFrame(curves)
  write_tables(out_dir, {"results.csv": table, "curves.csv": curves})
  write_summary(
    out_dir,
    [
      markdown_table(
        [
          "variant",
          "first/last-hidden gradient norm, first log (median)",
          "at the end",
          "final val accuracy, mean [min, max] over seeds",
          "diverged seeds",
        ],
        [
          [
            r.variant,
            f"{r.ratio_at_start_median:.2g}",
            f"{r.ratio_at_end_median:.2g}",
            f"{r.val_accuracy_mean:.3f} [{r.val_accuracy_min:.3f}, {r.val_accuracy_max:.3f}]",
            f"{r.diverged_seeds} of {r.seeds}",
          ]
          for r in table.itertuples()
        ],
      )
    ],
  )
  plot(curves, out_dir)
  return table


def plot(curves: pd.DataFrame, out_dir: str) -> str:
  """The first/last-hidden gradient-norm ratio and the validation accuracy over training."""
  fig, (ratio_axis, accuracy_axis) = panels(2, 6, 4.5)
  for variant, group in curves.groupby("variant", sort=False):
    per_step = group.groupby("step")
    line = band(ratio_axis, per_step.ratio, "median", label=variant)
    accuracy_axis.plot(
      per_step.val_accuracy.mean().index,
      per_step.val_accuracy.mean(),
      color=line.get_color(),
      label=variant,
    )
  ratio_axis.set(
    yscale="log",
    xlabel="step",
    ylabel="‖∇ first layer‖ / ‖∇ last hidden layer‖",
    title="Gradient reaching the first layer (median, range over seeds)",
  )
  accuracy_axis.set(
    xlabel="step", ylabel="validation accuracy (mean over seeds)", title="Does the network learn?"
  )
  accuracy_axis.legend(fontsize=8)
  return write_figure(fig, out_dir, "gradient_ratio.png")


def main(argv: list[str] | None = None) -> None:
  _cli.main(__doc__, "vanishing_gradients", SCHEMA, run, argv)


if __name__ == "__main__":
  main()
