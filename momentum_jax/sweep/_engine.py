"""Running a sweep: every configuration of a group trained by one compiled program.

:func:`run` reads as its steps: validate the config and build the problem;
plan the groups (:mod:`~momentum_jax.sweep._plan`); choose each group's
width and chunk size for the devices (:mod:`~momentum_jax.sweep._devices`);
open the output folder's checkpoint and leave out what it holds; compile one
segment program per group and train its chunks segment by segment
(:mod:`~momentum_jax.sweep._execute`); table the results
(:func:`momentum_jax.results.tables`).

Results are bit-identical whatever the chunk size, the number of devices
and the segments, for a given width: the width is fixed per group, never
taken from the chunk size (XLA may round a batched reduction differently at
another width). With an output folder every finished chunk is saved, each
process writing its own devices' rows (:mod:`~momentum_jax.sweep._checkpoint`),
and the state of an unfinished chunk every ``checkpoint_every`` seconds
(:mod:`~momentum_jax.sweep._state`): a sweep run again on that folder
resumes, mid-chunk if need be. A progress bar counts configuration-steps,
advanced on the host after each segment.

With a scheduler (``search: {scheduler: ...}``) each group trains as one
chunk, rung by rung, its survivors re-packed into narrower ones
(:mod:`~momentum_jax.sweep._scheduled`); with population-based training
(``search: {method: pbt, ...}``) each group trains as one chunk whose
members copy each other between segments
(:mod:`~momentum_jax.sweep._pbt_train`). The state of such a group is not
saved mid-way: a killed sweep trains its unfinished group again (finished
groups are kept). With Optuna's search each chunk is a batch of trials,
asked before it trains and told after it is saved
(:mod:`~momentum_jax.sweep._optuna`). With ``keep: {models: K}`` the trained
state of the rows that may be among the K best is pulled from the devices
as each chunk finishes, and the result holds the K best's
(:mod:`~momentum_jax.sweep._keep`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import time
from typing import Any, Mapping

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from momentum_jax import results
from momentum_jax.runtime import files as _files
from momentum_jax.sweep import _program_cache
from momentum_jax.sweep import (
    _checkpoint, _devices, _execute, _keep, _optuna, _pbt_train, _plan, _record, _scheduled,
    _sizes)
from momentum_jax.sweep._checks import check_run_arguments
from momentum_jax.sweep._config import SweepConfig, load_config, scheduler_metric
from momentum_jax.sweep._search import check_metric
from momentum_jax.sweep._problem_config import checked_problem
from momentum_jax.sweep._state import ChunkState
from momentum_jax.train import TrainConfig

# Seconds of training between two saves of an unfinished chunk's state.
CHECKPOINT_EVERY = 60.0


def _barrier(name: str) -> None:
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"momentum_jax.sweep: {name}")


def _open_checkpoint(out_dir, raw_config: dict, record: dict, versions: dict,
                     overwrite: bool) -> _checkpoint.Checkpoint:
  """The output folder's checkpoint, the same view on every process.

  Every process checks the folder (so that all refuse a foreign sweep
  together); process 0 alone clears and writes it; after a barrier the
  others read what it left.
  """
  state = {"fingerprint": _checkpoint.fingerprint({**raw_config, "problem": record}),
           "config": raw_config, "problem": record, "versions": versions}
  first = jax.process_index() == 0
  checkpoint = _checkpoint.Checkpoint.open(out_dir, state, overwrite=overwrite, write=first)
  _barrier("checkpoint opened")
  if not first:
    checkpoint = _checkpoint.Checkpoint.open(out_dir, state, overwrite=False, write=False)
  return checkpoint


def _widths(width, checkpoint, problem, groups, train, mesh, fit, out_dir, identity):
  """Each group's width (a resumed sweep keeps its own), and the manifest's execution entry."""
  if checkpoint is not None and checkpoint.widths is not None:
    widths = checkpoint.widths
    if isinstance(width, int) and any(
        widths[g.label] != min(width, len(g.seeds)) for g in groups):
      raise _checkpoint.OutputDirError(
          f"{out_dir} holds a partial run of this sweep at width {widths}; resume it without "
          "a width (or with the same), or pass --overwrite to start again")
    execution = {"flops_per_step_estimate": _devices.flops_per_step(problem, train),
                 "candidates": {}, "strategy": "resumed",
                 "reason": {g.label: f"the width the sweep in {out_dir} started with"
                            for g in groups}}
    return widths, execution
  def run_for(short: TrainConfig, group: _plan.Group):
    return _plan.group_setup(group.spec, problem, short)
  probe = _execute.probe_seconds(run_for, train, mesh, _devices.PROBE_STEPS, identity)
  widths, execution = _devices.choose_widths(width, problem, groups, train, mesh, fit, probe)
  if checkpoint is not None:
    checkpoint.record_widths(widths, write=jax.process_index() == 0)
  return widths, execution


def _prepare(config: SweepConfig, force: bool):
  """What a sweep checks before it compiles: the problem built (its model abstractly), the
  metrics the search ranks by, the groups against the devices' memory."""
  problem = checked_problem(config)
  scheduler = config.search.scheduler
  metric = None if scheduler is None else scheduler_metric(scheduler, problem)
  if config.search.method == "optuna" and config.search.metric is not None:
    check_metric("search.metric", config.search.metric, problem)
  population = _pbt_train.population(config, problem)  # None unless search.method is pbt
  groups = _plan.groups(config)
  mesh = Mesh(np.array(jax.devices()), ("config",))
  memory = _devices.memory(problem, config.train, mesh)
  held = memory["configs_held_per_device"] * mesh.devices.size
  if scheduler is not None:
    _scheduled.check_one_chunk(groups, held)
  if population is not None:
    _scheduled.check_one_chunk(groups, held, "search.population",
                               "a smaller population, or fewer seeds or list values")
  if not force:
    _sizes.check_memory(memory["bytes_per_config_estimate"], memory["budget_bytes_per_device"])
  return problem, metric, population, groups, mesh, memory


