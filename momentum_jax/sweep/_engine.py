"""Running a sweep: every configuration of a group trained by one compiled program.

:func:`run` reads as its steps: validate the config and build the problem
and the search's strategies (:mod:`~momentum_jax.sweep._searches`); plan the
groups (:mod:`~momentum_jax.sweep._plan`); choose each group's width and
chunk size for the devices (:mod:`~momentum_jax.sweep._devices`); open the
output folder's checkpoint; train every group by the one segment loop
(:mod:`~momentum_jax.sweep._loop`), its strategy asking for batches and
deciding at their boundaries; table the results
(:func:`momentum_jax.results.tables`), each strategy adding its columns and
its part of the manifest.

Results are bit-identical whatever the chunk size, the number of devices
and the segments, for a given width: the width is fixed per group, never
taken from the chunk size (XLA may round a batched reduction differently at
another width). With an output folder every finished batch is saved with
its strategy's state (:mod:`~momentum_jax.sweep._checkpoint`), and the
state of an unfinished one every ``checkpoint_every`` seconds
(:mod:`~momentum_jax.sweep._batch_state`): a sweep run again on that folder
resumes where it was, under any strategy. A progress bar counts
configuration-steps, advanced on the host after each segment. With
``keep: {models: K}`` the trained state of the rows that may be among the K
best is pulled from the devices as each batch ends, and the result holds
the K best's (:mod:`~momentum_jax.sweep._keep`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Any, Callable, Mapping

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from momentum_jax import results
from momentum_jax.runtime import files as _files
from momentum_jax.sweep import _fingerprint, _program_cache
from momentum_jax.sweep import (
    _checkpoint, _devices, _execute, _keep, _loop, _plan, _programs, _record, _sizes)
from momentum_jax.sweep._batch_state import BatchState
from momentum_jax.sweep._checks import check_run_arguments
from momentum_jax.sweep._config import SweepConfig, load_config
from momentum_jax.sweep._errors import ConfigError
from momentum_jax.sweep._problem_config import checked_problem
from momentum_jax.sweep._searches import Searches
from momentum_jax.train import TrainConfig

# Seconds of training between two saves of an unfinished chunk's state.
CHECKPOINT_EVERY = 60.0


def _barrier(name: str) -> None:
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"momentum_jax.sweep: {name}")


def _open_checkpoint(out_dir, raw_config: dict, record: dict, versions: dict,
                     overwrite: bool, appends: bool = True) -> _checkpoint.Checkpoint:
  """The output folder's checkpoint, the same view on every process.

  Every process checks the folder (so that all refuse a foreign sweep
  together); process 0 alone clears and writes it; after a barrier the
  others read what it left.
  """
  state = {"fingerprint": _fingerprint.fingerprint({**raw_config, "problem": record}),
           "config": raw_config, "problem": record, "versions": versions}
  first = jax.process_index() == 0
  checkpoint = _checkpoint.Checkpoint.open(out_dir, state, overwrite=overwrite, write=first,
                                           appends=appends)
  _barrier("checkpoint opened")
  if not first:
    checkpoint = _checkpoint.Checkpoint.open(out_dir, state, overwrite=False, write=False,
                                             appends=appends)
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
  search's strategies and the metrics they rank by, the groups against the devices' memory."""
  problem = checked_problem(config)
  searches = Searches(config, problem)
  groups = _plan.groups(config)
  mesh = Mesh(np.array(jax.devices()), ("config",))
  memory = _devices.memory(problem, config.train, mesh)
  held = memory["configs_held_per_device"] * mesh.devices.size
  for group in groups:
    together = searches.rows_at_once(group, None)
    if together is not None and together > held:
      raise ConfigError(searches.path, f"{group.label}'s {together} configurations are "
                        f"ranked together, in one chunk, and the devices hold about {held}: "
                        f"{searches.advice}")
  if not force:
    _sizes.check_memory(memory["bytes_per_config_estimate"], memory["budget_bytes_per_device"])
  return problem, searches, groups, mesh, memory


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
    on_rows: Callable[[results.SweepResult], None] | None = None,
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
      as the memory allows). Ignored where the search trains a set of rows
      together (rows ranked together; a batch of asked trials).
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
    on_rows: Called with each batch's rows as tables once they are saved (a
      :class:`~momentum_jax.results.SweepResult` of their summary and curves
      rows, config ids as in the whole result, no manifest): what a tracker
      logs while the sweep runs. Rows a resumed sweep reads back are not
      passed again. Called on every process.

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
  problem, searches, groups, mesh, memory = _prepare(config, force)
  kept_by = None if config.keep is None else _keep.keep_metric(config.keep, problem)
  raw_config, record = _files.jsonable(config.raw), _fingerprint.problem_record(problem)
  identity = _program_cache.sweep_identity(config, record)  # kept programs' problem part
  checkpoint = None if out_dir is None else _open_checkpoint(
      out_dir, raw_config, record, _checkpoint.versions(), overwrite, _plan.points_last(groups))
  strategies = searches.strategies(groups, out_dir, checkpoint is None or not checkpoint.resumed)
  start = time.perf_counter()
  widths, execution = _widths(width, checkpoint, problem,
                              [_ranked_together(g, searches.rows_at_once(g, None))
                               for g in groups],
                              config.train, mesh, memory["configs_in_budget"], out_dir,
                              identity)
  probe_seconds = time.perf_counter() - start if execution["candidates"] else 0.0
  segments = _execute.Segments(searches.segment_logs(strategies), config.train)
  sizes = {g.label: _devices.choose_chunk_size(
      len(g.seeds), mesh.devices.size, widths[g.label],
      searches.rows_at_once(g, chunk_size or config.chunk_size),
      memory["configs_held_per_device"]) for g in groups}
  keeper = None if config.keep is None else _keep.Keeper(
      config.keep, kept_by, [len(g.seeds) for g in groups],
      len(config.seeds), config.train.steps, checkpoint,
      [_plan.group_setup(g.spec, problem, config.train) for g in groups])
  trained = _train(problem, groups, strategies, widths, sizes, segments, mesh, quiet, out_dir,
                   checkpoint, checkpoint_every, identity, keeper, on_rows)
  execution.update(width=widths, shared_seed={g.label: g.shared_seed for g in groups},
                   logs_per_segment=segments.logs)
  parts = {"search": searches.record(), "scheduler": None}
  columns = []
  for strategy, outcome in zip(strategies, trained.outcomes):
    columns.append(strategy.columns({"stopped_at_step": outcome.outcome.stopped_at_step,
                                     "history": outcome.outcome.metrics.pop(_loop.HISTORY)}))
    parts = strategy.record(parts)
  manifest = _record.manifest(config, problem, record, raw_config, groups, trained,
                              execution, memory, sizes, probe_seconds, checkpoint,
                              checkpoint_every, parts)
  result = results.tables(
      [results.GroupOutcome(g.label, done.values, g.seeds, dict(done.outcome.metrics),
                            done.outcome.diverged_at_step, **column)
       for g, done, column in zip(groups, trained.outcomes, columns)],
      config.train.logged_steps, manifest)
  if keeper is not None:
    result = keeper.finish(result)
  return result


