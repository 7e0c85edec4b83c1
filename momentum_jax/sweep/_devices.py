"""The devices a sweep runs on: how many configurations each trains at once, and holds.

The width model (:func:`model_width`), the memory budget and estimates, the
chunk size, the CPU cores (see :mod:`momentum_jax.runtime.cpu`) and the measured width
(``width="measure"``). Everything here depends on the devices and the
problem's size, never on hyperparameter values.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable

import jax
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from momentum_jax import problems
from momentum_jax.runtime.cpu import cpu_cores as _cpu_cores
from momentum_jax.train import Setup, TrainableRun, TrainConfig
from momentum_jax.train._flops import examples_per_step, model_flops_per_step, num_params

MAX_CHUNK_PER_DEVICE = 256
# On a CPU a batched training step should do about this many FLOPs per core,
# ~2 ms of work: enough to keep its fixed cost (a few microseconds for each
# of ~150 operations; the minibatch permutation once an epoch) near 10%, and
# no more, so that the batch's activations stay in the cache. Measured on the
# 2-core machine with a device per core (digits MLP 64-128-128-10, batch 128,
# ~2e7 FLOPs a step): widths 2-8 trained at 82-97 GFLOP/s, 16 at 66-77, 32
# at 61-64. (On a single device of 2 cores, widths 8-64 were within noise.)
CPU_FLOPS_PER_CORE_STEP = 1e8
# The same for an accelerator's batched step (a guess; see model_width).
ACCELERATOR_FLOPS_PER_STEP = 1e11
# What a CPU core trains of those batched steps, about (the same measurements:
# 82-97 GFLOP/s over 2 cores at widths 2-8, 61-77 wider).
CPU_TRAINING_FLOPS_PER_CORE_SECOND = 3.5e10
# Training steps a probe of ``width="measure"`` runs at each candidate width.
PROBE_STEPS = 20


def memory_budget(device: jax.Device) -> int:
  """Bytes one device's batch may use: half a GPU/TPU's memory, a quarter of the host's RAM.

  The host's quarter is shared by its CPU devices. (So the width may depend
  on the number of simulated CPU devices, but only where memory binds it.)
  """
  stats = device.memory_stats() if device.platform != "cpu" else None
  if stats and "bytes_limit" in stats:
    return int(stats["bytes_limit"] * 0.5)
  ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  return int(ram * 0.25 / len(jax.local_devices(backend="cpu")))


def bytes_per_config(problem: problems.Problem, train: TrainConfig) -> int:
  """A deliberately generous estimate of one training configuration's working memory.

  Parameters, gradients, updates and up to three optimizer buffers (~8 copies
  of the parameters), plus activations and their gradients, taken as 32 floats
  per input value of a batch (a CNN's feature maps are ~16 times its input).
  Only the ``width`` configurations a device trains at once need it.
  """
  if isinstance(problem, TrainableRun):
    # Its state ~8 times over (the update's temporaries), or what XLA counts a step touching.
    return max(8 * problem.state_bytes(), problem.bytes_per_step())
  input_size = math.prod(problem.data.input_shape)
  examples = max(
    examples_per_step(problem, train), min(train.eval_batch_size, problem.data.num_val)
  )
  return 4 * (8 * num_params(problem) + 32 * examples * input_size)


def state_bytes_per_config(problem: problems.Problem, train: TrainConfig) -> int:
  """A generous estimate of the state one configuration of a chunk keeps between segments.

  The parameters and up to three optimizer buffers (4 copies), twice (the
  segment's input and output, before donation frees one), and the logged
  metrics (at most 8 a log, besides per-layer gradient norms).
  """
  if isinstance(problem, TrainableRun):  # the state twice, and its metrics' buffer
    return 2 * problem.state_bytes() + 4 * 16 * train.num_logs
  leaves = len(jax.tree.leaves(nnx.state(problem.abstract_model(), nnx.Param)))
  per_log = 8 + (leaves if train.grad_norms else 0)
  return 4 * (8 * num_params(problem) + per_log * train.num_logs)


def flops_per_step(problem: problems.Problem, train: TrainConfig) -> int:
  """Estimated FLOPs of one configuration's training step: a Problem's from its parameter
  count (:func:`~momentum_jax.train._flops.model_flops_per_step`), a Trainable's (its
  :class:`~momentum_jax.train.TrainableRun`) counted from its traced step."""
  if isinstance(problem, TrainableRun):
    return problem.flops_per_step()
  return model_flops_per_step(problem, train)


def training_seconds(
  run: Setup | TrainableRun, train: TrainConfig, configurations: int, devices: int, platform: str
) -> float | None:
  """The seconds ``configurations`` are expected to train on ``devices`` CPU devices (None elsewhere).

  Their steps' FLOPs (the run's ``flops_per_step``, as :func:`flops_per_step`
  gives them) at :data:`CPU_TRAINING_FLOPS_PER_CORE_SECOND` a core: an
  estimate within a factor of 2-3 (a step's fixed costs are left out),
  enough to tell seconds from minutes.
  """
  if platform != "cpu":
    return None
  cores = devices * _cores_per_device()
  work = run.flops_per_step() * configurations * train.steps
  return work / (CPU_TRAINING_FLOPS_PER_CORE_SECOND * cores)


def model_width(
  platform: str,
  num_configs: int,
  flops: int,
  cores: int = 1,
  fit: int | None = None,
  num_devices: int = 1,
) -> tuple[int, str]:
  """Configurations to ``vmap`` at once on one device, and why.

  The width depends on the group and on the devices (their kind, memory,
  cores and number), never on the chunk size: XLA may round a batched
  reduction differently at another width (measured: a mean over 1000
  examples differs in the last bit between widths 4 and 8 on the CPU), so a
  width fixed per group is what keeps results bit-identical whatever the
  chunking, and whatever the sharding once the width is pinned. A group that
  needs no more than one batch per device is split evenly over the devices
  rather than padded.

  Args:
    platform: ``jax.Device.platform``: ``"cpu"``, ``"gpu"``, ``"tpu"``, ….
    num_configs: Configurations in the group.
    flops: Estimated FLOPs of one configuration's step (:func:`flops_per_step`).
    cores: CPU cores each device may use (the process's cores shared by its
      CPU devices, at least one).
    fit: Configurations one device's memory budget holds at once.
    num_devices: Devices the group is spread over.

  Returns:
    The width, at most the group's share of one device (and ``fit``), and
    the rule that gave it.
  """
  share = math.ceil(num_configs / num_devices)
  limit = share if fit is None else max(1, min(share, fit))
  whole = (
    "every configuration of the group at once"
    if num_devices == 1
    else f"the group split evenly over {num_devices} devices"
  )
  memory = "" if limit == share else f", at most {limit} in memory"
  if platform != "cpu":
    # Unmeasured here (no accelerator at hand): a guess at the work that
    # hides a step's kernel launches, so that sweeps of small models go whole.
    needed = math.ceil(ACCELERATOR_FLOPS_PER_STEP / max(flops, 1))
    if needed >= limit:
      return limit, f"accelerator: {whole}{memory}"
    return needed, (
      f"accelerator, ~{flops:.2g} FLOPs per step: enough configurations for "
      f"~{ACCELERATOR_FLOPS_PER_STEP:.0e} FLOPs per batched step"
    )
  # Batching configurations does not raise the arithmetic intensity (each has
  # its own weights): it makes each operation big enough to share the
  # per-operation cost and to split over the device's cores.
  needed = math.ceil(cores * CPU_FLOPS_PER_CORE_STEP / max(flops, 1))
  cpu = f"cpu, {cores} core(s) per device, ~{flops:.2g} FLOPs per step"
  if needed >= limit:
    return limit, f"{cpu}: {whole}{memory}"
  # The nearest width that divides the group needs no padding.
  width = next(
    (w for w in range(needed, min(2 * needed, limit) + 1) if num_configs % w == 0), needed
  )
  return width, (
    f"{cpu}: enough configurations for ~{CPU_FLOPS_PER_CORE_STEP:.0e} FLOPs "
    "per core and batched step"
  )


def _cores_per_device() -> int:
  """The process's CPU cores shared out among its CPU devices, at least one each."""
  return max(1, _cpu_cores() // len(jax.local_devices(backend="cpu")))


def choose_chunk_size(
  num_configs: int,
  num_devices: int,
  width: int,
  requested: int | None = None,
  fit: int | None = None,
) -> int:
  """Configurations per chunk: whole batches of ``width`` on every device.

  A chunk is what the compiled segments train from the first step to the
  last, and what a checkpoint saves at once. Each device keeps its share's
  state between segments (see :func:`state_bytes_per_config`), and trains
  ``width`` of them at a time.

  Args:
    num_configs: Configurations in the group.
    num_devices: Devices the chunk is split over.
    width: Configurations each device trains at once.
    requested: The caller's chunk size, or ``None`` for up to
      :data:`MAX_CHUNK_PER_DEVICE` per device.
    fit: Configurations whose state one device's memory holds; ``None``: no bound.

  Returns:
    A multiple of ``width × num_devices``: ``requested`` (or the whole group,
    if smaller) rounded up to one.
  """
  per_device = math.ceil(requested / num_devices) if requested else MAX_CHUNK_PER_DEVICE
  per_device = min(per_device, math.ceil(num_configs / num_devices))
  if fit is not None and requested is None:
    per_device = min(per_device, max(width, fit // width * width))
  return max(1, math.ceil(per_device / width)) * width * num_devices


def choose_widths(
  width: int | str | None,
  problem: problems.Problem,
  groups: list,
  train: TrainConfig,
  mesh: Mesh,
  fit: int,
  probe: Callable[[Any, int], float],
) -> tuple[dict[str, int], dict]:
  """The width of each group, and the manifest's ``execution`` entry that says why.

  ``execution`` holds the strategy (``"model"``, ``"measured"`` or
  ``"forced"``), each group's reason, the FLOPs estimate, and the candidates'
  seconds per configuration-step when measured (on the first group only;
  the others take the same width, cut to their size).
  """
  flops = flops_per_step(problem, train)
  platform = mesh.devices.flat[0].platform
  num_devices = mesh.devices.size
  cores = _cores_per_device() if platform == "cpu" else 1
  execution: dict[str, Any] = {"flops_per_step_estimate": flops, "candidates": {}, "reason": {}}
  if width == "measure":
    first = len(groups[0].seeds)
    modelled, _ = model_width(platform, first, flops, cores, fit, num_devices)
    candidates = sorted(
      {1, modelled, min(math.ceil(first / num_devices), fit, MAX_CHUNK_PER_DEVICE)}
    )
    # Seconds per configuration-step of a short training (probe) at each width.
    timings = {str(w): probe(groups[0], w) for w in candidates}
    measured = int(min(timings, key=timings.get))
    execution["candidates"] = timings
    execution["strategy"] = "measured"
  else:
    execution["strategy"] = "model" if width is None else "forced"
  widths = {}
  for group in groups:
    k, label = len(group.seeds), group.spec.label
    if width == "measure":
      widths[label] = min(measured, k)
      execution["reason"][label] = (
        f"the fastest candidate on {groups[0].spec.label}, in seconds per "
        f"configuration-step over {PROBE_STEPS} steps"
      )
    elif width is None:
      widths[label], execution["reason"][label] = model_width(
        platform, k, flops, cores, fit, num_devices
      )
    else:
      widths[label] = min(width, k)
      execution["reason"][label] = "the caller's width" + (
        f", cut to the group's {k} configurations" if width > k else ""
      )
  # Every process must compile the same programs, whatever its own timings or cores.
  agreed = multihost_utils.broadcast_one_to_all(np.array(list(widths.values()), np.int32))
  return dict(zip(widths, (int(w) for w in np.asarray(agreed)))), execution


def memory(problem: problems.Problem, train: TrainConfig, mesh: Mesh) -> dict[str, int]:
  """The memory budget of a device and how many configurations it trains, and holds, in it."""
  budget = memory_budget(mesh.devices.flat[0])
  per_config = bytes_per_config(problem, train)
  return {
    "bytes_per_config_estimate": per_config,
    "budget_bytes_per_device": budget,
    "configs_in_budget": max(1, budget // per_config),
    "configs_held_per_device": max(1, budget // state_bytes_per_config(problem, train)),
  }
