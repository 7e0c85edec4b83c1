"""A sweep through the command in two processes of 2 CPU devices each: two hosts, simulated."""

import json
import os
import socket
import subprocess
import sys


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def sweep_on_two_hosts(config: dict, folder, *options: str):
  """Runs ``config`` on two processes into ``folder/out``; ``(out, [(stdout, stderr)] × 2)``.

  Each process must exit 0 (its stderr's tail is the assertion's message).
  """
  path = folder / "regression.yaml"
  path.write_text(json.dumps(config))
  out = folder / "out"
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
  port = _free_port()
  processes = [
    subprocess.Popen(
      [
        sys.executable,
        "-m",
        "momentum_jax",
        "sweep",
        str(path),
        "--out",
        str(out),
        "--quiet",
        *options,
        "--coordinator",
        f"localhost:{port}",
        "--num-processes",
        "2",
        "--process-id",
        str(rank),
      ],
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for rank in (0, 1)
  ]
  outputs = [p.communicate(timeout=300) for p in processes]
  for p, (_, stderr) in zip(processes, outputs):
    assert p.returncode == 0, stderr[-3000:]
  return out, outputs
