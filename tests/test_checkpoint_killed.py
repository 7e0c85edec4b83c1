"""The command killed (SIGKILL between or inside chunks, mid-search; Ctrl-C) and resumed
to the uninterrupted results.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from _chunks import _chunk_files, _same_results
from momentum_jax import results, sweep


# Long enough per chunk (~0.1-0.5 s) for a kill to land between chunks.
DIGITS = {
  "problem": {"name": "digits_mlp", "hidden": [32]},
  "optimizer": {
    "name": "momentum",
    "ema": False,
    "learning_rate": {"logspace": [0.003, 0.3, 8]},
    "beta": [0.0, 0.5, 0.9],
  },
  "train": {"steps": 300, "batch_size": 32, "log_every": 50},
  "seeds": 1,
}  # 24 configurations


def _start_the_command(tmp_path, flags: list[str], sweep_config, **pipes):
  """The command sweeping ``sweep_config`` into ``tmp_path/out`` on 2 CPU devices at width 2:
  ``(process, out)``."""
  config = tmp_path / "digits.yaml"
  config.write_text(json.dumps(sweep_config))
  out = tmp_path / "out"
  command = [sys.executable, "-m", "momentum_jax", "sweep", str(config), "--out", str(out)]
  process = subprocess.Popen(
    [*command, "--width", "2", *flags, "--quiet"],
    env=dict(os.environ, JAX_NUM_CPU_DEVICES="2", JAX_PLATFORMS="cpu"),
    **{"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, **pipes},
  )
  return process, out


def _kill_the_command_once(tmp_path, flags: list[str], ready, what: str, sweep_config=DIGITS):
  """Runs DIGITS (or ``sweep_config``) through the command on 2 CPU devices and SIGKILLs it
  once ``ready(out)``.

  Returns the output folder.
  """
  process, out = _start_the_command(tmp_path, flags, sweep_config)
  deadline = time.monotonic() + 240
  try:
    while not ready(out):
      assert process.poll() is None, f"the sweep ended before {what}"
      assert time.monotonic() < deadline, f"not {what} in 240 s"
      time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
  finally:
    process.wait(timeout=60)
  assert process.returncode == -signal.SIGKILL
  return out


@pytest.fixture(scope="module")
def whole_digits() -> results.SweepResult:
  """DIGITS trained uninterrupted at width 2, in this process: what a resume must equal."""
  return sweep.run(DIGITS, quiet=True, width=2)


def test_a_sweep_killed_mid_run_resumes_to_the_uninterrupted_results(tmp_path, whole_digits):
  # Width 2 on 2 CPU devices: chunks of 4, six of them. The resume runs in
  # this process, on its one device: at a pinned width that changes no bit.
  whole = whole_digits
  out = _kill_the_command_once(tmp_path, ["--chunk-size", "4"], _chunk_files, "writing a chunk")
  done = len(_chunk_files(out))
  assert 1 <= done < 6, "killed too late to test a resume"
  assert not (out / "summary.csv").exists()
  resumed = sweep.run(DIGITS, out, quiet=True)
  assert resumed.manifest["execution"]["width"] == {"momentum(ema=false)": 2}
  assert resumed.manifest["checkpoint"]["configs_resumed"] == 4 * done
  assert resumed.manifest["checkpoint"]["configs_trained"] == 24 - 4 * done
  _same_results(whole, resumed)


def _listed(folder, pattern: str) -> list:
  """``folder.glob(pattern)`` while the sweep writes and deletes there: a folder removed as it
  was listed makes it an empty list (the caller polls again)."""
  try:
    return list(folder.glob(pattern))
  except FileNotFoundError:
    return []


def _saved_states(out):
  """The committed Orbax steps under ``out/state/`` (a save in progress is a temporary folder)."""
  return [p for p in _listed(out / "state", "g*/carry/*") if p.name.isdigit()]


def test_a_sweep_killed_inside_a_chunk_resumes_from_its_saved_state(tmp_path, whole_digits):
  # One chunk of 24 at width 2, 300 steps in segments of 50 (six logs of 50:
  # one log each), its state saved after every segment.
  whole = whole_digits
  out = _kill_the_command_once(
    tmp_path, ["--checkpoint-every", "1e-9"], _saved_states, "saving a state"
  )
  assert not _chunk_files(out), "killed too late: the chunk had finished"
  resumed = sweep.run(DIGITS, out, quiet=True)
  (chunk,) = resumed.manifest["checkpoint"]["chunks_resumed_mid_training"]
  assert chunk["configs"] == 24 and 0 < chunk["from_step"] < 300
  assert not _saved_states(out)  # a finished chunk's state is deleted
  _same_results(whole, resumed)


def _saved_state(batch: int, step: int):
  """``ready(out)``: a state saved in that batch or a later one, at that step or later, its
  carry committed by Orbax (the folder of its number)."""

  def ready(out):
    for path in _listed(out / "state", "g*/loop-*.npz"):
      if not (path.parent / "carry" / path.stem.removeprefix("loop-")).is_dir():
        continue
      try:
        with np.load(path) as saved:
          position = json.loads(str(saved["position"]))
      except (OSError, ValueError, KeyError):  # removed as it was read
        continue
      if (position["batch"]["number"], position["step"]) >= (batch, step):
        return True
    return False

  return ready


# DIGITS (300 steps, logged every 50) under three searches that decide as they train, each
# killed where only a state saved mid-batch can resume it: Hyperband in its second bracket,
# PBT between its exploits (after 100 and 200), successive halving over Optuna in its second
# batch of trials (eta 3: one survivor of each batch of 4, at width 1 on one device or two).
KILLED_SEARCHES = {
  "hyperband": (
    {
      "method": "grid",
      "scheduler": {"name": "hyperband", "eta": 3, "min_steps": 50, "metric": "val_loss"},
    },
    _saved_state(1, 1),
  ),
  "pbt": (
    {"method": "pbt", "population": 8, "interval": 100, "fraction": 0.25, "seed": 1},
    _saved_state(0, 150),
  ),
  "optuna_halving": (
    {
      "method": "optuna",
      "trials": 8,
      "batch": 4,
      "seed": 0,
      "scheduler": {"name": "successive_halving", "eta": 3, "min_steps": 100},
    },
    _saved_state(1, 1),
  ),
}


@pytest.mark.parametrize("name", KILLED_SEARCHES)
def test_a_search_sigkilled_mid_batch_resumes_to_the_uninterrupted_results(name, tmp_path):
  search, ready = KILLED_SEARCHES[name]
  optimizer = DIGITS["optimizer"]
  if name != "hyperband":  # searched ranges
    optimizer = {**optimizer, "learning_rate": {"loguniform": [0.003, 0.3]}}
  config = {**DIGITS, "optimizer": optimizer, "search": search}
  out = _kill_the_command_once(
    tmp_path, ["--checkpoint-every", "1e-9"], ready, f"saving {name}'s state mid-batch", config
  )
  resumed = sweep.run(config, out, quiet=True)
  (mid,) = resumed.manifest["checkpoint"]["chunks_resumed_mid_training"]
  assert mid["from_step"] > 0
  whole = sweep.run(config, quiet=True, width=2)
  _same_results(whole, resumed)
  for key in ("scheduler", "search"):
    drop = ("widths", "storage")  # the devices' widths; the in-memory run has no journal
    clean = lambda record: json.loads(  # noqa: E731
      json.dumps(record, default=str),
      object_hook=lambda d: {k: v for k, v in d.items() if k not in drop},
    )
    assert clean(resumed.manifest[key]) == clean(whole.manifest[key]), key


def test_ctrl_c_stops_the_command_without_a_traceback_and_the_sweep_resumes(tmp_path):
  process, out = _start_the_command(
    tmp_path, ["--checkpoint-every", "1e-9"], DIGITS, stderr=subprocess.PIPE, text=True
  )
  deadline = time.monotonic() + 240
  while not _saved_states(out):
    assert process.poll() is None, "the sweep ended before saving a state"
    assert time.monotonic() < deadline, "no state saved in 240 s"
    time.sleep(0.01)
  process.send_signal(signal.SIGINT)
  _, stderr = process.communicate(timeout=120)
  assert process.returncode == 130, stderr
  assert "Traceback" not in stderr
  assert "interrupted (what was saved is kept: run the same command again to resume)" in stderr
  resumed = sweep.run(DIGITS, out, quiet=True)
  assert resumed.manifest["checkpoint"]["chunks_resumed_mid_training"]
