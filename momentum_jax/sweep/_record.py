"""The sweep's manifest, built from what the engine planned and did.

Kept apart from :mod:`~momentum_jax.sweep._engine`, whose :func:`run` calls
:func:`manifest` once, after training: it reads the plan, the chosen widths
and chunk sizes, the compiled programs and the scheduler's record, and
returns the typed :class:`~momentum_jax.results.Manifest`.
"""

from __future__ import annotations

import jax

from momentum_jax.results._manifest import Manifest
from momentum_jax.runtime import compile_cache as _compile_cache
from momentum_jax.runtime.versions import versions
from momentum_jax.sweep._limits import optimizer_limits
from momentum_jax.sweep._problem_config import problem_builder


def manifest(
  config,
  problem,
  record,
  raw_config,
  groups,
  trained,
  execution,
  memory,
  sizes,
  probe_seconds,
  checkpoint,
  checkpoint_every,
  parts,
) -> Manifest:
  """What is needed to trust and repeat the sweep (see :class:`~momentum_jax.results.Manifest`).

  ``trained`` is what the engine's training step did (its programs,
  timings, resumed batches); ``parts`` the ``search`` and ``scheduler``
  entries, each strategy's part added.
  """
  num_configs = sum(len(g.seeds) for g in groups)
  return Manifest.from_dict(
    {
      "config": raw_config,
      "name": config.name,
      "problem": problem.name,
      "problem_record": record,
      "problem_builder": problem_builder(config),
      "search": parts["search"],
      "limits": optimizer_limits(config),
      "num_configs": num_configs,
      "steps": config.train.steps,
      "versions": versions(),
      "devices": [str(d) for d in jax.devices()],
      "num_processes": jax.process_count(),
      "timings": {
        "compile_seconds": trained.compile_seconds,
        "run_seconds": trained.run_seconds,
        "probe_seconds": probe_seconds,
      },
      "compilations": len(trained.programs),
      # Per program: its group, the seconds to lower and compile it (of which
      # XLA's compilation or the cache's read), and whether the cache held it.
      "programs": [
        {"group": label, "compile_seconds": program.compile_seconds, **program.record}
        for label, program in trained.programs.items()
      ],
      "compile_cache": None if (folder := _compile_cache.enable()) is None else str(folder),
      "scheduler": parts["scheduler"],
      "probe_compilations": len(execution["candidates"]),
      "chunk_size": sizes,
      "execution": execution,
      "memory": memory,
      "checkpoint": None
      if checkpoint is None
      else {
        "folder": str(checkpoint.folder),
        "fingerprint": checkpoint.state["fingerprint"],
        "configs_trained": trained.configs_trained,
        "configs_resumed": num_configs - trained.configs_trained,
        "checkpoint_every": checkpoint_every,
        "chunks_resumed_mid_training": trained.resumed,
        "extended": checkpoint.extended,
      },
    }
  )
