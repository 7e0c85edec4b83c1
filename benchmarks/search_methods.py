"""Grid vs random vs quasi-random vs Optuna's TPE search at equal numbers of configurations.

Heavy-ball momentum on the literature's linear regression, trained for only
``--steps`` full-batch steps so that the choice of the learning rate and β
matters, searched over lr in [1e-3, 1] (log scale) and β in [0, 0.99]:

* ``grid``: ``logspace`` × ``linspace`` with ``n`` values each (n² configurations);
* ``random`` and ``quasirandom``: ``search: {method: ..., samples: n², seed: s}``
  over ``loguniform`` and ``uniform`` ranges of the same ends;
* ``optuna-tpe``: ``search: {method: optuna, sampler: tpe, trials: n², batch:
  --batch, seed: s}`` over the same ranges (needs ``momentum_jax[optuna]``).

Each search runs with search seeds 0, 1, 2 (the grid's points are the same
for every seed; each seed also trains with its own training seed, as each
sampled search does), and the table gives the best configuration's final loss
(lower is better) per seed and their mean. Run from the repository root::

  PYTHONPATH=. python benchmarks/search_methods.py
  PYTHONPATH=. python benchmarks/search_methods.py --methods quasirandom optuna-tpe
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from momentum_jax import report, sweep

LEARNING_RATES = (1e-3, 1.0)
BETAS = (0.0, 0.99)


METHODS = ("grid", "random", "quasirandom", "optuna-tpe")


def _config(method: str, side: int, seed: int, steps: int, batch: int = 8) -> dict:
  if method == "grid":
    space = {
      "learning_rate": {"logspace": [*LEARNING_RATES, side]},
      "beta": {"linspace": [*BETAS, side]},
    }
  else:
    space = {
      "learning_rate": {"loguniform": list(LEARNING_RATES)},
      "beta": {"uniform": list(BETAS)},
    }
  config = {
    "problem": {"name": "linear_regression"},
    "optimizer": {"name": "momentum", "ema": False, **space},
    "train": {"steps": steps, "log_every": steps},
    "seeds": [seed],
  }
  if method.startswith("optuna-"):
    config["search"] = {
      "method": "optuna",
      "sampler": method.split("-", 1)[1],
      "trials": side * side,
      "batch": min(batch, side * side),
      "seed": seed,
      "metric": "final_loss",
    }
  elif method != "grid":
    config["search"] = {"method": method, "samples": side * side, "seed": seed}
  return config


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument(
    "--sides",
    type=int,
    nargs="+",
    default=[4, 8],
    help="grid values per hyperparameter (configurations: side²)",
  )
  parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
  parser.add_argument("--batch", type=int, default=8, help="Optuna's trials asked at once")
  args = parser.parse_args()
  start = time.perf_counter()
  print(
    f"linear_regression, momentum (heavy ball), {args.steps} steps; best final_loss of "
    "each search (lower is better)\n"
  )
  print("| configurations | search | seed 0 | seed 1 | seed 2 | mean |")
  print("|---|---|---|---|---|---|")
  for side in args.sides:
    for method in args.methods:
      best = []
      for seed in range(3):
        result = sweep.run(_config(method, side, seed, args.steps, args.batch), quiet=True)
        top = report.best_configurations(result.summary, n=1)
        best.append(float(top["final_loss_mean"].iloc[0]))
      cells = " | ".join(f"{b:.4g}" for b in best)
      print(f"| {side * side} | {method} | {cells} | {np.mean(best):.4g} |")
  print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
  main()
