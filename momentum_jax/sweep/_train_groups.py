"""Training every group of a planned sweep: programs compiled ahead, one loop per group.

:func:`train` compiles, side by side, the programs every group with
something left to train plans (XLA compiles without Python's lock: the
quickstart's two programs, cold, in one process, 4.4-5.2 s against 5.7-6.7 s
one after the other; benchmarks/RESULTS.md run 11), then trains the groups
one after the other by the one segment loop (:mod:`momentum_jax.sweep._loop`),
each with its strategy, its progress on the bar, its batches saved to the
output folder and its finished rows offered to the keeper.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import numpy as np

from momentum_jax import results
from momentum_jax.sweep import _execute, _loop, _plan, _programs, _progress
from momentum_jax.sweep._batch_state import BatchState


@dataclasses.dataclass
class Trained:
  """What :func:`train` did: each group's outcome, the programs, timings, resumed batches."""

  outcomes: list[_loop.GroupTrained]
  programs: dict[str, _execute.Program]
  run_seconds: float
  resumed: list[dict[str, Any]]
  compile_seconds: float  # wall time the training waited for compilations
  configs_trained: int  # configurations this run trained (not read back from the folder)


def _programs_for(problem, group, width, mesh, segments, identity) -> _programs.Programs:
  run_setup = _plan.group_setup(group.spec, problem, segments.config)
  return _programs.Programs(
    lambda size, w, share: _execute.compile_program(
      run_setup, group, w, mesh, size, segments, identity=identity, share=share
    ),
    width,
    mesh.devices.size,
  )


def _unfinished(plan) -> list[bool]:
  """Whether each group has anything left to train: rows in none of its finished batches
  (which never share a row; a resumed sweep's may hold them all)."""
  return [
    sum(len(s.ended["rows"]) for s in saved) < len(g.seeds)
    for g, saved in zip(plan.groups, plan.saved)
  ]


def _compile_ahead(plan, unfinished: list[bool]) -> list[_programs.Programs]:
  """Each group's programs, the planned ones compiling in threads (one alone compiles where
  it is traced, when first needed)."""
  programs = [
    _programs_for(plan.problem, g, plan.widths[g.label], plan.mesh, plan.segments, plan.identity)
    for g in plan.groups
  ]
  planned = [
    group_programs.plan(strategy.planned(plan.sizes[group.label])) if todo else []
    for group, strategy, todo, group_programs in zip(
      plan.groups, plan.strategies, unfinished, programs
    )
  ]
  if sum(map(len, planned)) > 1:
    for group_programs, keys in zip(programs, planned):
      group_programs.prefetch(keys)
  return programs


def _batch_tables(
  hook, group: _plan.Group, first_id: int, logged_steps: np.ndarray, ended: dict[str, Any]
) -> None:
  """``hook`` given rows as a result's tables, ids as the whole sweep's: a batch's ended rows
  (``on_rows``), or those still training at a segment boundary (``on_segment``)."""
  rows = ended["rows"]
  outcome = results.GroupOutcome(
    group.label,
    {name: ended["values"][name] for name in group.values},
    group.seeds[rows],
    dict(ended["metrics"]),
    ended["diverged_at_step"],
    ended["stopped_at_step"],
  )
  batch = results.tables([outcome], logged_steps, {})
  ids = first_id + np.asarray(rows)
  for frame in (batch.summary, batch.curves):
    frame["config_id"] = ids[frame["config_id"].to_numpy()]
  hook(batch)


def _job(
  plan, index: int, programs, progress, local_share: float, out_dir, checkpoint_every, hooks
) -> _loop.GroupJob:
  group, keeper, train = plan.groups[index], plan.keeper, plan.segments.config
  first_id = sum(len(g.seeds) for g in plan.groups[:index])
  tabled = [
    None
    if hook is None
    else functools.partial(_batch_tables, hook, group, first_id, train.logged_steps)
    for hook in hooks
  ]
  return _loop.GroupJob(
    group,
    index,
    programs,
    plan.sizes[group.label],
    train.steps,
    train.log_every,
    plan.checkpoint,
    plan.saved[index],
    None if plan.checkpoint is None else BatchState(out_dir, index, checkpoint_every),
    lambda rows: progress.advancer(rows * local_share),
    None if keeper is None else functools.partial(keeper.offer_carry, index),
    None if keeper is None else keeper.prune,
    lambda spent: progress.finish_chunk(round(spent * local_share)),
    *tabled,
  )


def _named(plan, programs: list[_programs.Programs]) -> dict[str, _execute.Program]:
  """Every program compiled, by its group (and its shape, where a group has several)."""
  compiled = {}
  for group, group_programs in zip(plan.groups, programs):
    found = group_programs.finish()
    for (size, width), program in found.items():
      name = group.label if len(found) == 1 else f"{group.label}[{size}, width {width}]"
      compiled[name] = program
  return compiled


def train(plan, quiet: bool, out_dir, checkpoint_every, hooks=(None, None)) -> Trained:
  """Trains every group of ``plan`` (the engine's) by the one segment loop; their outcomes.

  ``hooks``: :func:`~momentum_jax.sweep.run`'s ``(on_rows, on_segment)``.
  """
  local_share = len(jax.local_devices()) / plan.mesh.devices.size
  unfinished = _unfinished(plan)
  programs = _compile_ahead(plan, unfinished)
  total = sum(s.planned_config_steps() for s, todo in zip(plan.strategies, unfinished) if todo)
  progress = _progress.Progress(round(total * local_share), quiet)
  progress.start()
  outcomes, resumed, run_seconds, trained = [], [], 0.0, 0
  for index, (group, strategy) in enumerate(zip(plan.groups, plan.strategies)):
    if unfinished[index]:
      progress.describe(f"sweep {group.label}")
    done = _loop.train_group(
      strategy,
      _job(plan, index, programs[index], progress, local_share, out_dir, checkpoint_every, hooks),
    )
    outcomes.append(done)
    run_seconds += done.seconds
    resumed += [{"group": group.label, **r} for r in done.resumed_from]
    trained += done.trained_rows
  progress.close()
  return Trained(
    outcomes, _named(plan, programs), run_seconds, resumed, sum(p.waited for p in programs), trained
  )
