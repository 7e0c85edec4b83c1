"""Running a sweep: every configuration of a group in one compiled program.

For each optimizer group the grid (times the seeds) becomes arrays of shape
``[K]``. The program that trains a chunk of them is compiled once, ahead of
time, for one chunk shape, and the chunks run through that one executable.
The configuration axis of each chunk is split over every device of a one-axis
``Mesh`` (``"config"``) by ``jax.shard_map``, so the same code spreads a sweep
over the CPU, one or several GPUs, or a TPU slice. The last chunk is padded
with copies of its last configuration, whose results are dropped, so it needs
no second compilation. It is compiled with
:func:`momentum_jax.train.compiler_options` (on a CPU, LLVM at level 2: half
the compile time of XLA's default, and as fast a program).

On each device the shard runs as ``jax.lax.map`` of the training run
(:func:`momentum_jax.train.build_train`) with ``batch_size=width``: ``width``
configurations at a time are ``jax.vmap``-ed, and a scan steps through the
batches. How wide to go depends on the device (see :func:`model_width`): a
GPU wants every configuration at once, while a CPU gains from batching only
until each operation is big enough to spread over its cores and to amortize
its fixed cost. The width is chosen by that model, forced by the caller, or
measured (``width="measure"``), once per group: never from the chunk size,
which is what keeps results bit-identical across chunkings, and, once the
width is pinned, across device counts. On a CPU, :func:`use_cpu_cores` gives
JAX one device per core, so that the shards run side by side.
When every configuration of a group has the same seed, the key is a constant
of the program, so the initialization and the minibatches they share are
computed once per batch, not per configuration.

With an output folder every finished chunk is saved, each process writing
its own devices' rows (:mod:`momentum_jax.sweep._checkpoint`), and a sweep
run again on that folder resumes. A progress bar counts configuration-steps,
advanced from inside the compiled program at each logged step.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import math
import os
import platform
import threading
import time
from typing import Any, Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from momentum_jax import _compile_cache, optim, problems, results
from momentum_jax._cpu import cpu_cores as _cpu_cores
from momentum_jax.sweep import _checkpoint
from momentum_jax.sweep._config import (
    OPTIMIZERS, SCHEDULE_PREFIX, SCHEDULES, ConfigError, OptimizerSpec, SweepConfig, load_config)
from momentum_jax.sweep._grid import product
from momentum_jax.train import (
    TrainConfig, batch_size_error, build_train, compiler_options, steps_per_epoch)

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
  """Bytes one device's batch may use: half a GPU/TPU's memory, a quarter of the host's RAM.

  The host's quarter is shared by its CPU devices. (So the width may depend
  on the number of simulated CPU devices, but only where memory binds it.)
  """
  stats = device.memory_stats() if device.platform != "cpu" else None
  if stats and "bytes_limit" in stats:
    return int(stats["bytes_limit"] * 0.5)
  ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  return int(ram * 0.25 / len(jax.local_devices(backend="cpu")))


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


def model_width(platform: str, num_configs: int, flops: int, cores: int = 1,
                fit: int | None = None, num_devices: int = 1) -> tuple[int, str]:
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
  whole = ("every configuration of the group at once" if num_devices == 1 else
           f"the group split evenly over {num_devices} devices")
  memory = "" if limit == share else f", at most {limit} in memory"
  if platform != "cpu":
    # Unmeasured here (no accelerator at hand): a guess at the work that
    # hides a step's kernel launches, so that sweeps of small models go whole.
    needed = math.ceil(ACCELERATOR_FLOPS_PER_STEP / max(flops, 1))
    if needed >= limit:
      return limit, f"accelerator: {whole}{memory}"
    return needed, (f"accelerator, ~{flops:.2g} FLOPs per step: enough configurations for "
                    f"~{ACCELERATOR_FLOPS_PER_STEP:.0e} FLOPs per batched step")
  # Batching configurations does not raise the arithmetic intensity (each has
  # its own weights): it makes each operation big enough to share the
  # per-operation cost and to split over the device's cores.
  needed = math.ceil(cores * CPU_FLOPS_PER_CORE_STEP / max(flops, 1))
  cpu = f"cpu, {cores} core(s) per device, ~{flops:.2g} FLOPs per step"
  if needed >= limit:
    return limit, f"{cpu}: {whole}{memory}"
  # The nearest width that divides the group needs no padding.
  width = next((w for w in range(needed, min(2 * needed, limit) + 1) if num_configs % w == 0),
               needed)
  return width, (f"{cpu}: enough configurations for ~{CPU_FLOPS_PER_CORE_STEP:.0e} FLOPs "
                 "per core and batched step")


def _cores_per_device() -> int:
  """The process's CPU cores shared out among its CPU devices, at least one each."""
  return max(1, _cpu_cores() // len(jax.local_devices(backend="cpu")))


def choose_chunk_size(num_configs: int, num_devices: int, width: int,
                      requested: int | None = None) -> int:
  """Configurations per chunk: whole batches of ``width`` on every device.

  A chunk is what one call of the compiled program trains, and what a
  checkpoint saves at once; memory is bounded by the width, since each
  device holds only ``width`` configurations' training state at a time.

  Args:
    num_configs: Configurations in the group.
    num_devices: Devices the chunk is split over.
    width: Configurations each device trains at once.
    requested: The caller's chunk size, or ``None`` for up to
      :data:`MAX_CHUNK_PER_DEVICE` per device.

  Returns:
    A multiple of ``width × num_devices``: ``requested`` (or the whole group,
    if smaller) rounded up to one.
  """
  per_device = math.ceil(requested / num_devices) if requested else MAX_CHUNK_PER_DEVICE
  per_device = min(per_device, math.ceil(num_configs / num_devices))
  return max(1, math.ceil(per_device / width)) * width * num_devices


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


def _chunk(group: _Group, indices: np.ndarray, size: int, mesh: Mesh) -> tuple[dict, jax.Array]:
  """The hyperparameters and seeds of the configurations ``indices`` of ``group``.

  Padded to ``size`` with copies of the last one, whose results are dropped.
  """
  sharding = NamedSharding(mesh, PartitionSpec("config"))
  index = np.concatenate([indices, np.repeat(indices[-1:], size - len(indices))])
  hyperparameters = {n: _global_array(v[index].astype(np.float32), sharding)
                     for n, v in group.values.items()}
  return hyperparameters, _global_array(group.seeds[index].astype(np.uint32), sharding)


def _local_rows(tree: Any) -> tuple[np.ndarray, Any]:
  """The rows of a config-sharded output that this process's devices hold.

  Returns their positions in the chunk and the pytree of those rows (every
  row of the chunk on a single host).
  """
  leaves, treedef = jax.tree.flatten(tree)
  start = lambda shard: shard.index[0].start or 0
  order = sorted(leaves[0].addressable_shards, key=start)
  size = leaves[0].shape[0]
  positions = np.concatenate([np.arange(size)[s.index[0]] for s in order])
  rows = []
  for leaf in leaves:
    by_start = {start(s): np.asarray(s.data) for s in leaf.addressable_shards}
    rows.append(np.concatenate([by_start[start(s)] for s in order]))
  return positions, jax.tree.unflatten(treedef, rows)


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
             seed: int | None) -> tuple[jax.stages.Compiled, dict[str, Any]]:
  """Compiles :func:`_program` for a chunk of ``size`` configurations.

  ``names`` are the swept hyperparameters. Compiled with
  :func:`momentum_jax.train.compiler_options` for the mesh's platform,
  through the persistent cache (:func:`momentum_jax._compile_cache.compile`,
  whose record of the compilation comes second).
  """
  sharding = NamedSharding(mesh, PartitionSpec("config"))
  abstract = (
      {n: jax.ShapeDtypeStruct((size,), jnp.float32, sharding=sharding) for n in names},
      jax.ShapeDtypeStruct((size,), jnp.uint32, sharding=sharding),
  )
  options = compiler_options(mesh.devices.flat[0].platform)
  return _compile_cache.compile(jax.jit(_program(train, width, mesh, seed)).lower(*abstract),
                                options)


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
    compiled, _ = _compile(probe, width, mesh, group.values, size, _shared_seed(group))
    inputs = _chunk(group, np.arange(min(size, len(group.seeds))), size, mesh)
    seconds = []
    for _ in range(2):
      start = time.perf_counter()
      jax.block_until_ready(compiled(*inputs))
      seconds.append(time.perf_counter() - start)
    timings[str(width)] = min(seconds) / (size * steps)
  fastest = min(timings, key=timings.get)
  return int(fastest), timings


