"""What the broadcast loss of a published 100-sample regression learns: the flat line.

Claim: one published version of the 100-sample example compares ``y`` of shape
(100, 1) with predictions of shape (100,); the difference broadcasts to a
100 x 100 matrix, whose mean square ``mean_ij (w x_j + b - y_i)^2`` is
minimised by the flat line ``w = 0, b = mean(y)``. Both methods then head for
that same wrong line, which is why that version prints the same results for
both. Set-up: ``configs/broadcast_bug.yaml``: that version's data (``x ~
U[0,1)``, ``y = 2 + 3x + noise``, data seed 0), learning rate, β and steps;
GD and heavy-ball momentum on the broadcast loss from ``w = b = 0``, full
batch. Measured: the fitted ``w`` and ``b`` against ``mean(y)`` (the intended
fit, ``experiments.regression_momentum``, is ``w ≈ 3, b ≈ 2``).

    python -m experiments.broadcast_bug [--out DIR] [--quick] [--set KEY.PATH=VALUE]
"""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from experiments import _cli
from experiments._common import markdown_table, write_summary, write_tables
import momentum_jax as mj
from momentum_jax import problems
from momentum_jax import study as st

SCHEMA = {
  "learning_rate": st.Setting(st.number(positive=True)),
  "beta": st.Setting(st.number(minimum=0, maximum=0.999)),
  "steps": st.Setting(st.integer(minimum=1)),
}


def optimizers(config) -> dict[str, optax.GradientTransformation]:
  """Name -> GD and heavy-ball momentum at the study's learning rate and β."""
  return {
    "gd": mj.sgd(config["learning_rate"]),
    "momentum (heavy ball)": mj.momentum(config["learning_rate"], config["beta"], ema=False),
  }


def broadcast_bug(problem: problems.Problem, tx: optax.GradientTransformation, steps: int):
  """Fits ``w, b`` to the published broadcast loss ``mean((pred[None, :] - y[:, None])**2)``."""
  x = problem.data.x_train[:, 0]
  y = problem.data.y_train[:, None]  # (n, 1) against predictions (n,): an n x n difference

  def loss_fn(p):
    return jnp.mean((p["w"] * x + p["b"] - y) ** 2)

  params, _ = mj.minimize(loss_fn, {"w": jnp.zeros(()), "b": jnp.zeros(())}, tx, steps)
  return float(params["w"]), float(params["b"]), float(loss_fn(params))


def run(study: st.Study, out_dir: str) -> pd.DataFrame:
  """Fits the broadcast loss with each optimizer; writes the table and the summary."""
  os.makedirs(out_dir, exist_ok=True)
  config = study.settings
  problem = problems.get_problem("linear_regression", dataset="uniform")
  rows = []
  for name, tx in optimizers(config).items():
    w, b, loss = broadcast_bug(problem, tx, config["steps"])
    rows.append(
      {
        "optimizer": name,
        "w": w,
        "b": b,
        "final_loss": loss,
        "mean_y": float(np.mean(problem.data.y_train)),
      }
    )
  bugs = pd.DataFrame(rows)
  write_tables(out_dir, {"broadcast_bug.csv": bugs})
  write_summary(
    out_dir,
    [
      "Broadcast loss of the published 100-sample version (y (100, 1) vs predictions (100,)):",
      "",
      markdown_table(
        ["optimizer", "w", "b", "mean(y)"],
        [[r.optimizer, f"{r.w:.4f}", f"{r.b:.4f}", f"{r.mean_y:.4f}"] for r in bugs.itertuples()],
      ),
    ],
  )
  return bugs


def main(argv: list[str] | None = None) -> None:
  _cli.main(__doc__, "broadcast_bug", SCHEMA, run, argv)


if __name__ == "__main__":
  main()
