"""What live logging costs a sweep: the trackers fed per batch against per segment.

One sweep of heavy-ball momentum on the literature's regression (``--configs``
configurations, 800 full-batch steps logged every 10: 80 logs in 8 segments,
one batch) runs, alternated ``--repeats`` times in one process after a warm-up
that compiles its program once:

* ``none``: no hook;
* ``pull only``: an ``on_segment`` that does nothing (the cost of pulling the
  logged metrics from the devices at each boundary);
* ``<tracker> per batch``: :class:`~momentum_jax.report.exports.LiveLog` as
  ``on_rows`` only (every step written when the batch ends);
* ``<tracker> per segment``: also as ``on_segment`` (each boundary's new steps).

It prints the median wall time of each. Run from the repository root (the
trackers' extras installed)::

  PYTHONPATH=. python benchmarks/live_logging.py
  PYTHONPATH=. python benchmarks/live_logging.py --trackers mlflow wandb --configs 32
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from momentum_jax import sweep
from momentum_jax.report import exports


def config(configs: int) -> dict:
  return {
    "name": "live",
    "problem": {"name": "linear_regression"},
    "optimizer": {
      "name": "momentum",
      "ema": False,
      "learning_rate": {"logspace": [1e-3, 0.1, configs // 8]},
      "beta": [0.0, 0.5, 0.9, 0.99],
    },
    "train": {"steps": 800, "log_every": 10},
    "seeds": 2,
  }


def once(swept: dict, kind: str) -> float:
  """Seconds one sweep takes with the hooks ``kind`` names, trackers closed."""
  out = tempfile.mkdtemp()
  live, hooks = None, {}
  if kind == "pull only":
    hooks = {"on_segment": lambda rows: None}
  elif kind != "none":
    tracker, per = kind.split(" per ")
    live = exports.LiveLog(tracker, out, "live")
    hooks = {"on_rows": live, **({"on_segment": live.segment} if per == "segment" else {})}
  begin = time.perf_counter()
  sweep.run(swept, out, quiet=True, **hooks)
  if live is not None:
    live.close(out)
  return time.perf_counter() - begin


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--configs", type=int, default=128, help="a multiple of 8")
  parser.add_argument("--trackers", nargs="+", default=["tensorboard"])
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  os.environ.setdefault("WANDB_SILENT", "true")
  swept = config(args.configs)
  kinds = ["none", "pull only"]
  kinds += [f"{t} per {per}" for t in args.trackers for per in ("batch", "segment")]
  once(swept, "none")  # compiles the program (kept for the runs that follow)
  seconds = {kind: [] for kind in kinds}
  for _ in range(args.repeats):
    for kind in kinds:
      seconds[kind].append(once(swept, kind))
  print(f"{args.configs} configurations x 80 logs, 8 segments; median of {args.repeats}:")
  for kind in kinds:
    print(f"  {kind:26s} {statistics.median(seconds[kind]):6.2f} s")


if __name__ == "__main__":
  main()
