"""``import momentum_jax``: one CPU device per core unless chosen otherwise; submodules on first use."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, optax
    if sys.argv[1] == "late":
      jax.numpy.zeros(1).block_until_ready()  # JAX has started before the import
    import momentum_jax as mj
    loaded = sorted(m for m in ("momentum_jax.sweep", "momentum_jax.problems", "pandas",
                                "sklearn", "matplotlib") if m in sys.modules)
    attributes = [mj.sweep.run.__name__, mj.problems.__name__, mj.data.__name__,
                  mj.models.__name__, mj.train.__name__, mj.results.__name__]
    print(json.dumps([len(jax.devices()), loaded, attributes,
                      mj.sweep.use_cpu_cores is mj.runtime.cpu.use_cpu_cores]))
""")


def _run(case: str, **env: str) -> list:
  clean = {
    k: v
    for k, v in os.environ.items()
    if k not in ("JAX_NUM_CPU_DEVICES", "XLA_FLAGS", "MOMENTUM_JAX_CPU_DEVICES")
  }
  out = subprocess.run(
    [sys.executable, "-c", _SCRIPT, case],
    env={**clean, "JAX_PLATFORMS": "cpu", **env},
    capture_output=True,
    text=True,
    check=True,
    timeout=120,
  )
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_gives_a_device_per_core_and_imports_the_rest_on_first_use():
  devices, loaded, attributes, same = _run("fresh")
  assert devices == len(os.sched_getaffinity(0))
  assert loaded == []  # nothing heavy at import
  assert attributes == [
    "run",
    "momentum_jax.problems",
    "momentum_jax.data",
    "momentum_jax.models",
    "momentum_jax.train",
    "momentum_jax.results",
  ]
  assert same  # sweep.use_cpu_cores is the function the import calls


@pytest.mark.parametrize(
  "case, env, expected",
  [
    ("fresh", {"MOMENTUM_JAX_CPU_DEVICES": "1"}, 1),  # JAX's default kept
    ("late", {}, 1),  # JAX had started: nothing changes, nothing raises
    ("fresh", {"JAX_NUM_CPU_DEVICES": "3"}, 3),  # the user's count is kept
  ],
)
def test_import_keeps_a_count_chosen_otherwise(case, env, expected):
  assert _run(case, **env)[0] == expected


def test_the_command_keeps_one_device_when_asked(tmp_path):
  # MOMENTUM_JAX_CPU_DEVICES=1 holds for the command as for the import.
  config = tmp_path / "tiny.json"
  config.write_text(
    json.dumps(
      {
        "problem": {"name": "linear_regression"},
        "optimizer": {"name": "sgd", "learning_rate": [0.01, 0.1]},
        "train": {"steps": 2, "log_every": 1},
        "seeds": 1,
      }
    )
  )
  clean = {k: v for k, v in os.environ.items() if k not in ("JAX_NUM_CPU_DEVICES", "XLA_FLAGS")}
  subprocess.run(
    [
      sys.executable,
      "-m",
      "momentum_jax",
      "sweep",
      str(config),
      "--out",
      str(tmp_path / "out"),
      "--quiet",
    ],
    capture_output=True,
    text=True,
    check=True,
    timeout=300,
    env={**clean, "JAX_PLATFORMS": "cpu", "MOMENTUM_JAX_CPU_DEVICES": "1"},
  )
  manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
  assert len(manifest["devices"]) == 1
