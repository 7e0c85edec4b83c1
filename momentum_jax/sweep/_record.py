"""The sweep's manifest, built from what the engine planned and did.

Kept apart from :mod:`~momentum_jax.sweep._engine`, whose :func:`run` calls
:func:`manifest` once, after training: it reads the plan, the chosen widths
and chunk sizes, the compiled programs and the scheduler's record, and
returns the typed :class:`~momentum_jax.results.Manifest`.
"""

from __future__ import annotations

from typing import Any

import jax

from momentum_jax.runtime import compile_cache as _compile_cache
from momentum_jax.results._manifest import Manifest
from momentum_jax.runtime.versions import versions
from momentum_jax.sweep._limits import optimizer_limits
from momentum_jax.sweep._problem_config import problem_builder
from momentum_jax.sweep._search import search_record
from momentum_jax.sweep._strategies import SuccessiveHalving
from momentum_jax.train import TrainConfig


def manifest(config, problem, record, raw_config, groups, plans, trained, execution,
             memory, sizes, probe_seconds, checkpoint, checkpoint_every, schedule=None
             ) -> Manifest:
  """What is needed to trust and repeat the sweep (see :class:`~momentum_jax.results.Manifest`).

  ``trained`` is what the engine's training step did (its programs,
  timings, resumed chunks, brackets); ``schedule`` the scheduler, if any.
  """
  num_trained = sum(len(i) for plan in plans for i in plan)
  num_configs = sum(len(g.seeds) for g in groups)
  return Manifest.from_dict({
      "config": raw_config,
      "name": config.name,
      "problem": problem.name,
      "problem_record": record,
      "problem_builder": problem_builder(config),
      "search": search_record(config),
      "limits": optimizer_limits(config),
      "num_configs": num_configs,
      "steps": config.train.steps,
      "versions": versions(),
      "devices": [str(d) for d in jax.devices()],
      "num_processes": jax.process_count(),
      "timings": {"compile_seconds": trained.compile_seconds,
                  "run_seconds": trained.run_seconds, "probe_seconds": probe_seconds},
      "compilations": len(trained.programs),
      # Per program: its group, the seconds to lower and compile it (of which
      # XLA's compilation or the cache's read), and whether the cache held it.
      "programs": [{"group": label, "compile_seconds": program.compile_seconds,
                    **program.record} for label, program in trained.programs.items()],
      "compile_cache": None if (folder := _compile_cache.enable()) is None else str(folder),
      "scheduler": _scheduler_record(schedule, groups, trained, config.train),
      "probe_compilations": len(execution["candidates"]),
      "chunk_size": sizes,
      "execution": execution,
      "memory": memory,
      "checkpoint": None if checkpoint is None else {
          "folder": str(checkpoint.folder), "fingerprint": checkpoint.state["fingerprint"],
          "configs_trained": num_trained, "configs_resumed": num_configs - num_trained,
          "checkpoint_every": checkpoint_every,
          "chunks_resumed_mid_training": trained.resumed_chunks},
  })


def _scheduler_record(schedule, groups, trained, train: TrainConfig) -> dict[str, Any] | None:
  """The scheduler's rungs and sizes per group and bracket, and the configuration-steps spent.

  ``config_steps`` counts the steps this run trained (a group resumed from
  the output folder spent none); ``config_steps_full`` is every
  configuration trained to the end.
  """
  if schedule is None:
    return None
  spec = schedule.spec
  record = {**spec.record(), "metric": schedule.metric, "groups": trained.brackets,
            "config_steps": sum(b["config_steps"] for brackets in trained.brackets.values()
                                for b in brackets),
            "config_steps_full": sum(len(g.seeds) for g in groups) * train.steps}
  if spec.name == "successive_halving":
    record["rungs"] = SuccessiveHalving(spec.eta, spec.min_steps).rungs(train.steps)
    record["sizes"] = {label: b[0]["sizes"] for label, b in trained.brackets.items()}
  return record
