"""benchmarks/gpu.py --dry-run: every step of the GPU run, tiny, on the CPU, into $OUT."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_dry_run_runs_every_step_and_writes_one_small_file_into_out(tmp_path):
  env = {**os.environ, "OUT": str(tmp_path), "JAX_PLATFORMS": "cpu"}
  subprocess.run(
    [sys.executable, "benchmarks/gpu.py", "--dry-run"],
    cwd=ROOT,
    env=env,
    check=True,
    capture_output=True,
    text=True,
    timeout=600,
  )
  (results,) = tmp_path.iterdir()
  assert results.name == "gpu_results.md" and results.stat().st_size < 16 * 2**20
  text = results.read_text()
  steps = re.findall(r"^## (\w+): (.*), [\d.]+ s$", text, re.M)
  assert steps == [
    (name, "exit status 0") for name in ("tests", "sweeps", "sweep_loops", "widths", "update")
  ]
  for sweep in ("digits_mlp", "digits_cnn", "regression"):
    assert f"## {sweep}: K = 2 configurations" in text
  # torch is no dependency: its rows are there when it is installed (as on the GPU machine).
  torch_rows = 3 if importlib.util.find_spec("torch") is not None else 0
  assert text.count("| (d) torch |") == torch_rows and text.count("| (c) engine |") == 4
  assert "| (b) scan loop |" in text and "(c') engine, measured" in text
  assert "measured rule: ACCELERATOR_FLOPS_PER_STEP" in text
  assert "device-to-device copy" in text and "engine FLOP rate" in text
