"""Times the quickstart command end to end, this checkout against another, alternating.

Each run is ``python -m momentum_jax sweep configs/quickstart.yaml --out NEW
--quiet`` in a fresh process and a fresh output folder, from the checkout's
root (``PYTHONPATH`` set to it). Every checkout first runs once untimed, so
that the timed runs are second runs: a checkout that keeps compiled programs
and data between runs (``MOMENTUM_JAX_COMPILE_CACHE``, ``XDG_CACHE_HOME``,
both pointed at a fresh temporary folder for this script) has them, and one
that does not pays again. Then the checkouts run in turn, ``--rounds`` times.

For each run the table gives the whole command's wall time, the compile and
training seconds from its manifest, and the rest ("outside": imports, data,
setup, tables, figures, interpreter start and exit). The summary gives the
medians and their ratios to the first checkout named.

Usage::

  python benchmarks/quickstart_speed.py --other /path/to/an/older/export --rounds 5
  python benchmarks/quickstart_speed.py             # this checkout alone

On a shared machine read the ratios, and the load average printed with each run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def run_once(tree: Path, scratch: Path, index: int) -> dict[str, float]:
  """One quickstart command in ``tree``; its wall time and its manifest's timings."""
  out = scratch / f"run_{tree.name}_{index}"
  env = {
    **os.environ,
    "PYTHONPATH": str(tree),
    "MOMENTUM_JAX_COMPILE_CACHE": str(scratch / f"xla_{tree.name}"),
    "XDG_CACHE_HOME": str(scratch / f"home_{tree.name}"),
  }
  start = time.perf_counter()
  subprocess.run(
    [
      sys.executable,
      "-m",
      "momentum_jax",
      "sweep",
      "configs/quickstart.yaml",
      "--out",
      str(out),
      "--quiet",
    ],
    cwd=tree,
    env=env,
    check=True,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  wall = time.perf_counter() - start
  timings = json.loads((out / "manifest.json").read_text())["timings"]
  compile_s, train_s = timings["compile_seconds"], timings["run_seconds"]
  return {
    "wall": wall,
    "compile": compile_s,
    "train": train_s,
    "outside": wall - compile_s - train_s,
    "load": os.getloadavg()[0],
  }


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--other",
    action="append",
    default=[],
    type=Path,
    help="another checkout (or export) to compare with; repeatable",
  )
  parser.add_argument("--rounds", type=int, default=5, help="timed runs per checkout")
  args = parser.parse_args(argv)
  trees = [HERE, *(p.resolve() for p in args.other)]
  if len({t.name for t in trees}) < len(trees):
    parser.error("the checkouts need different folder names")
  runs: dict[Path, list[dict[str, float]]] = {t: [] for t in trees}
  with tempfile.TemporaryDirectory(prefix="quickstart_speed_") as scratch:
    scratch = Path(scratch)
    first = {}
    for tree in trees:
      print(f"untimed first run in {tree} ...", file=sys.stderr, flush=True)
      first[tree] = run_once(tree, scratch, 0)
    print("| round | checkout | wall s | compile s | train s | outside s | load |")
    print("|---|---|---|---|---|---|---|")
    for round_ in range(1, args.rounds + 1):
      for tree in trees if round_ % 2 else reversed(trees):
        r = run_once(tree, scratch, round_)
        runs[tree].append(r)
        print(
          f"| {round_} | {tree} | {r['wall']:.2f} | {r['compile']:.2f} | {r['train']:.2f} "
          f"| {r['outside']:.2f} | {r['load']:.1f} |",
          flush=True,
        )
  print(
    "\n| checkout | first run: wall s | compile s | median of the others: wall s "
    "| compile s | train s | outside s | wall / first checkout's | outside / first "
    "checkout's | compile / its first run's |"
  )
  print("|---|---|---|---|---|---|---|---|---|---|")
  median = {t: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for t, rs in runs.items()}
  base = median[trees[0]]
  for tree in trees:
    m = median[tree]
    print(
      f"| {tree} | {first[tree]['wall']:.2f} | {first[tree]['compile']:.2f} "
      f"| {m['wall']:.2f} | {m['compile']:.2f} | {m['train']:.2f} "
      f"| {m['outside']:.2f} | {m['wall'] / base['wall']:.2f} "
      f"| {m['outside'] / base['outside']:.2f} "
      f"| {m['compile'] / first[tree]['compile']:.2f} |"
    )
  return 0


if __name__ == "__main__":
  sys.exit(main())
