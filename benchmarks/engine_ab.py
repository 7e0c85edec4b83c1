"""Times the engine of two checkouts side by side: the same sweep, alternating, in fresh processes.

Each round runs, in a random order, one process per checkout: it gives JAX
one CPU device per core (as the command line does) and runs
``sweep_speed.py``'s digits-MLP sweep (heavy-ball momentum, K
configurations, 300 steps of batch 128, logged every 100) through
``momentum_jax.sweep.run`` twice, and reports the manifest's compile and
training seconds of each. The table gives, per checkout, the median over
rounds, and the ratio of the medians (second checkout over the first) with
the spread of the per-round ratios: the machines are shared and noisy, so
read the ratios; the process's CPU seconds (every thread's) are reported too,
as the measure least disturbed by other work on the machine.

Usage (from the repository root)::

  git worktree add /tmp/before <commit>
  MOMENTUM_JAX_COMPILE_CACHE=off python benchmarks/engine_ab.py /tmp/before . --rounds 5

(the cache off: a checkout with the persistent compilation cache would read its
programs back from the second round on)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
import momentum_jax
from momentum_jax import sweep
sweep.use_cpu_cores()
import numpy as np
k = int(sys.argv[1])
betas = np.linspace(0.0, 0.9, 8).tolist()
config = {"problem": {"name": "digits_mlp", "hidden": [128, 128]},
          "optimizer": {"name": "momentum", "ema": False,
                        "learning_rate": np.geomspace(1e-3, 0.3, k // 8).tolist(), "beta": betas},
          "train": {"steps": 300, "batch_size": 128, "log_every": 100}, "seeds": 1}
out = []
for _ in range(2):
  start, cpu = time.perf_counter(), time.process_time()
  result = sweep.run(config, quiet=True)
  timings = result.manifest["timings"]
  out.append({"compile": timings["compile_seconds"], "train": timings["run_seconds"],
              "total": time.perf_counter() - start, "cpu": time.process_time() - cpu,
              "width": list(result.manifest["execution"]["width"].values())[0]})
print(json.dumps(out))
"""


def _run(tree: str, k: int) -> list[dict]:
  env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
  done = subprocess.run(
    [sys.executable, "-c", CHILD, str(k)],
    env=env,
    check=True,
    capture_output=True,
    text=True,
    cwd=os.path.abspath(tree),
  )
  return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("first")
  parser.add_argument("second")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--k", type=int, default=64)
  args = parser.parse_args()
  trees = [args.first, args.second]
  found = {tree: [] for tree in trees}
  for round_ in range(args.rounds):
    order = random.sample(trees, 2)
    for tree in order:
      found[tree].append(_run(tree, args.k))
    print(
      f"round {round_ + 1}: "
      + ", ".join(
        f"{tree}: train {found[tree][-1][1]['train']:.2f} s, compile "
        f"{found[tree][-1][0]['compile']:.2f} s"
        for tree in trees
      ),
      flush=True,
    )
  print(
    f"\nload average: {os.getloadavg()[0]:.1f}; K = {args.k}; widths "
    f"{[found[t][0][0]['width'] for t in trees]}"
  )
  print("| measure | " + " | ".join(trees) + " | ratio second/first [min-max per round] |")
  print("|---|---|---|---|")
  for name, pick in (
    ("training, 1st run (s)", lambda r: r[0]["train"]),
    ("training, 2nd run (s)", lambda r: r[1]["train"]),
    ("compile (s)", lambda r: r[0]["compile"]),
    ("whole sweep.run, 1st (s)", lambda r: r[0]["total"]),
    # CPU seconds of the process (every thread): the work done,
    # which other work on a shared machine disturbs less than
    # the wall time (compiling included).
    ("CPU seconds, whole sweep.run, 2nd", lambda r: r[1]["cpu"]),
  ):
    medians = [statistics.median(pick(r) for r in found[t]) for t in trees]
    ratios = [pick(b) / pick(a) for a, b in zip(found[trees[0]], found[trees[1]])]
    print(
      f"| {name} | {medians[0]:.3f} | {medians[1]:.3f} | {medians[1] / medians[0]:.3f} "
      f"[{min(ratios):.2f}-{max(ratios):.2f}] |"
    )


if __name__ == "__main__":
  main()
