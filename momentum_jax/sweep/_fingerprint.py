"""What identifies a sweep: the fingerprint of its config and the record of its problem.

A sweep's output folder holds the fingerprint of the configuration that
wrote it (:func:`fingerprint`, a SHA-256 of its canonical JSON with the
problem's record, :func:`problem_record`: its data's hash, its functions by
import path, its parameters' shapes); a run on that folder with another
config, or another problem of the same name, is refused
(:mod:`momentum_jax.sweep._checkpoint`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

import jax
import numpy as np
from flax import nnx

from momentum_jax import problems
from momentum_jax.runtime import files as _files
from momentum_jax.train import TrainableRun


def fingerprint(raw_config: Mapping[str, Any]) -> str:
  """SHA-256 of the configuration's canonical JSON, ``chunk_size`` left out.

  The engine adds the problem's record (its data's hash, functions and
  parameter shapes) under ``"problem"``.
  """
  kept = {k: v for k, v in raw_config.items() if k != "chunk_size"}
  text = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=_files.json_default)
  return hashlib.sha256(text.encode()).hexdigest()


def _name_of(function: Any) -> str:
  """A function's import path as the manifest records it: ``module:qualname``."""
  return (
    f"{getattr(function, '__module__', '?')}:{getattr(function, '__qualname__', repr(function))}"
  )


def _digest(*arrays: Any) -> str:
  digest = hashlib.blake2b(digest_size=16)
  for array in arrays:
    if array is not None:
      host = np.ascontiguousarray(np.asarray(array))
      digest.update(f"{host.shape}{host.dtype}".encode())
      digest.update(host.data)
  return digest.hexdigest()


def problem_record(problem: problems.Problem | TrainableRun) -> dict[str, Any]:
  """What identifies a problem for a checkpoint: data, functions and parameter shapes.

  The data by a hash of its arrays (a stream by its function and sizes, and
  its validation split's hash), the loss and metrics by their import paths,
  and the model by its parameters' shapes: resuming a sweep with another
  problem is refused. A problem on a 2-D landscape records the landscape's
  name too, for the figures (``paths.png``). A Trainable is recorded by its
  functions' import paths and its state's shapes.
  """
  if isinstance(problem, TrainableRun):
    return _trainable_record(problem)
  data = problem.data
  if problem.is_stream:
    described = {
      "stream": _name_of(data.batches),
      "batch_size": int(data.batch_size),
      "steps_per_epoch": int(data.steps_per_epoch),
      "validation": _digest(data.x_val, data.y_val),
    }
  else:
    described = {"dataset": _digest(data.x_train, data.y_train, data.x_val, data.y_val)}
  model = problem.abstract_model()
  shapes = {
    "/".join(map(str, path)): list(leaf.shape)
    for path, leaf in nnx.to_flat_state(nnx.state(model, nnx.Param))
  }
  record = {
    "name": problem.name,
    "data": described,
    "loss": _name_of(problem.loss),
    "metrics": None if problem.metrics is None else _name_of(problem.metrics),
    "parameter_shapes": shapes,
  }
  if problem.landscape is not None:
    record["landscape"] = problem.landscape.name
  return record


def _trainable_record(run: TrainableRun) -> dict[str, Any]:
  trainable = run.problem
  shapes = {
    jax.tree_util.keystr(path): [list(leaf.shape), str(leaf.dtype)]
    for path, leaf in jax.tree_util.tree_flatten_with_path(run.abstract_state())[0]
  }
  return {
    "name": trainable.name,
    "trainable": {
      field: None if getattr(trainable, field) is None else _name_of(getattr(trainable, field))
      for field in ("init", "train", "evaluate", "model")
    },
    "state_shapes": shapes,
    # What it computes: an edit of its code is another sweep, not one to resume.
    "programs": run.traced().digest,
  }
