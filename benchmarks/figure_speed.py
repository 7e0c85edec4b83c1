"""Times ``plots.write_figures`` of this checkout against another's, on one sweep's results.

Each timing is a fresh process that imports the checkout's ``momentum_jax.report.plots``
and writes the standard figures of ``--results`` (a sweep's output folder,
e.g. the quickstart's) into a temporary folder: the first call in a process
(what the command pays: fonts, mathtext and so on warm up on it) and the
median of three more. The checkouts alternate, ``--rounds`` times.

Usage::

  python -m momentum_jax sweep configs/quickstart.yaml --out /tmp/qs --quiet
  python benchmarks/figure_speed.py --results /tmp/qs --other /path/to/an/older/export
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

_CHILD = """
import json, sys, tempfile, time
start = time.perf_counter()
from momentum_jax import results
from momentum_jax.report import plots
imported = time.perf_counter() - start
result = results.load_results(sys.argv[1])
times = []
for _ in range(4):
  with tempfile.TemporaryDirectory() as folder:
    start = time.perf_counter()
    written = plots.write_figures(result, folder)
    times.append(time.perf_counter() - start)
print(json.dumps({"import": imported, "first": times[0], "warm": sorted(times[1:])[1],
                  "figures": len(written)}))
"""


def time_tree(tree: Path, results_dir: Path) -> dict[str, float]:
  out = subprocess.run(
    [sys.executable, "-c", _CHILD, str(results_dir)],
    check=True,
    capture_output=True,
    text=True,
    env={**os.environ, "PYTHONPATH": str(tree)},
  )
  return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--results", type=Path, required=True, help="a sweep's output folder")
  parser.add_argument(
    "--other",
    action="append",
    default=[],
    type=Path,
    help="another checkout (or export) to compare with; repeatable",
  )
  parser.add_argument("--rounds", type=int, default=5)
  args = parser.parse_args(argv)
  trees = [HERE, *(p.resolve() for p in args.other)]
  runs = {t: [] for t in trees}
  print("| round | checkout | import s | first write_figures s | warm s | figures | load |")
  print("|---|---|---|---|---|---|---|")
  for round_ in range(1, args.rounds + 1):
    for tree in trees if round_ % 2 else reversed(trees):
      r = time_tree(tree, args.results)
      runs[tree].append(r)
      print(
        f"| {round_} | {tree} | {r['import']:.2f} | {r['first']:.2f} | {r['warm']:.2f} "
        f"| {r['figures']} | {os.getloadavg()[0]:.1f} |",
        flush=True,
      )
  base = statistics.median(r["first"] for r in runs[trees[0]])
  print("\n| checkout | median first s | median warm s | first / first's |")
  print("|---|---|---|---|")
  for tree in trees:
    first = statistics.median(r["first"] for r in runs[tree])
    warm = statistics.median(r["warm"] for r in runs[tree])
    print(f"| {tree} | {first:.2f} | {warm:.2f} | {first / base:.2f} |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