def _ranked_together(group: _plan.Group, rows: int | None) -> _plan.Group:
  """``group`` cut to the rows its strategy trains together (a batch of trials): what its width
  is chosen for; the whole group when the chunk size is free (a width never depends on it)."""
  if rows is None or rows >= len(group.seeds):
    return group
  return dataclasses.replace(group, values={n: v[:rows] for n, v in group.values.items()},
                             seeds=group.seeds[:rows])


@dataclasses.dataclass
class _Trained:
  """What :func:`_train` did: each group's outcome, the programs, timings, resumed batches."""

  outcomes: list[_loop.GroupTrained]
  programs: dict[str, _execute.Program]
  run_seconds: float
  resumed: list[dict[str, Any]]
  compile_seconds: float  # wall time the training waited for compilations
  configs_trained: int  # configurations this run trained (not read back from the folder)


def _batch_tables(on_rows, group: _plan.Group, first_id: int, logged_steps: np.ndarray,
                  ended: dict[str, Any]) -> None:
  """``on_rows`` given a batch's ended rows as a result's tables, ids as the whole sweep's."""
  rows = ended["rows"]
  outcome = results.GroupOutcome(
      group.label, {name: ended["values"][name] for name in group.values}, group.seeds[rows],
      dict(ended["metrics"]), ended["diverged_at_step"], ended["stopped_at_step"])
  batch = results.tables([outcome], logged_steps, {})
  ids = first_id + np.asarray(rows)
  for frame in (batch.summary, batch.curves):
    frame["config_id"] = ids[frame["config_id"].to_numpy()]
  on_rows(batch)