def _choose_widths(width: int | str | None, problem: problems.Problem, groups: list[_Group],
                   train: TrainConfig, mesh: Mesh, fit: int) -> tuple[dict[str, int], dict]:
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
  execution: dict[str, Any] = {"flops_per_step_estimate": flops, "candidates": {},
                               "reason": {}}
  if width == "measure":
    first = len(groups[0].seeds)
    modelled, _ = model_width(platform, first, flops, cores, fit, num_devices)
    measured, execution["candidates"] = _measure_width(
        problem, groups[0], train, mesh,
        sorted({1, modelled, min(math.ceil(first / num_devices), fit, MAX_CHUNK_PER_DEVICE)}))
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
          f"configuration-step over {PROBE_STEPS} steps")
    elif width is None:
      widths[label], execution["reason"][label] = model_width(
          platform, k, flops, cores, fit, num_devices)
    else:
      widths[label] = min(width, k)
      execution["reason"][label] = "the caller's width" + (
          f", cut to the group's {k} configurations" if width > k else "")
  # Every process must compile the same programs, whatever its own timings or cores.
  agreed = multihost_utils.broadcast_one_to_all(np.array(list(widths.values()), np.int32))
  return dict(zip(widths, (int(w) for w in np.asarray(agreed)))), execution


class _Progress:
  """A progress bar in configuration-steps, advanced from inside the compiled program.

  Each training run calls back (``jax.debug.callback``, see
  :func:`momentum_jax.train.build_train`) at each logged step; under ``vmap``
  one call stands for the whole batch of ``width`` configurations. Calls
  come from XLA's threads, hence the lock. Nothing is printed per step: tqdm
  redraws at most ten times a second.
  """

  def __init__(self, total: int, quiet: bool):
    self.total = total
    self.quiet = quiet
    self.bar = None
    self._done = 0
    self._lock = threading.Lock()

  def start(self) -> None:
    """Shows the bar: after the compilations, so that its rate and ETA are the training's."""
    from tqdm.auto import tqdm  # imported late: only a sweep needs it
    self.bar = tqdm(total=self.total, disable=self.quiet, unit=" config-steps",
                    unit_scale=True, desc="sweep")

  def describe(self, text: str) -> None:
    self.bar.set_description(text)

  def advancer(self, amount: int) -> Callable[[Any], None] | None:
    """The callback for runs batched ``amount / log_every`` at a time (None when quiet)."""
    if self.quiet:
      return None

    def advance(step):
      del step  # the amount is the same at every step
      with self._lock:
        self.bar.update(amount)
    return advance

  def finish_chunk(self, amount: int) -> None:
    """After a chunk of ``amount`` configuration-steps: the exact count, whatever the calls did."""
    self._done += amount
    if not self.quiet:
      jax.effects_barrier()  # no callback of this chunk still in flight
      with self._lock:
        self.bar.update(self._done - self.bar.n)

  def close(self) -> None:
    self.bar.close()


