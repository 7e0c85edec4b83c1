"""Everything the engine needs measured on a GPU, in one command and one results file.

On a machine with one GPU (jax with CUDA, flax, optax, chex, pandas, pyarrow,
matplotlib, scikit-learn and torch installed), from the repository root::

  PYTHONUNBUFFERED=1 PYTHONPATH=. python3 benchmarks/gpu.py

runs, each step in a process of its own with a time limit, within
:data:`BUDGET_SECONDS` (8 minutes) in all:

1. ``tests``: the test suite's fast subset (:data:`FAST_TESTS`) on the GPU;
2. ``sweep_*``: ``benchmarks/sweep_speed.py`` on the digits MLP and the
   digits CNN at K = 1024 and on the regression at K = 4096: the engine
   (and its ``width="measure"`` candidates) against the per-configuration
   scan loop and a ``torch.optim`` loop on the GPU (those two timed on 32 of
   the K configurations and scaled), with the engine's FLOP rate against the
   same run's 8192×8192 float32 matmul;
3. ``widths``: the engine at forced widths on each of the three problems,
   the seconds per configuration-step at each, and the FLOPs per batched step
   past which a wider batch gains less than 10%: the measured rule to put in
   place of the guessed ``ACCELERATOR_FLOPS_PER_STEP``;
4. ``update``: ``benchmarks/update_speed.py`` on 50M parameters, Adam: mj,
   optax and torch's fused Adam on the GPU, in GB/s against the measured
   device-to-device copy.

It writes one Markdown file, ``gpu_results.md``, into ``$OUT`` when that is
set (what comes back from a device machine), else into the current folder
(or ``--out``): the machine, the versions, and each step's command, time,
exit status and output (each step's output cut to its last 200 kB, so the
file stays far below 16 MiB). A step that fails or runs out of time is
recorded as such and the next one runs. The compilation cache is off
throughout: the compile times are a cold start's.

``--dry-run`` runs every step at tiny sizes on the CPU, two steps at a time,
each code path once (the tests collected, not run; the engine and torch on the three sweeps in
one process; the scan loop and ``width="measure"`` on the regression; the
widths on the regression), so that no code path meets its first error on the
GPU's time: ``tests/test_gpu_script.py`` does so.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

BUDGET_SECONDS = 480
OUTPUT_LIMIT = 200_000  # characters of each step's output kept
FAST_TESTS = [
  "tests/test_optax_equivalence.py",
  "tests/test_hyperparameters.py",
  "tests/test_schedules.py",
  "tests/test_monitoring.py",
  "tests/test_composition.py",
  "tests/test_train.py",
  "tests/test_sweep.py",
  "tests/test_sweep_width.py",
  "tests/test_torch_reference.py",
  "tests/test_torch_schedules.py",
]
WIDTHS = (8, 32, 128, 512)
# Widths whose throughput is within this factor of the best count as saturated.
SATURATED = 1.1


def _steps(dry_run: bool) -> list[tuple[str, list[str], int]]:
  """``(name, command, seconds allowed)`` of each step, full or tiny."""
  python = sys.executable
  if dry_run:  # each code path once, as cheaply as it goes
    tiny = [
      "--k",
      "2",
      "--steps",
      "4",
      "--loop-sample",
      "1",
      "--matmul-size",
      "128",
      "--torch-device",
      "cpu",
    ]
    return [
      (
        "tests",
        [python, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider", *FAST_TESTS],
        120,
      ),
      (
        "sweeps",
        [
          python,
          "benchmarks/sweep_speed.py",
          "--only",
          "digits_mlp,digits_cnn,regression",
          *tiny,
          "--contestants",
          "c,d",
        ],
        240,
      ),
      (
        "sweep_loops",
        [
          python,
          "benchmarks/sweep_speed.py",
          "--only",
          "regression",
          *tiny,
          "--contestants",
          "b,c",
          "--measure",
        ],
        120,
      ),
      (
        "widths",
        [
          python,
          __file__,
          "--widths",
          "--k",
          "2",
          "--train-steps",
          "2",
          "--width-list",
          "2",
          "--problems",
          "regression",
        ],
        120,
      ),
      (
        "update",
        [
          python,
          "benchmarks/update_speed.py",
          "--params",
          "100000",
          "--only",
          "adam",
          "--repeats",
          "3",
          "--bandwidth",
          "--torch-device",
          "cpu",
        ],
        120,
      ),
    ]
  sweep = [
    "--loop-sample",
    "32",
    "--matmul-size",
    "8192",
    "--contestants",
    "b,c,d",
    "--measure",
    "--torch-device",
    "cuda",
  ]
  return [
    (
      "tests",
      [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=15", *FAST_TESTS],
      120,
    ),
    (
      "sweep_digits_mlp",
      [python, "benchmarks/sweep_speed.py", "--only", "digits_mlp", "--k", "1024", *sweep],
      70,
    ),
    (
      "sweep_digits_cnn",
      [python, "benchmarks/sweep_speed.py", "--only", "digits_cnn", "--k", "1024", *sweep],
      80,
    ),
    (
      "sweep_regression",
      [python, "benchmarks/sweep_speed.py", "--only", "regression", "--k", "4096", *sweep],
      60,
    ),
    (
      "widths",
      [
        python,
        __file__,
        "--widths",
        "--k",
        "512",
        "--train-steps",
        "100",
        "--width-list",
        ",".join(map(str, WIDTHS)),
      ],
      75,
    ),
    (
      "update",
      [
        python,
        "benchmarks/update_speed.py",
        "--params",
        "50_000_000",
        "--only",
        "adam",
        "--repeats",
        "30",
        "--bandwidth",
        "--torch-device",
        "cuda",
      ],
      45,
    ),
  ]


def _machine() -> str:
  lines = [
    f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
    f"- host: {platform.node()}, {platform.machine()}, {os.cpu_count()} logical CPUs, "
    f"python {platform.python_version()}",
  ]
  if shutil.which("nvidia-smi"):
    smi = subprocess.run(
      [
        "nvidia-smi",
        "--query-gpu=name,memory.total,driver_version,clocks.max.sm",
        "--format=csv,noheader",
      ],
      capture_output=True,
      text=True,
      timeout=30,
    )
    lines.append(f"- nvidia-smi: {smi.stdout.strip() or smi.stderr.strip()}")
  probe = subprocess.run(
    [
      sys.executable,
      "-c",
      "import jax, jaxlib, optax, flax; print(jax.__version__, "
      "jaxlib.__version__, optax.__version__, flax.__version__, jax.devices())",
    ],
    capture_output=True,
    text=True,
    timeout=120,
  )
  lines.append(
    f"- jax, jaxlib, optax, flax, devices: {probe.stdout.strip() or probe.stderr[-500:]}"
  )
  try:
    import torch  # only to report its version

    lines.append(f"- torch {torch.__version__}, cuda available: {torch.cuda.is_available()}")
  except ImportError:
    lines.append("- torch: not installed")
  return "\n".join(lines)


def _run_step(name: str, command: list[str], seconds: float, env: dict[str, str]) -> str:
  print(
    f"[gpu.py] {name}: {' '.join(command)} (at most {seconds:.0f} s)", file=sys.stderr, flush=True
  )
  start = time.perf_counter()
  try:
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds, env=env)
    status, output = f"exit status {done.returncode}", done.stdout + done.stderr
  except subprocess.TimeoutExpired as expired:
    status = f"stopped after its {seconds:.0f} s"
    output = "".join(
      part.decode(errors="replace") if isinstance(part, bytes) else (part or "")
      for part in (expired.stdout, expired.stderr)
    )
  wall = time.perf_counter() - start
  if len(output) > OUTPUT_LIMIT:
    output = (
      f"[... first {len(output) - OUTPUT_LIMIT} characters left out ...]\n" + output[-OUTPUT_LIMIT:]
    )
  print(f"[gpu.py] {name}: {status} in {wall:.0f} s", file=sys.stderr, flush=True)
  return (
    f"## {name}: {status}, {wall:.1f} s\n\n`{' '.join(command)}`\n\n```\n{output.rstrip()}\n```\n"
  )


def run_all(dry_run: bool, out: Path, budget: float) -> Path:
  """Runs every step within ``budget`` seconds and writes the results file ``out``."""
  env = {
    **os.environ,
    "MOMENTUM_JAX_COMPILE_CACHE": "off",
    "PYTHONPATH": os.pathsep.join(
      filter(None, [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")])
    ),
  }
  if dry_run:
    env["JAX_PLATFORMS"] = "cpu"
  deadline = time.perf_counter() + budget
  sections = [f"# benchmarks/gpu.py{' --dry-run' if dry_run else ''}\n\n{_machine()}\n"]
  if dry_run:
    # Each step is one process that mostly compiles on one thread: two at a
    # time use a 2-core machine's second core (the test suite runs this).
    # The real run keeps its steps apart: each one times the device alone.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
      done = [
        pool.submit(_run_step, name, command, seconds, env)
        for name, command, seconds in _steps(dry_run)
      ]
      sections += [step.result() for step in done]
    out.write_text("\n".join(sections))
    return out
  for name, command, seconds in _steps(dry_run):
    left = deadline - time.perf_counter()
    if left < 5:
      sections.append(f"## {name}: not run, the {budget:.0f} s budget was spent\n")
      continue
    sections.append(_run_step(name, command, min(seconds, left), env))
    # Written after every step: a machine taken back mid-run still leaves the file.
    out.write_text("\n".join(sections))
  out.write_text("\n".join(sections))
  return out


# --- the "widths" step ---------------------------------------------------------

_PROBLEMS = {
  "digits_mlp": ({"name": "digits_mlp", "hidden": [128, 128]}, 128),
  "digits_cnn": ({"name": "digits_cnn"}, 128),
  "regression": ({"name": "linear_regression"}, None),
}


def measure_widths(k: int, steps: int, widths: list[int], names: list[str]) -> int:
  """Times the engine at each forced width on each problem; prints a table and the rule."""
  import momentum_jax  # noqa: F401  (the devices, before JAX starts)
  import jax
  from momentum_jax import problems, sweep
  from momentum_jax.sweep import _devices
  from momentum_jax.train import TrainConfig

  print(f"# widths: K = {k}, {steps} steps, devices {jax.devices()}")
  print(
    "| problem | width | FLOPs per config-step (estimate) | FLOPs per batched step "
    "| compile s | run s | s per config-step |"
  )
  print("|---|---|---|---|---|---|---|")
  thresholds = {}
  for name in names:
    problem_config, batch_size = _PROBLEMS[name]
    train = {"steps": steps, "log_every": steps, "batch_size": batch_size}
    flops = _devices.flops_per_step(problems.get_problem(**problem_config), TrainConfig(**train))
    side = max(d for d in range(1, math.isqrt(k) + 1) if k % d == 0)  # a k/side x side grid
    config = {
      "name": f"widths_{name}",
      "problem": problem_config,
      "optimizer": {
        "name": "momentum",
        "ema": False,
        "learning_rate": {"logspace": [1e-3, 0.3, k // side]},
        "beta": {"linspace": [0.0, 0.9, side]},
      },
      "train": train,
      "seeds": 1,
    }
    rates = {}
    for width in widths:
      result = sweep.run(config, quiet=True, width=width)
      timings = result.manifest["timings"]
      configs = result.manifest["num_configs"]
      rates[width] = timings["run_seconds"] / (configs * steps)
      print(
        f"| {name} | {width} | {flops:.3g} | {flops * width:.3g} "
        f"| {timings['compile_seconds']:.2f} | {timings['run_seconds']:.3f} "
        f"| {rates[width]:.3g} |",
        flush=True,
      )
    best = min(rates.values())
    saturated = min(w for w, r in rates.items() if r <= SATURATED * best)
    thresholds[name] = flops * saturated
    print(
      f"{name}: within {SATURATED - 1:.0%} of the best throughput from width {saturated}, "
      f"~{flops * saturated:.2g} FLOPs per batched step"
    )
  print(
    f"\nmeasured rule: ACCELERATOR_FLOPS_PER_STEP ~ {max(thresholds.values()):.2g} (the "
    f"largest of {json.dumps({n: float(f'{t:.3g}') for n, t in thresholds.items()})}; "
    f"the guess is {_devices.ACCELERATOR_FLOPS_PER_STEP:.0e})"
  )
  return 0


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--dry-run",
    action="store_true",
    help="every step at tiny sizes on the CPU (the tests only collected)",
  )
  parser.add_argument(
    "--out",
    default=None,
    help="the results file (default: $OUT/gpu_results.md when OUT is set, else ./gpu_results.md)",
  )
  parser.add_argument(
    "--budget",
    type=float,
    default=BUDGET_SECONDS,
    help=f"seconds for all the steps (default {BUDGET_SECONDS})",
  )
  parser.add_argument("--widths", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--k", type=int, default=512, help=argparse.SUPPRESS)
  parser.add_argument("--train-steps", type=int, default=100, help=argparse.SUPPRESS)
  parser.add_argument("--width-list", default=",".join(map(str, WIDTHS)), help=argparse.SUPPRESS)
  parser.add_argument("--problems", default=",".join(_PROBLEMS), help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.widths:
    return measure_widths(
      args.k,
      args.train_steps,
      [int(w) for w in args.width_list.split(",")],
      args.problems.split(","),
    )
  out = Path(args.out or Path(os.environ.get("OUT", ".")) / "gpu_results.md")
  out.parent.mkdir(parents=True, exist_ok=True)
  print(run_all(args.dry_run, out, args.budget))
  return 0


if __name__ == "__main__":
  sys.exit(main())
