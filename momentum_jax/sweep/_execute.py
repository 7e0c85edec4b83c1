"""Executing a plan: one compiled segment program per group, run chunk by chunk.

For each group the program ``(carry, hyperparameters, seeds, first_step,
batches) -> carry`` trains a chunk of configurations for one segment: a few
log intervals of :func:`momentum_jax.train.train_segment`, starting from
``first_step`` (at step 0 it builds the models and optimizers first). The
carry is each configuration's :class:`~momentum_jax.train.TrainState` and
the metrics it has logged so far; it is donated, so it stays on the devices
from segment to segment, in place. The configuration axis is split over
every device of a one-axis ``Mesh`` (``"config"``) by ``jax.shard_map``;
each device trains its share ``width`` configurations at a time
(``jax.lax.map`` of ``jax.vmap``). A chunk's last configurations are padded
with copies of its last one, whose results are dropped, so it needs no
second compilation. It is compiled ahead of time with the options
:func:`momentum_jax.train.chosen_compiler_options` picks for the group's
expected training time (fast-compiling ones where compilation dominates).

A stream's batches for a segment are read on the host and copied to every
device (replicated over the configuration axis) while the previous segment
trains: JAX dispatches a segment and returns at once.
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import Executor, Future
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from momentum_jax.runtime import compile_cache as _compile_cache
from momentum_jax.sweep import _program_cache
from momentum_jax import train as train_lib
from momentum_jax.sweep import _devices
from momentum_jax.sweep._plan import Group
from momentum_jax.train import Setup, TrainableRun, TrainConfig, chosen_compiler_options

# The run's protocol (see momentum_jax.train._trainable): a Problem's or a Trainable's.
Run = Setup | TrainableRun

CONFIG = PartitionSpec("config")
REPLICATED = PartitionSpec()


def global_array(host: np.ndarray, sharding: NamedSharding) -> jax.Array:
  # make_array_from_callback builds the same global array on one host or many.
  return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def chunk_inputs(
  group: Group, indices: np.ndarray, size: int, mesh: Mesh
) -> tuple[dict[str, jax.Array], jax.Array]:
  """The hyperparameters and seeds of the configurations ``indices`` of ``group``.

  Padded to ``size`` with copies of the last one, whose results are dropped.
  """
  values = {n: v[indices] for n, v in group.values.items()}
  return row_inputs(values, group.seeds[indices], size, mesh)


def row_inputs(
  values: dict[str, np.ndarray], seeds: np.ndarray, size: int, mesh: Mesh
) -> tuple[dict[str, jax.Array], jax.Array]:
  """Rows' hyperparameters and seeds as a program's inputs, padded to ``size`` with copies of
  the last row (whose results are dropped)."""
  sharding = NamedSharding(mesh, CONFIG)
  index = np.concatenate([np.arange(len(seeds)), np.full(size - len(seeds), len(seeds) - 1)])
  hyperparameters = {
    n: global_array(np.asarray(v)[index].astype(np.float32), sharding) for n, v in values.items()
  }
  return hyperparameters, global_array(np.asarray(seeds)[index].astype(np.uint32), sharding)


def host_rows(tree: Any, rows: int) -> Any:
  """The first ``rows`` rows of a config-sharded ``tree``, as numpy arrays, on every process."""
  if jax.process_count() > 1:
    tree = multihost_utils.process_allgather(tree, tiled=True)
  else:
    tree = jax.device_get(tree)
  return jax.tree.map(lambda x: np.asarray(x)[:rows], tree)


@dataclasses.dataclass(frozen=True)
class Segments:
  """How a chunk's training is cut: ``count`` segments of ``logs`` log intervals."""

  logs: int
  config: TrainConfig

  @property
  def steps(self) -> int:
    return self.logs * self.config.log_every

  @property
  def count(self) -> int:
    return self.config.num_logs // self.logs


def _one(run: Run, segments: Segments, seed: int | None) -> Callable:
  """One configuration's segment: ``(carry, hyperparameters, seed, first_step, batches) -> carry``.

  With ``seed`` (every configuration has this one), the key is a constant
  of the program and the configuration's own seed is ignored.
  """
  log_every = run.config.log_every

  def one(carry, hyperparameters, own_seed, first_step, batches):
    state, logged = carry
    init_key, data_key = train_lib.run_keys(jax.random.key(own_seed if seed is None else seed))
    state = jax.lax.cond(
      first_step == 0, lambda: run.init(hyperparameters, init_key), lambda: state
    )
    state, metrics = run.segment(
      hyperparameters, state, data_key, first_step, segments.logs, batches or None
    )
    at = first_step // log_every
    logged = jax.tree.map(
      lambda buffer, new: jax.lax.dynamic_update_slice_in_dim(buffer, new, at, axis=0),
      logged,
      metrics,
    )
    return state, logged

  return one