def _barrier(name: str) -> None:
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"momentum_jax.sweep: {name}")


def _open_checkpoint(out_dir, raw_config: dict, versions: dict, overwrite: bool,
                     ) -> _checkpoint.Checkpoint:
  """The output folder's checkpoint, the same view on every process.

  Every process checks the folder (so that all refuse a foreign sweep
  together); process 0 alone clears and writes it; after a barrier the
  others read what it left.
  """
  state = {"fingerprint": _checkpoint.fingerprint(raw_config), "config": raw_config,
           "versions": versions}
  first = jax.process_index() == 0
  checkpoint = _checkpoint.Checkpoint.open(out_dir, state, overwrite=overwrite, write=first)
  _barrier("checkpoint opened")
  if not first:
    checkpoint = _checkpoint.Checkpoint.open(out_dir, state, overwrite=False, write=False)
  return checkpoint


def _merge(rows: list[tuple[np.ndarray, Any, np.ndarray]], num_configs: int) -> dict[str, Any]:
  """Puts chunks' ``(indices, metrics, diverged)`` back in configuration order."""
  indices = np.concatenate([r[0] for r in rows])
  order = np.argsort(indices)
  if not np.array_equal(indices[order], np.arange(num_configs)):
    raise RuntimeError("internal error: a configuration was trained twice or not at all")
  metrics = jax.tree.map(lambda *xs: np.concatenate(xs)[order], *[r[1] for r in rows])
  return {"metrics": metrics, "diverged": np.concatenate([r[2] for r in rows])[order]}


