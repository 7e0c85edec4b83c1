"""What a sweep settles before it trains: its output folder opened on every process, and each
group's width (a resumed sweep keeps its own).
"""

from __future__ import annotations

import dataclasses

import jax
from jax.experimental import multihost_utils

from momentum_jax.sweep import _checkpoint, _devices, _fingerprint, _plan, _probe
from momentum_jax.train import TrainConfig


def barrier(name: str) -> None:
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"momentum_jax.sweep: {name}")


def open_checkpoint(
  out_dir,
  raw_config: dict,
  record: dict,
  versions: dict,
  overwrite: bool,
  seeds_per_setting: int,
  appends: bool = True,
  reseeds: bool = True,
) -> _checkpoint.Checkpoint:
  """The output folder's checkpoint, the same view on every process.

  Every process checks the folder (so that all refuse a foreign sweep
  together); process 0 alone clears and writes it; after a barrier the
  others read what it left. ``appends``, ``reseeds``: see
  :meth:`~momentum_jax.sweep._checkpoint.Checkpoint.open`.
  """
  state = {
    "fingerprint": _fingerprint.fingerprint({**raw_config, "problem": record}),
    "config": raw_config,
    "problem": record,
    "versions": versions,
  }
  first = jax.process_index() == 0
  checkpoint = _checkpoint.Checkpoint.open(
    out_dir, state, overwrite=overwrite, write=first, appends=appends, reseeds=reseeds
  )
  barrier("checkpoint opened")
  if not first:
    checkpoint = _checkpoint.Checkpoint.open(
      out_dir, state, overwrite=False, write=False, appends=appends, reseeds=reseeds
    )
  checkpoint.seeds_per_setting = seeds_per_setting
  return checkpoint


def widths(width, checkpoint, problem, groups, train, mesh, fit, out_dir, identity):
  """Each group's width (a resumed sweep keeps its own), and the manifest's execution entry."""
  if checkpoint is not None and checkpoint.widths is not None:
    widths = checkpoint.widths
    if isinstance(width, int) and any(widths[g.label] != min(width, len(g.seeds)) for g in groups):
      raise _checkpoint.OutputDirError(
        f"{out_dir} holds a partial run of this sweep at width {widths}; resume it without "
        "a width (or with the same), or pass --overwrite to start again"
      )
    execution = {
      "flops_per_step_estimate": _devices.flops_per_step(problem, train),
      "candidates": {},
      "strategy": "resumed",
      "reason": {g.label: f"the width the sweep in {out_dir} started with" for g in groups},
    }
    return widths, execution

  def run_for(short: TrainConfig, group: _plan.Group):
    return _plan.group_setup(group.spec, problem, short)

  probe = _probe.probe_seconds(run_for, train, mesh, _devices.PROBE_STEPS, identity)
  widths, execution = _devices.choose_widths(width, problem, groups, train, mesh, fit, probe)
  if checkpoint is not None:
    checkpoint.record_widths(widths, write=jax.process_index() == 0)
  return widths, execution


def ranked_together(group: _plan.Group, rows: int | None) -> _plan.Group:
  """``group`` cut to the rows its strategy trains together (a batch of trials): what its width
  is chosen for; the whole group when the chunk size is free (a width never depends on it)."""
  if rows is None or rows >= len(group.seeds):
    return group
  return dataclasses.replace(
    group, values={n: v[:rows] for n, v in group.values.items()}, seeds=group.seeds[:rows]
  )