def abstract_carry(run: Run, segments: Segments, names, batches) -> Any:
  """The shapes of one configuration's carry: its state, and room for every logged metric."""
  hyperparameters = {n: jax.ShapeDtypeStruct((), jnp.float32) for n in names}

  def shapes(hyperparameters, batches):
    init_key, data_key = train_lib.run_keys(jax.random.key(0))
    state = run.init(hyperparameters, init_key)
    _, metrics = run.segment(
      hyperparameters, state, data_key, jnp.int32(0), segments.logs, batches or None
    )
    return state, metrics

  state, metrics = jax.eval_shape(shapes, hyperparameters, batches)
  total = run.config.num_logs
  return state, jax.tree.map(
    lambda m: jax.ShapeDtypeStruct((total, *m.shape[1:]), m.dtype), metrics
  )


def _global_abstract(per_config: Any, size: int, sharding: NamedSharding) -> Any:
  return jax.tree.map(
    lambda s: jax.ShapeDtypeStruct((size, *s.shape), s.dtype, sharding=sharding), per_config
  )


def zeros(abstract: Any) -> Any:
  """Global arrays of zeros shaped like ``abstract`` (the carry before step 0: never read)."""

  def zero(struct):
    if jax.dtypes.issubdtype(struct.dtype, jax.dtypes.prng_key):
      data = jax.random.key_data(jax.random.key(0))  # a model's RNG state (dropout)
      raw = np.zeros((*struct.shape, *data.shape), data.dtype)
      spec = PartitionSpec(*struct.sharding.spec, *([None] * data.ndim))
      return jax.random.wrap_key_data(global_array(raw, NamedSharding(struct.sharding.mesh, spec)))
    return global_array(np.zeros(struct.shape, struct.dtype), struct.sharding)

  return jax.tree.map(zero, abstract)


@dataclasses.dataclass
class Program:
  """A group's compiled segment program for chunks of ``size`` configurations."""

  compiled: jax.stages.Compiled
  carry: Any  # the global abstract carry: shapes and shardings
  segments: Segments
  mesh: Mesh
  size: int
  stream: Any  # the problem's Stream, or None
  compile_seconds: float  # to lower and compile it (or read it from the cache)
  record: dict[str, Any]  # the cache's record: xla_seconds, cache_hit[, cacheable]

  def replicated(self, host: np.ndarray) -> jax.Array:
    return global_array(np.asarray(host), NamedSharding(self.mesh, REPLICATED))

  def batches(self, first_step: int) -> tuple:
    if self.stream is None:
      return ()
    return tuple(self.replicated(b) for b in self.stream.take(first_step, self.segments.steps))


def build_program(
  run: Run, group: Group, width: int, mesh: Mesh, size: int, segments: Segments
) -> tuple[Callable, tuple]:
  """``group``'s segment program for chunks of ``size``, and its inputs' abstract values.

  The program is ``(carry, hyperparameters, seeds, first_step, batches) ->
  carry``; see the module docstring.
  """
  stream = run.stream
  batch_shapes = ()
  if stream is not None:
    x, y = stream.example
    batch_shapes = tuple(jax.ShapeDtypeStruct((segments.steps, *a.shape), a.dtype) for a in (x, y))
  one = _one(run, segments, group.shared_seed)

  def shard(carry, hyperparameters, seeds, first_step, batches):
    def each(args):
      return one(*args, first_step, batches)

    # batch_size=1 would vmap over one configuration; None maps them unbatched.
    return jax.lax.map(
      each, (carry, hyperparameters, seeds), batch_size=width if width > 1 else None
    )

  # check_vma=False: the scans start from constants that know nothing of the
  # mesh, and nothing in it communicates across devices, so the check of
  # which values vary over "config" would only reject correct code.
  program = jax.shard_map(
    shard,
    mesh=mesh,
    in_specs=(CONFIG, CONFIG, CONFIG, REPLICATED, REPLICATED),
    out_specs=CONFIG,
    check_vma=False,
  )
  sharded = NamedSharding(mesh, CONFIG)
  replicated = NamedSharding(mesh, REPLICATED)
  carry = _global_abstract(abstract_carry(run, segments, group.values, batch_shapes), size, sharded)
  abstract = (
    carry,
    {n: jax.ShapeDtypeStruct((size,), jnp.float32, sharding=sharded) for n in group.values},
    jax.ShapeDtypeStruct((size,), jnp.uint32, sharding=sharded),
    jax.ShapeDtypeStruct((), jnp.int32, sharding=replicated),
    tuple(jax.ShapeDtypeStruct(b.shape, b.dtype, sharding=replicated) for b in batch_shapes),
  )
  return program, abstract