def run(
    config: SweepConfig | str | os.PathLike | Mapping[str, Any],
    out_dir: str | os.PathLike | None = None,
    *,
    chunk_size: int | None = None,
    width: int | str | None = None,
    quiet: bool = False,
    overwrite: bool = False,
) -> results.SweepResult:
  """Runs a sweep and returns (and, with ``out_dir``, writes) its results.

  With ``out_dir``, every finished chunk is saved under ``out_dir/chunks/``
  (see :mod:`momentum_jax.sweep._checkpoint`): run again on the same folder
  and configuration, the sweep resumes where it stopped, and its results
  equal an uninterrupted run's bit for bit. On several processes
  (``jax.distributed.initialize``) each writes its own devices' share and all
  read the merged whole; ``out_dir`` must then be on a file system they
  share, and process 0 writes the tables and figures.

  Results are bit-identical whatever the chunk size and the number of
  devices, for a given width; the width chosen by the model depends on the
  group and on the devices (kind, memory, cores each and number; see
  :func:`model_width`), so pin ``width`` to compare runs on different
  machines bit for bit. A resumed sweep keeps the width it started with.

  It uses the devices JAX has. On a CPU, ``import momentum_jax`` gives JAX
  one device per core unless JAX had started or a count was chosen (see
  :func:`use_cpu_cores`), so the sweep spreads over the cores.

  Args:
    config: A :class:`SweepConfig`, a YAML path, or a dict in the same form.
    out_dir: Where to write ``summary.csv``, ``curves.parquet``,
      ``manifest.json``, the figures and the chunks; nothing is written when
      ``None``.
    chunk_size: Configurations per compiled call and per saved chunk, rounded
      up to a multiple of ``width × devices`` (default: the config's, else up
      to :data:`MAX_CHUNK_PER_DEVICE` per device).
    width: Configurations each device trains at once (``jax.vmap``); the
      rest of its share of a chunk waits in a ``lax.map``. ``None`` chooses
      by :func:`model_width`; ``"measure"`` times a short training at a few
      widths on the first optimizer group and keeps the fastest, compiling
      one extra program per width (so two runs may pick different widths,
      whose results differ in float32 rounding). Cut to the group's size.
    quiet: No progress bar.
    overwrite: Replace the sweep of another config found in ``out_dir``
      instead of refusing.

  Returns:
    A :class:`momentum_jax.results.SweepResult`.

  Raises:
    ConfigError: for an invalid configuration, before anything compiles.
    OutputDirError: if ``out_dir`` holds another config's sweep and not
      ``overwrite``, or a partial sweep whose width differs from ``width``.
  """
  if not isinstance(config, SweepConfig):
    config = load_config(config)
  if chunk_size is not None and (
      isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
    raise ConfigError("chunk_size", f"expected a positive integer, got {chunk_size!r}")
  if width is not None and width != "measure" and (
      isinstance(width, bool) or not isinstance(width, int) or width < 1):
    raise ConfigError("width", f"expected a positive integer or 'measure', got {width!r}")
  try:
    problem = problems.get_problem(config.problem, **config.problem_options)
  except (TypeError, ValueError, FileNotFoundError) as error:  # FileNotFoundError: CIFAR-10
    raise ConfigError("problem", str(error)) from None
  if (error := batch_size_error(problem, config.train.batch_size)) is not None:
    raise ConfigError("train.batch_size", error)

  devices = jax.devices()
  num_devices = len(devices)
  mesh = Mesh(np.array(devices), ("config",))
  per_config = bytes_per_config(problem, config.train)
  budget = _memory_budget(devices[0])
  fit = max(1, budget // per_config)
  versions = _versions()
  raw_config = _jsonable(config.raw)  # as the manifest and the checkpoint record it
  groups = []
  for spec in config.optimizers:
    values, seeds = product(spec.grid, config.seeds)
    groups.append(_Group(spec, values, seeds))
  labels = [g.spec.label for g in groups]

  checkpoint = None
  if out_dir is not None:
    checkpoint = _open_checkpoint(out_dir, raw_config, versions, overwrite)
  start = time.perf_counter()
  if checkpoint is not None and checkpoint.widths is not None:
    widths = checkpoint.widths
    if isinstance(width, int) and any(
        widths[g.spec.label] != min(width, len(g.seeds)) for g in groups):
      raise _checkpoint.OutputDirError(
          f"{out_dir} holds a partial run of this sweep at width {widths}; resume it without "
          "a width (or with the same), or pass --overwrite to start again")
    execution = {"flops_per_step_estimate": flops_per_step(problem, config.train),
                 "candidates": {}, "strategy": "resumed",
                 "reason": {label: f"the width the sweep in {out_dir} started with"
                            for label in labels}}
  else:
    widths, execution = _choose_widths(width, problem, groups, config.train, mesh, fit)
    if checkpoint is not None:
      checkpoint.record_widths(widths, write=jax.process_index() == 0)
  probe_seconds = time.perf_counter() - start if execution["candidates"] else 0.0
  execution["width"] = widths
  execution["compiler_options"] = compiler_options(devices[0].platform)
  execution["shared_seed"] = {g.spec.label: _shared_seed(g) for g in groups}
  requested = chunk_size or config.chunk_size
  sizes = {g.spec.label: choose_chunk_size(len(g.seeds), num_devices, widths[g.spec.label],
                                           requested) for g in groups}

  # What is left to train, chunk by chunk; the same plan on every process.
  plans = []
  for index, group in enumerate(groups):
    finished = checkpoint.finished(index) if checkpoint is not None else np.zeros(0, np.int64)
    todo = np.setdiff1d(np.arange(len(group.seeds)), finished)
    size = sizes[group.spec.label]
    plans.append([todo[i:i + size] for i in range(0, len(todo), size)])
  _barrier("plan read")

  local_share = len(jax.local_devices()) / num_devices
  steps = config.train.steps
  total = sum(len(plan) * sizes[g.spec.label] for g, plan in zip(groups, plans))
  progress = _Progress(round(total * local_share * steps), quiet)
  compile_seconds = run_seconds = 0.0
  compilations = 0
  process = jax.process_index()
  gather = checkpoint is None and jax.process_count() > 1
  executables = {}
  # Per program: its group, the seconds to trace, lower and compile it (of
  # which XLA's compilation or the cache's read), and whether the cache held it.
  programs = []
  for group, plan in zip(groups, plans):
    if plan:
      label = group.spec.label
      on_log = progress.advancer(widths[label] * config.train.log_every)
      factory = make_optimizer_factory(group.spec, problem, config.train)
      train = build_train(problem, factory, config.train, on_log=on_log)
      start = time.perf_counter()
      executables[label], program = _compile(train, widths[label], mesh, group.values,
                                             sizes[label], _shared_seed(group))
      seconds = time.perf_counter() - start
      compile_seconds += seconds
      compilations += 1
      programs.append({"group": label, "compile_seconds": seconds, **program})
  progress.start()
  for index, (group, plan) in enumerate(zip(groups, plans)):
    label, size = group.spec.label, sizes[group.spec.label]
    rows = []
    if plan:
      progress.describe(f"sweep {label}")
    for indices in plan:
      compiled = executables[label]
      inputs = _chunk(group, indices, size, mesh)
      start = time.perf_counter()
      outputs = compiled(*inputs)
      if gather:  # no shared folder to merge through: every process gets everything
        gathered = multihost_utils.process_allgather(outputs, tiled=True)
        positions, (metrics, diverged) = np.arange(size), jax.tree.map(np.asarray, gathered)
      else:
        positions, (metrics, diverged) = _local_rows(outputs)
      run_seconds += time.perf_counter() - start
      keep = positions < len(indices)
      kept = (indices[positions[keep]], jax.tree.map(lambda x: x[keep], metrics), diverged[keep])
      if checkpoint is None:
        rows.append(kept)
      elif keep.any():
        checkpoint.save(index, process, *kept)
      progress.finish_chunk(round(size * local_share * steps))
    if checkpoint is None:
      group.outputs = _merge(rows, len(group.seeds))
  progress.close()
  if checkpoint is not None:
    _barrier("chunks written")
    for index, group in enumerate(groups):
      metrics, diverged = checkpoint.load(index, len(group.seeds))
      group.outputs = {"metrics": metrics, "diverged": diverged}

  trained = sum(len(i) for plan in plans for i in plan)
  manifest = {
      "config": raw_config,
      "name": config.name,
      "problem": problem.name,
      "num_configs": sum(len(g.seeds) for g in groups),
      "steps": steps,
      "versions": versions,
      "devices": [str(d) for d in devices],
      "num_processes": jax.process_count(),
      "timings": {"compile_seconds": compile_seconds, "run_seconds": run_seconds,
                  "probe_seconds": probe_seconds},
      "compilations": compilations,
      "programs": programs,
      "compile_cache": None if (folder := _compile_cache.enable()) is None else str(folder),
      "probe_compilations": len(execution["candidates"]),
      "chunk_size": sizes,
      "execution": execution,
      "memory": {"bytes_per_config_estimate": per_config, "budget_bytes_per_device": budget,
                 "configs_in_budget": fit},
      "checkpoint": None if checkpoint is None else {
          "folder": str(checkpoint.folder), "fingerprint": checkpoint.state["fingerprint"],
          "configs_trained": trained, "configs_resumed": sum(len(g.seeds) for g in groups) -
          trained},
  }
  result = _tables(groups, config.train, manifest)
  if out_dir is not None and process == 0:
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


# What build_train logs for every problem; anything else is the problem's extra_metrics.
_TRAIN_METRICS = ("train_loss", "grad_norm", "val_loss", "val_accuracy", "grad_norms")


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
    # A problem's extra metrics (a landscape's point): where it started and ended.
    extras = [name for name in metrics
              if name not in _TRAIN_METRICS and not name.startswith("start_")]
    for name in extras:
      row[f"start_{name}"] = metrics[f"start_{name}"].astype(np.float64)
      row[f"final_{name}"] = metrics[name][:, -1].astype(np.float64)
    row["diverged"] = diverged_at >= 0
    row["diverged_at_step"] = pd.array(np.where(diverged_at >= 0, diverged_at, 0), dtype="Int64")
    summary = pd.DataFrame(row)
    summary.loc[~summary["diverged"], "diverged_at_step"] = pd.NA
    summaries.append(summary)
    curve = {"config_id": np.repeat(ids, len(logged)), "optimizer": group.spec.label,
             "step": np.tile(logged, k)}
    for name in ("train_loss", "grad_norm", "val_loss", "val_accuracy", *extras):
      if name in metrics:
        curve[name] = metrics[name].reshape(-1).astype(np.float64)
    if "grad_norms" in metrics:  # train.grad_norms: a column per kernel and bias
      for path, norms in optim.named_norms(metrics["grad_norms"]).items():
        curve[f"grad_norm/{path}"] = np.asarray(norms).reshape(-1).astype(np.float64)
    curves.append(pd.DataFrame(curve))
  summary = pd.concat(summaries, ignore_index=True)
  front = ["config_id", "optimizer"]
  hyper = [c for c in summary.columns if c not in front and c not in (
      "seed", *results.METRICS, "diverged", "diverged_at_step")]
  rest = ["seed", *(m for m in results.METRICS if m in summary.columns), "diverged",
          "diverged_at_step"]
  summary = summary[front + hyper + rest]
  return results.SweepResult(summary=summary, curves=pd.concat(curves, ignore_index=True),
                             manifest=manifest)
