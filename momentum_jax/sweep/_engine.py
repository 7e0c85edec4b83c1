"""Running a sweep: every configuration of a group in one compiled program.

For each optimizer group the grid (times the seeds) becomes arrays of shape
``[K]``. The program that trains a chunk of them is compiled once, ahead of
time, for one chunk shape, and the chunks run through that one executable.
The configuration axis of each chunk is split over every device of a one-axis
``Mesh`` (``"config"``) by ``jax.shard_map``, so the same code spreads a sweep
over the CPU, one or several GPUs, or a TPU slice. The last chunk is padded
with copies of its last configuration, whose results are dropped, so it needs
no second compilation.

On each device the shard runs as ``jax.lax.map`` of the training run
(:func:`momentum_jax.train.build_train`) with ``batch_size=width``: ``width``
configurations at a time are ``jax.vmap``-ed, and a scan steps through the
batches. How wide to go depends on the device (see :func:`model_width`): a
GPU wants every configuration at once, while a CPU gains from batching only
until each operation is big enough to spread over its cores and to amortize
its fixed cost. The width is chosen by that model, forced by the caller, or
measured (``width="measure"``). When every configuration of a group has the
same seed, the key is a constant of the program, so the initialization and
the minibatches they share are computed once per batch, not per configuration.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import math
import os
import platform
import time
from typing import Any, Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from momentum_jax import optim, problems, results
from momentum_jax.sweep._config import (
    OPTIMIZERS, SCHEDULE_PREFIX, SCHEDULES, ConfigError, OptimizerSpec, SweepConfig, load_config)
from momentum_jax.sweep._grid import product
from momentum_jax.train import TrainConfig, build_train, steps_per_epoch

MAX_CHUNK_PER_DEVICE = 256
# On a CPU a batched training step should do about this many FLOPs per core,
# ~10 ms of work: then its fixed cost (~1 ms measured on the 2-core machine:
# a few microseconds for each of ~150 operations, and a minibatch draw shared
# by the batch) stays under ~10%, and each operation is big enough for XLA to
# split over the cores. No wider, so that the batch's parameters and
# activations stay as near the cache as they can.
CPU_FLOPS_PER_CORE_STEP = 5e8
# Training steps a probe of ``width="measure"`` runs at each candidate width.
PROBE_STEPS = 20


def make_optimizer_factory(spec: OptimizerSpec, problem: problems.Problem, train: TrainConfig):
  """``make_optimizer(**hyperparameters)`` for one group, schedule included.

  Hyperparameters named ``schedule.<arg>`` go to the schedule, whose
  ``init_value`` is the learning rate; the rest go to the optimizer.
  """
  def make_optimizer(**hyperparameters):
    own = {k: v for k, v in hyperparameters.items() if not k.startswith(SCHEDULE_PREFIX)}
    if spec.schedule is not None:
      arguments = {k[len(SCHEDULE_PREFIX):]: v for k, v in hyperparameters.items()
                   if k.startswith(SCHEDULE_PREFIX)}
      warmup_steps = arguments.pop("warmup_steps", None)
      peak = own["learning_rate"]
      schedule = SCHEDULES[spec.schedule.name](peak, **arguments, **spec.schedule.static)
      if spec.schedule.unit == "epoch":
        schedule = optim.per_epoch(schedule, steps_per_epoch(problem, train.batch_size))
      if warmup_steps is not None:
        schedule = optim.join([optim.linear_warmup(0.0, peak, warmup_steps), schedule],
                              [warmup_steps])
      own["learning_rate"] = schedule
    return OPTIMIZERS[spec.name](**own, **spec.static)
  return make_optimizer


def _memory_budget(device: jax.Device) -> int:
  """Bytes a chunk may use: half a GPU/TPU's memory, a quarter of the host's RAM."""
  stats = device.memory_stats() if device.platform != "cpu" else None
  if stats and "bytes_limit" in stats:
    return int(stats["bytes_limit"] * 0.5)
  return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.25)


def _num_params(problem: problems.Problem) -> int:
  abstract = nnx.eval_shape(lambda: problem.make_model(nnx.Rngs(0)))
  return sum(x.size for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))


def bytes_per_config(problem: problems.Problem, train: TrainConfig) -> int:
  """A deliberately generous estimate of one configuration's memory.

  Parameters, gradients, updates and up to three optimizer buffers (~8 copies
  of the parameters), plus activations and their gradients, taken as 32 floats
  per input value of a batch (a CNN's feature maps are ~16 times its input).
  """
  input_size = math.prod(problem.data.input_shape)
  examples = max(train.batch_size or problem.data.num_train,
                 min(train.eval_batch_size, problem.data.num_val))
  return 4 * (8 * _num_params(problem) + 32 * examples * input_size)


def flops_per_step(problem: problems.Problem, train: TrainConfig) -> int:
  """Estimated FLOPs of one configuration's training step: ``6 · params · examples``.

  A dense layer's forward pass does ``2 · in · out`` FLOPs per example and its
  backward pass twice that. A convolution reuses its weights at every
  position, so for a CNN this undercounts.
  """
  return 6 * _num_params(problem) * (train.batch_size or problem.data.num_train)


def model_width(platform: str, per_device: int, flops: int, cores: int = 1) -> tuple[int, str]:
  """Configurations to ``vmap`` at once on one device, and why.

  Args:
    platform: ``jax.Device.platform``: ``"cpu"``, ``"gpu"``, ``"tpu"``, ….
    per_device: Configurations each device holds in one chunk.
    flops: Estimated FLOPs of one configuration's step (:func:`flops_per_step`).
    cores: CPU cores each CPU device may use.

  Returns:
    The width, at most ``per_device``, and the rule that gave it.
  """
  if platform != "cpu":
    return per_device, "accelerator: every configuration of the chunk at once, to fill it"
  # Batching configurations does not raise the arithmetic intensity (each has
  # its own weights): it makes each operation big enough to share the
  # per-operation cost and to split over the cores.
  needed = math.ceil(cores * CPU_FLOPS_PER_CORE_STEP / max(flops, 1))
  if needed >= per_device:
    return per_device, (f"cpu, {cores} core(s), ~{flops:.2g} FLOPs per step: "
                        "every configuration of the chunk at once")
  # The nearest width that divides the chunk needs no padding.
  width = next((w for w in range(needed, 2 * needed + 1) if per_device % w == 0), needed)
  return width, (f"cpu, {cores} core(s), ~{flops:.2g} FLOPs per step: enough configurations "
                 f"for ~{CPU_FLOPS_PER_CORE_STEP:.0e} FLOPs per core and batched step")


def _cpu_cores() -> int:
  """CPU cores this process may run on (fewer than the machine's when pinned)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not on Linux
    return os.cpu_count() or 1


def choose_chunk_size(num_configs: int, num_devices: int, per_config: int, budget: int) -> int:
  """Configurations per chunk: a multiple of the device count that fits the budget."""
  fits = max(1, budget // max(per_config, 1))
  per_device = min(MAX_CHUNK_PER_DEVICE, max(1, fits // num_devices),
                   math.ceil(num_configs / num_devices))
  return per_device * num_devices


def _versions() -> dict[str, str]:
  names = ("momentum_jax", "jax", "jaxlib", "optax", "flax", "numpy", "pandas")
  found = {}
  for name in names:
    try:
      found[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      found[name] = "not installed"
  found["python"] = platform.python_version()
  return found


def _global_array(host: np.ndarray, sharding: NamedSharding) -> jax.Array:
  # make_array_from_callback builds the same global array on one host or many.
  return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


@dataclasses.dataclass
class _Group:
  spec: OptimizerSpec
  values: dict[str, np.ndarray]
  seeds: np.ndarray
  outputs: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def _chunk(group: _Group, begin: int, size: int, mesh: Mesh) -> tuple[dict, jax.Array]:
  """The hyperparameters and seeds of configurations ``begin … begin + size - 1``.

  Past the group's end it repeats the last configuration (padding).
  """
  sharding = NamedSharding(mesh, PartitionSpec("config"))
  index = np.minimum(np.arange(begin, begin + size), len(group.seeds) - 1)
  hyperparameters = {n: _global_array(v[index].astype(np.float32), sharding)
                     for n, v in group.values.items()}
  return hyperparameters, _global_array(group.seeds[index].astype(np.uint32), sharding)


def _shared_seed(group: _Group) -> int | None:
  """The seed of every configuration of ``group``, or None when they differ."""
  return int(group.seeds[0]) if np.all(group.seeds == group.seeds[0]) else None


def _program(train: Callable, width: int, mesh: Mesh, seed: int | None = None) -> Callable:
  """``(hyperparameters, seeds) -> (metrics, diverged_at_step)`` for a chunk.

  The configuration axis is split over ``mesh``; each device trains its
  share ``width`` configurations at a time. With ``seed`` (every
  configuration has this one), the key is a constant of the program and the
  ``seeds`` argument is ignored: ``jax.vmap`` then leaves the key unbatched,
  so the model's initialization and the minibatch draws, the same for every
  configuration, are computed once per batch instead of once per
  configuration (and compile to smaller code).
  """

  def one(hyperparameters_and_seed):
    hyperparameters, own_seed = hyperparameters_and_seed
    outcome = train(hyperparameters, jax.random.key(own_seed if seed is None else seed))
    return outcome.metrics, outcome.diverged_at_step

  def shard(hyperparameters, seeds):
    # batch_size=1 would vmap over one configuration; None scans them unbatched.
    return jax.lax.map(one, (hyperparameters, seeds), batch_size=width if width > 1 else None)

  # check_vma=False: train's scans start from constants that know nothing of
  # the mesh, and nothing in it communicates across devices, so the check of
  # which values vary over "config" would only reject correct code.
  return jax.shard_map(shard, mesh=mesh, in_specs=PartitionSpec("config"),
                       out_specs=PartitionSpec("config"), check_vma=False)


def _compile(train: Callable, width: int, mesh: Mesh, names: Iterable[str], size: int,
             seed: int | None) -> jax.stages.Compiled:
  """Compiles :func:`_program` for a chunk of ``size`` configurations.

  ``names`` are the swept hyperparameters.
  """
  sharding = NamedSharding(mesh, PartitionSpec("config"))
  abstract = (
      {n: jax.ShapeDtypeStruct((size,), jnp.float32, sharding=sharding) for n in names},
      jax.ShapeDtypeStruct((size,), jnp.uint32, sharding=sharding),
  )
  return jax.jit(_program(train, width, mesh, seed)).lower(*abstract).compile()


def _measure_width(problem: problems.Problem, group: _Group, train: TrainConfig, mesh: Mesh,
                   candidates: list[int]) -> tuple[int, dict[str, float]]:
  """Times a short training of ``group`` at each candidate width; returns the fastest.

  Each candidate trains one batch of ``width`` configurations per device for
  :data:`PROBE_STEPS` steps, twice (the faster run counts, as the less
  disturbed by other work on the machine). Returns the width and the seconds
  per configuration-step of every candidate.
  """
  steps = min(train.steps, PROBE_STEPS)
  probe = build_train(problem, make_optimizer_factory(group.spec, problem, train),
                      dataclasses.replace(train, steps=steps, log_every=steps))
  num_devices = mesh.devices.size
  timings = {}
  for width in candidates:
    size = width * num_devices
    compiled = _compile(probe, width, mesh, group.values, size, _shared_seed(group))
    inputs = _chunk(group, 0, size, mesh)
    seconds = []
    for _ in range(2):
      start = time.perf_counter()
      jax.block_until_ready(compiled(*inputs))
      seconds.append(time.perf_counter() - start)
    timings[str(width)] = min(seconds) / (size * steps)
  fastest = min(timings, key=timings.get)
  return int(fastest), timings


def _choose_width(width: int | str | None, problem: problems.Problem, group: _Group,
                  train: TrainConfig, mesh: Mesh, per_device: int) -> tuple[int, dict[str, Any]]:
  """The width for chunks of ``per_device`` configurations per device, and why.

  Returns the width and the manifest's ``execution`` entry: the strategy
  (``"model"``, ``"measured"`` or ``"forced"``), the reason, the FLOPs
  estimate, and the candidates' seconds per configuration-step when measured.
  """
  flops = flops_per_step(problem, train)
  cores = max(1, _cpu_cores() // len(jax.local_devices()))
  modelled = model_width(mesh.devices.flat[0].platform, per_device, flops, cores)
  execution = {"flops_per_step_estimate": flops, "candidates": {}}
  if width == "measure":
    chosen, execution["candidates"] = _measure_width(
        problem, group, train, mesh, sorted({1, modelled[0], per_device}))
    execution.update(strategy="measured", reason="the fastest candidate, in seconds per "
                     f"configuration-step over {PROBE_STEPS} steps")
  elif width is None:
    chosen = modelled[0]
    execution.update(strategy="model", reason=modelled[1])
  else:
    chosen = width
    execution.update(strategy="forced", reason="the caller's width")
  # Every process must compile the same program, whatever its own timings or cores.
  return int(multihost_utils.broadcast_one_to_all(np.int32(chosen))), execution


def run(
    config: SweepConfig | str | os.PathLike | Mapping[str, Any],
    out_dir: str | os.PathLike | None = None,
    *,
    chunk_size: int | None = None,
    width: int | str | None = None,
    quiet: bool = False,
) -> results.SweepResult:
  """Runs a sweep and returns (and, with ``out_dir``, writes) its results.

  Args:
    config: A :class:`SweepConfig`, a YAML path, or a dict in the same form.
    out_dir: Where to write ``summary.csv``, ``curves.parquet``,
      ``manifest.json`` and the figures; nothing is written when ``None``.
    chunk_size: Configurations per compiled chunk (rounded up to a multiple
      of the device count); by default from the config, else chosen from an
      estimate of memory per configuration. Results do not depend on it.
    width: Configurations each device trains at once (``jax.vmap``); the
      rest of its share of a chunk waits in a ``lax.map``. ``None`` chooses
      by :func:`model_width`; ``"measure"`` times a short training at a few
      widths on the first optimizer group and keeps the fastest, compiling
      one extra program per width. At most the configurations a device
      holds; a chunk is rounded up to a multiple of it. Results do not depend
      on it beyond float32 rounding.
    quiet: No progress bar.

  Returns:
    A :class:`momentum_jax.results.SweepResult`.

  Raises:
    ConfigError: for an invalid configuration, before anything compiles.
  """
  if not isinstance(config, SweepConfig):
    config = load_config(config)
  if chunk_size is not None and (isinstance(chunk_size, bool) or chunk_size < 1):
    raise ConfigError("chunk_size", f"expected a positive integer, got {chunk_size!r}")
  if width is not None and width != "measure" and (
      isinstance(width, bool) or not isinstance(width, int) or width < 1):
    raise ConfigError("width", f"expected a positive integer or 'measure', got {width!r}")
  try:
    problem = problems.get_problem(config.problem, **config.problem_options)
  except (TypeError, ValueError) as error:
    raise ConfigError("problem", str(error)) from None
  if config.train.batch_size is not None and config.train.batch_size > problem.data.num_train:
    raise ConfigError("train.batch_size",
                      f"must be at most the {problem.data.num_train} training examples of "
                      f"{problem.name}, got {config.train.batch_size}")

  devices = jax.devices()
  mesh = Mesh(np.array(devices), ("config",))
  per_config = bytes_per_config(problem, config.train)
  budget = _memory_budget(devices[0]) * len(devices)
  requested = chunk_size or config.chunk_size

  groups = []
  for spec in config.optimizers:
    values, seeds = product(spec.grid, config.seeds)
    groups.append(_Group(spec, values, seeds))
  sizes = {}
  for group in groups:
    k = len(group.seeds)
    size = (math.ceil(requested / len(devices)) * len(devices) if requested
            else choose_chunk_size(k, len(devices), per_config, budget))
    sizes[group.spec.label] = min(size, math.ceil(k / len(devices)) * len(devices))

  start = time.perf_counter()
  chosen, execution = _choose_width(width, problem, groups[0], config.train, mesh,
                                    max(sizes.values()) // len(devices))
  probe_seconds = time.perf_counter() - start if execution["candidates"] else 0.0
  widths = {}
  for group in groups:
    per_device = sizes[group.spec.label] // len(devices)
    widths[group.spec.label] = min(chosen, per_device)
    per_device = math.ceil(per_device / widths[group.spec.label]) * widths[group.spec.label]
    sizes[group.spec.label] = per_device * len(devices)
  execution["width"] = widths
  execution["shared_seed"] = {g.spec.label: _shared_seed(g) for g in groups}

  from tqdm.auto import tqdm  # imported late: only a sweep needs it
  total_chunks = sum(math.ceil(len(g.seeds) / sizes[g.spec.label]) for g in groups)
  progress = tqdm(total=total_chunks, disable=quiet, unit="chunk", desc="sweep")
  compile_seconds = run_seconds = 0.0
  compilations = 0
  for group in groups:
    size = sizes[group.spec.label]
    factory = make_optimizer_factory(group.spec, problem, config.train)
    train = build_train(problem, factory, config.train)
    start = time.perf_counter()
    compiled = _compile(train, widths[group.spec.label], mesh, group.values, size,
                        _shared_seed(group))
    compile_seconds += time.perf_counter() - start
    compilations += 1
    k = len(group.seeds)
    chunks = []
    progress.set_description(f"sweep {group.spec.label}")
    for begin in range(0, k, size):
      inputs = _chunk(group, begin, size, mesh)
      start = time.perf_counter()
      metrics, diverged = compiled(*inputs)
      metrics, diverged = multihost_utils.process_allgather((metrics, diverged), tiled=True)
      run_seconds += time.perf_counter() - start
      valid = min(size, k - begin)
      chunks.append(jax.tree.map(lambda x: np.asarray(x)[:valid], (metrics, diverged)))
      progress.update(1)
    metrics = jax.tree.map(lambda *xs: np.concatenate(xs), *[c[0] for c in chunks])
    group.outputs = {"metrics": metrics,
                     "diverged": np.concatenate([c[1] for c in chunks])}
  progress.close()

  manifest = {
      "config": _jsonable(config.raw),
      "name": config.name,
      "problem": problem.name,
      "num_configs": sum(len(g.seeds) for g in groups),
      "steps": config.train.steps,
      "versions": _versions(),
      "devices": [str(d) for d in devices],
      "num_processes": jax.process_count(),
      "timings": {"compile_seconds": compile_seconds, "run_seconds": run_seconds,
                  "probe_seconds": probe_seconds},
      "compilations": compilations,
      "probe_compilations": len(execution["candidates"]),
      "chunk_size": sizes,
      "execution": execution,
      "memory": {"bytes_per_config_estimate": per_config, "budget_bytes": budget},
  }
  result = _tables(groups, config.train, manifest)
  if out_dir is not None and jax.process_index() == 0:
    from momentum_jax import plots  # matplotlib only when figures are written
    results.write_results(result, out_dir)
    plots.write_figures(result, out_dir)
  return result


def _jsonable(value: Any) -> Any:
  if isinstance(value, Mapping):
    return {str(k): _jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  if isinstance(value, np.generic):
    return value.item()
  return value


def _tables(groups: list[_Group], train: TrainConfig, manifest: dict) -> results.SweepResult:
  summaries, curves = [], []
  next_id = 0
  logged = train.logged_steps
  for group in groups:
    k = len(group.seeds)
    ids = np.arange(next_id, next_id + k)
    next_id += k
    metrics = group.outputs["metrics"]
    diverged_at = group.outputs["diverged"]
    losses = metrics["train_loss"]
    row = {"config_id": ids, "optimizer": group.spec.label}
    row.update({name: values for name, values in group.values.items()})
    row["seed"] = group.seeds
    row["final_loss"] = losses[:, -1].astype(np.float64)
    with np.errstate(invalid="ignore"):
      row["best_loss"] = np.where(
          np.all(np.isnan(losses), axis=1), np.nan,
          np.nanmin(np.where(np.isnan(losses), np.inf, losses), axis=1)).astype(np.float64)
    for name in ("val_loss", "val_accuracy"):
      if name in metrics:
        row[name] = metrics[name][:, -1].astype(np.float64)
    row["diverged"] = diverged_at >= 0
    row["diverged_at_step"] = pd.array(np.where(diverged_at >= 0, diverged_at, 0), dtype="Int64")
    summary = pd.DataFrame(row)
    summary.loc[~summary["diverged"], "diverged_at_step"] = pd.NA
    summaries.append(summary)
    curve = {"config_id": np.repeat(ids, len(logged)), "optimizer": group.spec.label,
             "step": np.tile(logged, k)}
    for name in ("train_loss", "grad_norm", "val_loss", "val_accuracy"):
      if name in metrics:
        curve[name] = metrics[name].reshape(-1).astype(np.float64)
    curves.append(pd.DataFrame(curve))
  summary = pd.concat(summaries, ignore_index=True)
  front = ["config_id", "optimizer"]
  hyper = [c for c in summary.columns if c not in front and c not in (
      "seed", "final_loss", "best_loss", "val_loss", "val_accuracy", "diverged",
      "diverged_at_step")]
  rest = [c for c in summary.columns if c not in front and c not in hyper]
  summary = summary[front + hyper + rest]
  return results.SweepResult(summary=summary, curves=pd.concat(curves, ignore_index=True),
                             manifest=manifest)