def check(config: SweepConfig | str | os.PathLike | Mapping[str, Any], *,
          force: bool = False) -> SweepConfig:
  """Checks a config as :func:`run` does before it compiles, and trains nothing.

  The config is validated (its optimizers traced abstractly), its problem
  built (the model's shapes only), the metrics its search and ``keep``
  rank by and the memory a configuration needs checked against the devices.

  Raises:
    ConfigError: naming the field, as :func:`run` would.
  """
  if not isinstance(config, SweepConfig):
    config = load_config(config, force=force)
  problem = _prepare(config, force)[0]
  if config.keep is not None:
    _keep.keep_metric(config.keep, problem)
  return config


def run(
    config: SweepConfig | str | os.PathLike | Mapping[str, Any],
    out_dir: str | os.PathLike | None = None,
    *,
    chunk_size: int | None = None,
    width: int | str | None = None,
    quiet: bool = False,
    overwrite: bool = False,
    checkpoint_every: float | None = CHECKPOINT_EVERY,
    force: bool = False,
) -> results.SweepResult:
  """Runs a sweep and returns its results; ``result.save(out_dir)`` writes them.

  With ``out_dir``, every finished chunk is saved under ``out_dir/chunks/``
  (see :mod:`momentum_jax.sweep._checkpoint`), and the training state of an
  unfinished one under ``out_dir/state/`` every ``checkpoint_every`` seconds
  of training: run again on the same folder and configuration, the sweep
  resumes where it stopped, mid-chunk if need be, and its results equal an
  uninterrupted run's bit for bit. On several processes
  (``jax.distributed.initialize``) each writes its own devices' share and all
  read the merged whole; ``out_dir`` must then be on a file system they
  share. The tables and figures are the caller's to write, with
  :meth:`SweepResult.save <momentum_jax.results.SweepResult.save>` (process 0
  writes them), as the command line does.

  Results are bit-identical whatever the chunk size, the number of devices
  and the segmenting, for a given width; the width chosen by the model
  depends on the group and on the devices (kind, memory, cores each and
  number; see :func:`~momentum_jax.sweep._devices.model_width`), so pin
  ``width`` to compare runs on different machines bit for bit. A resumed
  sweep keeps the width it started with.

  It uses the devices JAX has. On a CPU, ``import momentum_jax`` gives JAX
  one device per core unless JAX had started or a count was chosen (see
  :func:`use_cpu_cores`), so the sweep spreads over the cores.

  Args:
    config: A :class:`SweepConfig`, a YAML path, or a dict in the same form.
    out_dir: Where the sweep keeps its finished chunks and the state of an
      unfinished one, so that it resumes; nothing is written when ``None``.
    chunk_size: Configurations trained together from the first step to the
      last, and saved at once, rounded up to a multiple of ``width ×
      devices`` (default: the config's, else up to
      :data:`~momentum_jax.sweep._devices.MAX_CHUNK_PER_DEVICE` per device,
      as the memory allows). Ignored with a scheduler or pbt (such a group
      is one chunk) and with Optuna (a chunk is a batch of trials).
    width: Configurations each device trains at once (``jax.vmap``); the
      rest of its share of a chunk waits in a ``lax.map``. ``None`` chooses
      by the width model; ``"measure"`` times a short training at a few
      widths on the first optimizer group and keeps the fastest, compiling
      one extra program per width (so two runs may pick different widths,
      whose results differ in float32 rounding). Cut to the group's size.
    quiet: No progress bar.
    overwrite: Replace the sweep of another config found in ``out_dir``
      instead of refusing.
    checkpoint_every: Seconds of training between saves of an unfinished
      chunk's state (with ``out_dir``); ``None``: never (a killed sweep
      then retrains its unfinished chunks). A scheduled group's state is
      never saved mid-way: a killed sweep trains it again.
    force: Go on with sizes beyond the limits of
      :mod:`momentum_jax.sweep._sizes` (configurations in all; one
      configuration's memory against a device's budget).

  Returns:
    A :class:`momentum_jax.results.SweepResult`.

  Raises:
    ConfigError: for an invalid configuration, before anything compiles.
    OutputDirError: if ``out_dir`` holds another config's sweep and not
      ``overwrite``, or a partial sweep whose width differs from ``width``.
  """
  if not isinstance(config, SweepConfig):
    config = load_config(config, force=force)
  check_run_arguments(chunk_size, width, checkpoint_every)
  problem, metric, population, groups, mesh, memory = _prepare(config, force)
  kept_by = None if config.keep is None else _keep.keep_metric(config.keep, problem)
  scheduler = config.search.scheduler
  raw_config, record = _files.jsonable(config.raw), _checkpoint.problem_record(problem)
  identity = _program_cache.sweep_identity(config, record)  # kept programs' problem part
  checkpoint = None
  if out_dir is not None:
    checkpoint = _open_checkpoint(out_dir, raw_config, record, _checkpoint.versions(), overwrite)
  search = None if config.search.method != "optuna" else _optuna.OptunaSearch(
      config.search, problem, len(config.seeds), out_dir,
      checkpoint is None or not checkpoint.resumed,
      memory["configs_held_per_device"] * mesh.devices.size)
  start = time.perf_counter()
  widths, execution = _widths(width, checkpoint, problem,
                              groups if search is None else search.batch_groups(groups),
                              config.train, mesh, memory["configs_in_budget"], out_dir,
                              identity)
  probe_seconds = time.perf_counter() - start if execution["candidates"] else 0.0
  logs = (_plan.logs_per_segment(config.train.num_logs) if scheduler is None
          else _scheduled.segment_logs(scheduler, config.train))
  if population is not None:
    logs = _pbt_train.segment_logs(population.spec, config.train)
  whole = scheduler is not None or population is not None  # one chunk per group
  segments = _execute.Segments(logs, config.train)
  sizes = {g.label: _devices.choose_chunk_size(
      len(g.seeds), mesh.devices.size, widths[g.label],
      len(g.seeds) if whole else
      search.rows if search is not None else chunk_size or config.chunk_size,
      memory["configs_held_per_device"]) for g in groups}
  plans = _todo(groups, checkpoint, sizes, whole=whole,
                rows=None if search is None else search.rows)
  schedule = None if scheduler is None else _scheduled.Schedule(
      scheduler, metric, results.higher_is_better(metric), len(config.seeds),
      config.search.seed or 0)
  keeper = None if config.keep is None else _keep.Keeper(
      config.keep, kept_by, [len(g.seeds) for g in groups],
      len(config.seeds), config.train.steps, checkpoint,
      [_plan.group_setup(g.spec, problem, config.train) for g in groups])
  trained = _train(problem, groups, plans, widths, sizes, segments, mesh, quiet, out_dir,
                   checkpoint, checkpoint_every, schedule, search, population, identity, keeper)
  trials = [None] * len(groups) if search is None else search.finish(groups, checkpoint)
  execution.update(width=widths, shared_seed={g.label: g.shared_seed for g in groups},
                   logs_per_segment=segments.logs)
  manifest = _record.manifest(config, problem, record, raw_config, groups, plans, trained,
                              execution, memory, sizes, probe_seconds, checkpoint,
                              checkpoint_every, schedule)
  if search is not None:
    manifest = dataclasses.replace(manifest, search=search.record(manifest.search))
  if population is not None:
    manifest = dataclasses.replace(manifest, search=_pbt_train.exploit_record(
        manifest.search, groups, trained.outcomes, len(config.seeds), config.train))
  result = results.tables(
      [results.GroupOutcome(g.label, g.values, g.seeds, metrics, diverged,
                            metrics.pop("stopped_at_step", None), trial,
                            metrics.pop("pbt", None))
       for g, (metrics, diverged), trial in zip(groups, trained.outcomes, trials)],
      config.train.logged_steps, manifest)
  if keeper is not None:
    result = keeper.finish(result)
  return result