def _programs_for(problem, group, width, mesh, segments, identity) -> _programs.Programs:
  run_setup = _plan.group_setup(group.spec, problem, segments.config)
  return _programs.Programs(
      lambda size, w: _execute.compile_program(run_setup, group, w, mesh, size, segments,
                                               identity=identity),
      width, mesh.devices.size)


def _train(problem, groups, strategies, widths, sizes, segments, mesh, quiet, out_dir,
           checkpoint, checkpoint_every, identity=None,
           keeper: _keep.Keeper | None = None, on_rows=None) -> _Trained:
  """Trains every group by the one segment loop, its strategy deciding; their outcomes.

  The programs of every group with something left to train are compiled
  side by side up front, while the first trains (XLA compiles without
  Python's lock: the quickstart's two programs, cold, in one process, 4.4-5.2 s
  against 5.7-6.7 s one after the other; benchmarks/RESULTS.md run 11).
  ``identity``: the programs' key for :mod:`momentum_jax.sweep._program_cache`.
  ``keeper`` (``keep:``) is offered the rows that trained to the last step;
  ``on_rows`` (:func:`run`'s) each batch's rows once saved.
  """
  train = segments.config
  local_share = len(jax.local_devices()) / mesh.devices.size
  finished = [checkpoint is not None and len(checkpoint.finished(i)) == len(g.seeds)
              for i, g in enumerate(groups)]
  programs = [_programs_for(problem, g, widths[g.label], mesh, segments, identity)
              for g in groups]
  planned = [[] if done else group_programs.planned_keys(strategy.planned(sizes[group.label]))
             for group, strategy, done, group_programs in zip(groups, strategies, finished,
                                                              programs)]
  if sum(map(len, planned)) > 1:  # one program alone compiles where it is traced
    for group_programs, keys in zip(programs, planned):
      group_programs.prefetch(keys)
  total = sum(s.planned_config_steps() for s, done in zip(strategies, finished) if not done)
  progress = _execute.Progress(round(total * local_share), quiet)
  progress.start()
  outcomes, resumed, run_seconds, trained = [], [], 0.0, 0
  for index, (group, strategy) in enumerate(zip(groups, strategies)):
    if not finished[index]:
      progress.describe(f"sweep {group.label}")
    job = _loop.GroupJob(
        group, index, programs[index], sizes[group.label], train.steps, train.log_every,
        checkpoint, None if checkpoint is None else BatchState(out_dir, index, checkpoint_every),
        lambda rows: progress.advancer(rows * local_share),
        None if keeper is None else functools.partial(keeper.offer_carry, index),
        None if keeper is None else keeper.prune,
        lambda spent: progress.finish_chunk(round(spent * local_share)),
        None if on_rows is None else functools.partial(
            _batch_tables, on_rows, group, sum(len(g.seeds) for g in groups[:index]),
            train.logged_steps))
    done = _loop.train_group(strategy, job)
    outcomes.append(done)
    run_seconds += done.seconds
    resumed += [{"group": group.label, **r} for r in done.resumed_from]
    trained += done.trained_rows
  progress.close()
  compiled = {}
  for group, group_programs in zip(groups, programs):
    found = group_programs.finish()
    for (size, width), program in found.items():
      name = group.label if len(found) == 1 else f"{group.label}[{size}, width {width}]"
      compiled[name] = program
  return _Trained(outcomes, compiled, run_seconds, resumed,
                  sum(p.waited for p in programs), trained)
