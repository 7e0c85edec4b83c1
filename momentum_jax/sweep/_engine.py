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
import os
import time
from typing import Any, Callable, Mapping

import jax
import numpy as np
from jax.sharding import Mesh

from momentum_jax import results
from momentum_jax.runtime import files as _files
from momentum_jax.sweep import _fingerprint, _program_cache, _setup
from momentum_jax.sweep import (
  _checkpoint,
  _devices,
  _execute,
  _keep,
  _loop,
  _plan,
  _record,
  _sizes,
  _train_groups,
)
from momentum_jax.sweep._checks import check_run_arguments
from momentum_jax.sweep._config import SweepConfig, load_config
from momentum_jax.sweep._errors import ConfigError
from momentum_jax.sweep._problem_config import checked_problem
from momentum_jax.sweep._searches import Searches

# Seconds of training between two saves of an unfinished chunk's state.
CHECKPOINT_EVERY = 60.0


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
      raise ConfigError(
        searches.path,
        f"{group.label}'s {together} configurations are "
        f"ranked together, in one chunk, and the devices hold about {held}: "
        f"{searches.advice}",
      )
  if not force:
    _sizes.check_memory(memory["bytes_per_config_estimate"], memory["budget_bytes_per_device"])
  return problem, searches, groups, mesh, memory


def check(
  config: SweepConfig | str | os.PathLike | Mapping[str, Any], *, force: bool = False
) -> SweepConfig:
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
  on_segment: Callable[[results.SweepResult], None] | None = None,
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
    on_segment: Called at each segment boundary before a batch's last step
      with the batch's rows still training, as ``on_rows`` gets them but
      their curves up to that step (``stopped_at_step``): what a tracker
      shows of a batch as it trains. Given, the loop pulls the logged
      metrics from the devices at each boundary (nothing otherwise). Called
      on every process: with several, give it on each (the pull gathers
      from all of them).

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
  plan = _plan_sweep(config, out_dir, chunk_size, width, overwrite, force)
  trained = _train_groups.train(plan, quiet, out_dir, checkpoint_every, (on_rows, on_segment))
  return _tabled(plan, trained, checkpoint_every)


@dataclasses.dataclass
class _Sweep:
  """What :func:`run` settled before training (see :func:`_plan_sweep`)."""

  config: SweepConfig
  problem: Any
  searches: Searches
  groups: list[_plan.Group]
  mesh: Mesh
  memory: dict[str, int]
  record: dict[str, Any]  # the problem's (:func:`_fingerprint.problem_record`)
  raw_config: dict[str, Any]
  identity: Any  # the kept programs' key (:func:`_program_cache.sweep_identity`)
  checkpoint: _checkpoint.Checkpoint | None
  # Each group's finished batches in the output folder (Checkpoint.batches), read once here
  # for the keeper and the loop (empty without a folder).
  saved: list[list[_checkpoint.SavedBatch]]
  strategies: list
  widths: dict[str, int]
  execution: dict[str, Any]
  probe_seconds: float
  segments: _execute.Segments
  sizes: dict[str, int]
  keeper: _keep.Keeper | None


def _plan_sweep(
  config: SweepConfig, out_dir, chunk_size, width, overwrite: bool, force: bool
) -> _Sweep:
  """Checks the config against the problem and devices, opens the output folder, builds the
  strategies, and chooses the widths, segments and chunk sizes."""
  problem, searches, groups, mesh, memory = _prepare(config, force)
  raw_config, record = _files.jsonable(config.raw), _fingerprint.problem_record(problem)
  identity = _program_cache.sweep_identity(config, record)  # kept programs' problem part
  checkpoint = None
  if out_dir is not None:
    checkpoint = _setup.open_checkpoint(
      out_dir,
      raw_config,
      record,
      _checkpoint.versions(),
      overwrite,
      len(config.seeds),
      _plan.points_last(groups),
      searches.reseeds and config.keep is None,
    )
  saved = [[] if checkpoint is None else checkpoint.batches(i) for i in range(len(groups))]
  strategies = searches.strategies(groups, out_dir, checkpoint is None or not checkpoint.resumed)
  start = time.perf_counter()
  ranked = [_setup.ranked_together(g, searches.rows_at_once(g, None)) for g in groups]
  widths, execution = _setup.widths(
    width,
    checkpoint,
    problem,
    ranked,
    config.train,
    mesh,
    memory["configs_in_budget"],
    out_dir,
    identity,
  )
  probe_seconds = time.perf_counter() - start if execution["candidates"] else 0.0
  segments = _execute.Segments(searches.segment_logs(strategies), config.train)
  sizes = _chunk_sizes(groups, searches, widths, mesh, memory, chunk_size or config.chunk_size)
  keeper = _keeper(config, problem, groups, checkpoint, saved)
  return _Sweep(
    config,
    problem,
    searches,
    groups,
    mesh,
    memory,
    record,
    raw_config,
    identity,
    checkpoint,
    saved,
    strategies,
    widths,
    execution,
    probe_seconds,
    segments,
    sizes,
    keeper,
  )


def _chunk_sizes(groups, searches, widths, mesh, memory, chunk_size) -> dict[str, int]:
  """Each group's chunk: the rows its strategy trains together (else ``chunk_size``, else as
  the memory allows), rounded up to whole batches of its width on every device."""
  return {
    g.label: _devices.choose_chunk_size(
      len(g.seeds),
      mesh.devices.size,
      widths[g.label],
      searches.rows_at_once(g, chunk_size),
      memory["configs_held_per_device"],
    )
    for g in groups
  }


def _keeper(config: SweepConfig, problem, groups, checkpoint, saved) -> _keep.Keeper | None:
  """The running top K of ``keep:`` (None without it)."""
  if config.keep is None:
    return None
  return _keep.Keeper(
    config.keep,
    _keep.keep_metric(config.keep, problem),
    [len(g.seeds) for g in groups],
    len(config.seeds),
    config.train.steps,
    checkpoint,
    [_plan.group_setup(g.spec, problem, config.train) for g in groups],
    saved,
  )


def _tabled(plan: _Sweep, trained, checkpoint_every) -> results.SweepResult:
  """The result: each group's outcome tabled with its strategy's columns, the manifest with
  each strategy's part, the kept models."""
  plan.execution.update(
    width=plan.widths,
    shared_seed={g.label: g.shared_seed for g in plan.groups},
    logs_per_segment=plan.segments.logs,
  )
  parts = {"search": plan.searches.record(), "scheduler": None}
  columns = []
  for strategy, outcome in zip(plan.strategies, trained.outcomes):
    columns.append(
      strategy.columns(
        {
          "stopped_at_step": outcome.outcome.stopped_at_step,
          "history": outcome.outcome.metrics.pop(_loop.HISTORY),
        }
      )
    )
    parts = strategy.record(parts)
  manifest = _record.manifest(
    plan.config,
    plan.problem,
    plan.record,
    plan.raw_config,
    plan.groups,
    trained,
    plan.execution,
    plan.memory,
    plan.sizes,
    plan.probe_seconds,
    plan.checkpoint,
    checkpoint_every,
    parts,
  )
  result = results.tables(
    [
      results.GroupOutcome(
        g.label,
        done.values,
        g.seeds,
        dict(done.outcome.metrics),
        done.outcome.diverged_at_step,
        **column,
      )
      for g, done, column in zip(plan.groups, trained.outcomes, columns)
    ],
    plan.config.train.logged_steps,
    manifest,
  )
  return result if plan.keeper is None else plan.keeper.finish(result)