def compile_program(
  run: Run,
  group: Group,
  width: int,
  mesh: Mesh,
  size: int,
  segments: Segments,
  executor: Executor | None = None,
  identity: dict[str, Any] | str | None = None,
  share: float = 1.0,
) -> Program | Future:
  """Compiles :func:`build_program`, the carry donated (it stays on the devices, in place).

  With ``identity`` (:func:`momentum_jax.sweep._program_cache.sweep_identity`'s),
  a program kept by :mod:`momentum_jax.sweep._program_cache` in an earlier run is
  read back without being traced, and one compiled here is kept. Otherwise
  it compiles through JAX's persistent compilation cache
  (:func:`momentum_jax.runtime.compile_cache.compile`). With ``executor`` the
  program is traced and lowered here and compiled there: the result is a
  future of the :class:`Program` (XLA compiles without Python's lock, so
  the next group's program can be traced, or compiled, meanwhile). ``share``:
  the part of the group's training this program is expected to do (a
  search's narrower programs split it); its compile options are chosen by
  that part.
  """
  platform = mesh.devices.flat[0].platform
  expected = _devices.training_seconds(
    run, segments.config, len(group.seeds), mesh.devices.size, platform
  )
  options, reason = chosen_compiler_options(
    platform, None if expected is None else expected * share
  )
  if share < 1 and expected is not None:
    reason = f"{share:.2g} of the group's ~{expected:.2g} s in this program: {reason}"
  chosen = {"compiler_options": options, "compiler_options_reason": reason}
  stream = run.stream
  start = time.perf_counter()
  key, not_kept = _program_cache.key(identity, run, group, width, size, segments, mesh, options)
  if key is not None and (kept := _program_cache.load(key, mesh)) is not None:
    compiled, seconds = kept
    program = Program(
      compiled,
      _kept_carry(compiled, mesh),
      segments,
      mesh,
      size,
      stream,
      time.perf_counter() - start,
      {"xla_seconds": seconds, "cache_hit": True, "program_cache": "read", **chosen},
    )
    if executor is None:
      return program
    done = Future()
    done.set_result(program)
    return done
  program, abstract = build_program(run, group, width, mesh, size, segments)
  lowered = jax.jit(program, donate_argnums=0).lower(*abstract)

  def finish() -> Program:
    compiled, record = _compile_cache.compile(lowered, options, persistent=key is None)
    record.update(chosen)
    if key is not None:
      not_stored = _program_cache.store(key, compiled)
      record["program_cache"] = "written" if not_stored is None else f"not kept: {not_stored}"
    else:
      record["program_cache"] = f"not kept: {not_kept}"
    return Program(
      compiled, abstract[0], segments, mesh, size, stream, time.perf_counter() - start, record
    )

  return finish() if executor is None else executor.submit(finish)


def _kept_carry(compiled: jax.stages.Compiled, mesh: Mesh) -> Any:
  """The global abstract carry of a program read back: its first input, split over the configurations."""
  sharding = NamedSharding(mesh, CONFIG)
  return jax.tree.map(
    lambda info: jax.ShapeDtypeStruct(info.shape, info.dtype, sharding=sharding),
    compiled.args_info[0][0],
  )


def train_chunk(
  program: Program,
  inputs: tuple,
  state: Any = None,
  on_segment: Callable[[int], None] | None = None,
) -> Any:
  """Trains one chunk through every segment; returns the final carry.

  Resumes from ``state``'s saved carry when it holds one, and saves the
  carry there when due. ``on_segment``: see :func:`train_steps`.
  """
  restored = state.restore(program.carry) if state is not None else None
  carry, step = restored if restored is not None else (zeros(program.carry), 0)
  return train_steps(program, carry, inputs, step, program.segments.config.steps, state, on_segment)


def train_steps(
  program: Program,
  carry: Any,
  inputs: tuple,
  step: int,
  stop: int,
  state: Any = None,
  on_segment: Callable[[int], None] | None = None,
  at_boundary: Callable[[Any, int], None] | None = None,
) -> Any:
  """Trains a chunk's carry from ``step`` to ``stop``, segment by segment; returns the carry.

  ``stop - step`` is a multiple of the segment's steps. Saves the carry to
  ``state`` when due. ``at_boundary(carry, step)``, when given, is handed the
  carry at each segment boundary before ``stop`` (a live log), before it is
  saved. ``on_segment(steps)``, when given, is called on the
  host once each segment has trained (the progress bar): the loop then
  waits for each segment before dispatching the next, after reading the
  next one's batches, so the device idles only for the Python between two
  dispatches. The program itself calls nothing back: a program with host
  callbacks would never be written to the persistent compilation cache.
  """
  batches = program.batches(step) if step < stop else ()
  while step < stop:
    carry = program.compiled(carry, *inputs, program.replicated(np.int32(step)), batches)
    step += program.segments.steps
    if step < stop:
      batches = program.batches(step)  # read while the segment trains
      if at_boundary is not None:
        at_boundary(carry, step)
      if state is not None:
        state.maybe_save(carry, step)
    if on_segment is not None:
      jax.block_until_ready(carry)
      on_segment(program.segments.steps)
  return carry


def chunk_outputs(carry: Any) -> tuple[dict[str, Any], jax.Array]:
  """``(metrics, diverged_at_step)`` of a trained carry: the logged metrics and the starts."""
  state, logged = carry
  metrics = dict(logged)
  metrics.update({f"start_{name}": value for name, value in state.start.items()})
  return metrics, state.diverged_at
