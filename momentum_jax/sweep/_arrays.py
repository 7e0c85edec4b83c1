"""Nested dicts of arrays as flat ``.npz`` entries, and a finished batch as such a file."""

from __future__ import annotations

import json
from typing import Any, Mapping

import numpy as np
from flax import traverse_util

from momentum_jax.runtime import files as _files

# A metric's entry in a chunk file: this prefix, then its key path as JSON, so
# that integer keys (a layer's index in the gradient norms) come back as ints.
METRIC_PREFIX = "metrics:"


def pack(prefix: str, tree: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """A nested dict of arrays as flat ``.npz`` entries named ``prefix`` + its key path as JSON."""
  return {
    prefix + json.dumps(list(path)): np.asarray(value)
    for path, value in traverse_util.flatten_dict(dict(tree)).items()
  }


def unpack(prefix: str, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
  """What :func:`pack` wrote under ``prefix``, nested again (empty if nothing)."""
  return traverse_util.unflatten_dict(
    {
      tuple(json.loads(name[len(prefix) :])): np.asarray(arrays[name])
      for name in arrays
      if name.startswith(prefix)
    }
  )


def batch_arrays(
  batch: Any,
  strategy_state: Mapping[str, Any],
  ended: Mapping[str, Any],
  widths: tuple[int, ...],
  seeds_per_setting: int | None = None,
) -> dict[str, np.ndarray]:
  """A finished batch as ``.npz`` entries (see :meth:`Checkpoint.save_batch`)."""
  arrays = {
    "index": np.asarray(ended["rows"], np.int64),
    "diverged_at_step": np.asarray(ended["diverged_at_step"]),
    "stopped_at_step": np.asarray(ended["stopped_at_step"], np.int64),
    "batch": np.array(json.dumps(batch.record())),
    "strategy": np.array(json.dumps(_files.jsonable(strategy_state))),
    "widths": np.asarray(widths, np.int64),
    "seeds_per_setting": np.asarray(seeds_per_setting or 0, np.int64),
  }
  arrays.update(pack(METRIC_PREFIX, ended["metrics"]))
  arrays.update(pack("values:", ended["values"]))
  arrays.update(pack("history:", ended["history"]))
  return arrays