def _todo(groups: list[_plan.Group], checkpoint, sizes: dict[str, int], whole: bool = False,
          rows: int | None = None) -> list[list[np.ndarray]]:
  """What is left to train, chunk by chunk; the same plan on every process.

  ``whole``: a group with anything left trains all of its configurations
  again. ``rows``: configurations per chunk (an Optuna batch), fewer than
  its padded size; default the size.
  """
  plans = []
  for index, group in enumerate(groups):
    finished = checkpoint.finished(index) if checkpoint is not None else np.zeros(0, np.int64)
    todo = np.setdiff1d(np.arange(len(group.seeds)), finished)
    if whole and len(todo):
      todo = np.arange(len(group.seeds))
    plans.append(_plan.chunks(todo, rows or sizes[group.label]))
  _barrier("plan read")
  return plans


@dataclasses.dataclass
class _Trained:
  """What :func:`_train` did: each group's ``(metrics, diverged)``, the programs, timings.

  ``brackets``: per scheduled group trained, the records of its brackets.
  """

  outcomes: list[tuple[dict[str, Any], np.ndarray]]
  programs: dict[str, _execute.Program]
  run_seconds: float
  resumed_chunks: list[dict[str, Any]]
  brackets: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
  compile_seconds: float = 0.0  # wall time compiling (programs compiled side by side overlap)


