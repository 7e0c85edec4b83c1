"""Timing a short training at a few widths: what ``width="measure"`` chooses by."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh

from momentum_jax.sweep._execute import Segments, chunk_inputs, compile_program, train_chunk
from momentum_jax.sweep._plan import Group
from momentum_jax.train import Setup, TrainConfig


def probe_seconds(
  run_for: Callable[[TrainConfig], Setup],
  train: TrainConfig,
  mesh: Mesh,
  steps: int,
  identity: dict[str, Any] | str | None = None,
) -> Callable[[Group, int], float]:
  """``probe(group, width)``: seconds per configuration-step of a short training at ``width``.

  Each candidate trains one batch of ``width`` configurations per device for
  ``steps`` steps, twice (the faster run counts, as the less disturbed by
  other work on the machine), compiling one program per width
  (``identity``: see :func:`compile_program`).
  """
  short = dataclasses.replace(
    train, steps=min(train.steps, steps), log_every=min(train.steps, steps)
  )

  def probe(group: Group, width: int) -> float:
    size = width * mesh.devices.size
    run = run_for(short, group)
    program = compile_program(run, group, width, mesh, size, Segments(1, short), identity=identity)
    inputs = chunk_inputs(group, np.arange(min(size, len(group.seeds))), size, mesh)
    seconds = []
    for _ in range(2):
      begin = time.perf_counter()
      jax.block_until_ready(train_chunk(program, inputs))
      seconds.append(time.perf_counter() - begin)
    return min(seconds) / (size * short.steps)

  return probe
