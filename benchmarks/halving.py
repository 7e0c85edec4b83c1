"""Successive halving against the full-budget sweep, at the same configurations.

On the digits MLP (64-128-128-10, minibatches of 128), ``--samples``
quasi-random configurations of heavy-ball momentum (learning rate × β) and
of Adam (learning rate × b1) are swept twice per search seed: every one
trained for ``--steps`` steps, and with ``search: {scheduler: {name:
successive_halving, eta: 3, min_steps: --min-steps, metric: val_loss}}``.
Each search seed (0, 1, 2) is also the training seed. For each it prints
the configuration-steps and wall time (compilation included; training
alone, the manifest's ``run_seconds``, in brackets) of both, the
full sweep's best validation accuracy, the halving's winner's (the best by
validation accuracy of those that ran to the end: its metrics equal the
full sweep's for the same configuration, bit for bit at the same width) and
where that winner ranks in the full sweep. Run from the repository root::

  PYTHONPATH=. python benchmarks/halving.py
"""

from __future__ import annotations

import argparse
import os
import time

from momentum_jax import sweep

SPACES = {
  "momentum": {
    "name": "momentum",
    "ema": False,
    "learning_rate": {"loguniform": [1e-3, 1.0]},
    "beta": {"uniform": [0.0, 0.99]},
  },
  "adam": {
    "name": "adam",
    "learning_rate": {"loguniform": [1e-4, 1e-1]},
    "b1": {"uniform": [0.0, 0.99]},
  },
}


def _config(optimizer: str, seed: int, args, halving: bool) -> dict:
  search = {"method": "quasirandom", "samples": args.samples, "seed": seed}
  if halving:
    search["scheduler"] = {
      "name": "successive_halving",
      "eta": args.eta,
      "min_steps": args.min_steps,
      "metric": "val_loss",
    }
  return {
    "problem": {"name": "digits_mlp", "hidden": [128, 128]},
    "optimizer": SPACES[optimizer],
    "train": {"steps": args.steps, "batch_size": 128, "log_every": args.log_every},
    "seeds": [seed],
    "search": search,
  }


def _timed(config: dict):
  begin = time.perf_counter()
  result = sweep.run(config, quiet=True)
  return result, time.perf_counter() - begin


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--samples", type=int, default=81)
  parser.add_argument("--steps", type=int, default=270)
  parser.add_argument("--log-every", type=int, default=10)
  parser.add_argument("--min-steps", type=int, default=30)
  parser.add_argument("--eta", type=int, default=3)
  parser.add_argument("--seeds", type=int, default=3)
  args = parser.parse_args()
  sweep.use_cpu_cores()
  start = time.perf_counter()
  print(
    f"digits MLP 64-128-128-10, batch 128, {args.samples} quasi-random configurations, "
    f"{args.steps} steps; successive halving eta {args.eta}, min_steps {args.min_steps}, "
    f"ranked by val_loss; load average {os.getloadavg()[0]:.1f}\n"
  )
  print(
    "| optimizer | seed | config-steps full | halving | ratio | rung sizes (widths) | wall "
    "s full (training) | halving (training; programs) | best val acc full | halving winner "
    "| gap pp | winner's rank in full |"
  )
  print("|---|---|---|---|---|---|---|---|---|---|---|---|")
  ratios, gaps = [], []
  for optimizer in SPACES:
    for seed in range(args.seeds):
      full, full_seconds = _timed(_config(optimizer, seed, args, halving=False))
      halved, halved_seconds = _timed(_config(optimizer, seed, args, halving=True))
      record = halved.manifest["scheduler"]
      ranked = full.summary[~full.summary["diverged"]].sort_values(
        ["val_accuracy", "config_id"], ascending=[False, True], kind="stable"
      )
      finished = halved.summary[halved.summary["stopped_at_step"] == args.steps]
      winner = finished.sort_values(
        ["val_accuracy", "config_id"], ascending=[False, True], kind="stable"
      ).iloc[0]
      best = float(ranked["val_accuracy"].iloc[0])
      rank = 1 + int((ranked["val_accuracy"] > winner["val_accuracy"]).sum())
      gap = 100 * (best - float(winner["val_accuracy"]))
      ratio = record["config_steps"] / record["config_steps_full"]
      ratios.append(ratio)
      gaps.append(gap)
      (bracket,) = next(iter(record["groups"].values()))
      rungs = ", ".join(f"{n} ({w})" for n, w in zip(bracket["sizes"], bracket["widths"]))
      training = [r.manifest["timings"]["run_seconds"] for r in (full, halved)]
      print(
        f"| {optimizer} | {seed} | {record['config_steps_full']} | {record['config_steps']} "
        f"| {ratio:.3f} | {rungs} | {full_seconds:.1f} ({training[0]:.1f}) | "
        f"{halved_seconds:.1f} ({training[1]:.1f}; {halved.manifest['compilations']}) | "
        f"{100 * best:.2f} | "
        f"{100 * float(winner['val_accuracy']):.2f} | {gap:.2f} | {rank} of "
        f"{len(full.summary)} |",
        flush=True,
      )
  print(
    f"\nconfig-steps ratio at most {max(ratios):.3f} (target <= 1/3); gap at most "
    f"{max(gaps):.2f} pp (target <= 0.5); {time.perf_counter() - start:.0f} s, load "
    f"average {os.getloadavg()[0]:.1f}"
  )


if __name__ == "__main__":
  main()