def _train(problem, groups, plans, widths, sizes, segments, mesh, quiet, out_dir, checkpoint,
           checkpoint_every, schedule: _scheduled.Schedule | None = None, search=None,
           population: _pbt_train.Population | None = None, identity=None,
           keeper: _keep.Keeper | None = None) -> _Trained:
  """Compiles each group's program and trains its chunks; the merged outcomes of every group.

  ``search`` (Optuna's) is asked for each chunk's values before it trains
  and told its metrics after it is saved. ``identity``: the programs' key
  for :mod:`momentum_jax.sweep._program_cache` (see :func:`_execute.compile_program`).
  ``keeper`` (``keep:``) is offered each finished chunk's rows.
  """
  train = segments.config
  local_share = len(jax.local_devices()) / mesh.devices.size
  if schedule is None:
    total = sum(len(plan) * sizes[g.label] * train.steps for g, plan in zip(groups, plans))
  else:
    total = sum(_scheduled.planned_config_steps(schedule.spec, len(g.seeds) // schedule.seeds,
                                                schedule.seeds, train)
                for g, plan in zip(groups, plans) if plan)
  progress = _execute.Progress(round(total * local_share), quiet)
  start = time.perf_counter()
  programs = _compile_plain(problem, groups, plans, widths, sizes, segments, mesh, train,
                            identity) if (
      schedule is None and population is None) else {}
  compile_seconds = time.perf_counter() - start  # wall time: the programs compile side by side
  progress.start()
  run_seconds, outcomes, resumed, brackets = 0.0, [], [], {}
  for index, (group, plan) in enumerate(zip(groups, plans)):
    if plan:
      progress.describe(f"sweep {group.label}")
    if population is not None:
      if plan:
        merged, compiled, seconds = _pbt_train.train_group(
            problem, group, index, widths[group.label], sizes[group.label], mesh, segments,
            population, progress.advancer(len(group.seeds) * local_share), checkpoint,
            identity, keeper)
        run_seconds += seconds
        programs.update(compiled)
        compile_seconds += sum(p.compile_seconds for p in compiled.values())
        progress.finish_chunk(round(sizes[group.label] * local_share * train.steps))
        outcomes.append(merged)
      continue
    if schedule is not None:
      if plan:
        merged, brackets[group.label], compiled, seconds = _scheduled.train_scheduled(
            problem, group, index, widths[group.label], mesh, segments, schedule,
            lambda rows: progress.advancer(rows * local_share), checkpoint, identity, keeper)
        run_seconds += seconds
        programs.update(compiled)
        compile_seconds += sum(p.compile_seconds for p in compiled.values())
        progress.finish_chunk(round(_scheduled.planned_config_steps(
            schedule.spec, len(group.seeds) // schedule.seeds, schedule.seeds, train)
            * local_share))
        outcomes.append(merged)
      elif checkpoint is None:
        raise RuntimeError("internal error: a scheduled group with nothing to train")
      continue
    rows = []
    for indices in plan:
      if search is not None:
        search.before_chunk(group, index, indices, checkpoint)
      begin = time.perf_counter()
      kept, restored = _train_chunk(programs[group.label], group, index, indices, out_dir,
                                    checkpoint_every, checkpoint, gather=checkpoint is None,
                                    on_segment=progress.advancer(len(indices) * local_share),
                                    keeper=keeper)
      run_seconds += time.perf_counter() - begin
      if search is not None:
        search.after_chunk(group, kept)
      rows.append(kept)
      if restored is not None:
        resumed.append({"group": group.label, "first": int(indices[0]),
                        "configs": len(indices), "from_step": restored})
      progress.finish_chunk(round(sizes[group.label] * local_share * train.steps))
    if checkpoint is None:
      outcomes.append(_plan.merge(rows, len(group.seeds)))
  progress.close()
  if checkpoint is not None:
    _barrier("chunks written")
    outcomes = [checkpoint.load(index, len(g.seeds)) for index, g in enumerate(groups)]
  return _Trained(outcomes, programs, run_seconds, resumed, brackets, compile_seconds)


def _compile_plain(problem, groups, plans, widths, sizes, segments, mesh, train, identity=None
                   ) -> dict[str, _execute.Program]:
  """Each group with chunks to train, its program: traced one after the other, compiled side by side.

  XLA compiles without holding Python's lock, so while one group's program
  compiles the next one's is traced, and two compile at once on two cores
  (the quickstart's two programs, cold, in one process: 4.4-5.2 s against
  5.7-6.7 s one after the other; benchmarks/RESULTS.md run 11).
  """
  todo = [group for group, plan in zip(groups, plans) if plan]

  def compile_one(group, executor=None):
    run_setup = _plan.group_setup(group.spec, problem, train)
    return _execute.compile_program(run_setup, group, widths[group.label], mesh,
                                    sizes[group.label], segments, executor=executor,
                                    identity=identity)

  if len(todo) <= 1:  # one program compiles where it is traced
    return {group.label: compile_one(group) for group in todo}
  with concurrent.futures.ThreadPoolExecutor(len(todo), "momentum-jax-compile") as pool:
    futures = {group.label: compile_one(group, pool) for group in todo}
    return {label: future.result() for label, future in futures.items()}


def _train_chunk(program: _execute.Program, group: _plan.Group, index: int,
                 indices: np.ndarray, out_dir, checkpoint_every, checkpoint, gather: bool,
                 on_segment=None, keeper: _keep.Keeper | None = None):
  """Trains one chunk, resuming its saved state; saves its rows (with a checkpoint).

  Returns ``(indices, metrics, diverged)`` of the configurations this
  process holds (every one with ``gather``, on several hosts without a
  shared folder to merge through), and the step its saved state resumed
  from (None: trained from the start). ``keeper`` is offered every row
  before they are saved, and prunes what it holds after.
  """
  state = None
  if checkpoint is not None:
    state = ChunkState(out_dir, index, indices, program.size, checkpoint_every)
  inputs = _execute.chunk_inputs(group, indices, program.size, program.mesh)
  carry = _execute.train_chunk(program, inputs, state, on_segment)
  outputs = _execute.chunk_outputs(carry)
  if gather and jax.process_count() > 1:
    gathered = multihost_utils.process_allgather(outputs, tiled=True)
    positions, (metrics, diverged) = np.arange(program.size), jax.tree.map(np.asarray, gathered)
  else:
    positions, (metrics, diverged) = _execute.local_rows(outputs)
  keep = positions < len(indices)
  kept = (indices[positions[keep]], jax.tree.map(lambda x: x[keep], metrics), diverged[keep])
  if keeper is not None:  # every row, in the carry's order, on every process
    rows = kept if gather or jax.process_count() == 1 else (
        indices, *_scheduled.host_rows(outputs, len(indices)))
    keeper.offer_carry(index, *rows, carry, program.mesh)
  if checkpoint is not None:
    if keep.any():
      checkpoint.save(index, jax.process_index(), *kept)
    _barrier("chunk written")
    state.delete()
  if keeper is not None:
    keeper.prune()
  return kept, None if state is None else state.restored_step


