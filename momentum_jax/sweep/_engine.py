"""Running a sweep: every configuration of a group in one compiled, vmapped program.

For each optimizer group the grid (times the seeds) becomes arrays of shape
``[K]``; ``jax.vmap`` of the training run (:func:`momentum_jax.train.build_train`)
over them is compiled once, ahead of time, for one chunk shape, and the chunks
run through that one executable. The configuration axis of each chunk is
sharded over every device of a one-axis ``Mesh`` (``"config"``), so the same
code spreads a sweep over the CPU, one or several GPUs, or a TPU slice. The
last chunk is padded with copies of its last configuration, whose results are
dropped, so it needs no second compilation.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import math
import os
import platform
import time
from typing import Any, Mapping

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


def bytes_per_config(problem: problems.Problem, train: TrainConfig) -> int:
  """A deliberately generous estimate of one configuration's memory.

  Parameters, gradients, updates and up to three optimizer buffers (~8 copies
  of the parameters), plus activations and their gradients, taken as 32 floats
  per input value of a batch (a CNN's feature maps are ~16 times its input).
  """
  abstract = nnx.eval_shape(lambda: problem.make_model(nnx.Rngs(0)))
  num_params = sum(x.size for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))
  input_size = math.prod(problem.data.input_shape)
  examples = max(train.batch_size or problem.data.num_train,
                 min(train.eval_batch_size, problem.data.num_val))
  return 4 * (8 * num_params + 32 * examples * input_size)


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


def run(
    config: SweepConfig | str | os.PathLike | Mapping[str, Any],
    out_dir: str | os.PathLike | None = None,
    *,
    chunk_size: int | None = None,
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
  sharding = NamedSharding(mesh, PartitionSpec("config"))
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

  from tqdm.auto import tqdm  # imported late: only a sweep needs it
  total_chunks = sum(math.ceil(len(g.seeds) / sizes[g.spec.label]) for g in groups)
  progress = tqdm(total=total_chunks, disable=quiet, unit="chunk", desc="sweep")
  compile_seconds = run_seconds = 0.0
  compilations = 0
  for group in groups:
    size = sizes[group.spec.label]
    factory = make_optimizer_factory(group.spec, problem, config.train)
    train = build_train(problem, factory, config.train)

    def batched(hyperparameters, keys, train=train):
      outcome = jax.vmap(train)(hyperparameters, jax.vmap(jax.random.key)(keys))
      return outcome.metrics, outcome.diverged_at_step

    abstract = (
        {n: jax.ShapeDtypeStruct((size,), jnp.float32, sharding=sharding) for n in group.values},
        jax.ShapeDtypeStruct((size,), jnp.uint32, sharding=sharding),
    )
    start = time.perf_counter()
    compiled = jax.jit(batched).lower(*abstract).compile()
    compile_seconds += time.perf_counter() - start
    compilations += 1
    k = len(group.seeds)
    chunks = []
    progress.set_description(f"sweep {group.spec.label}")
    for begin in range(0, k, size):
      index = np.minimum(np.arange(begin, begin + size), k - 1)  # pad with the last config
      hyperparameters = {n: _global_array(v[index].astype(np.float32), sharding)
                         for n, v in group.values.items()}
      keys = _global_array(group.seeds[index].astype(np.uint32), sharding)
      start = time.perf_counter()
      metrics, diverged = compiled(hyperparameters, keys)
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
      "timings": {"compile_seconds": compile_seconds, "run_seconds": run_seconds},
      "compilations": compilations,
      "chunk_size": sizes,
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
