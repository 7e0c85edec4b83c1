"""A sweep's kept models (``keep:``): written with Orbax under ``DIR/models/``, loaded as modules.

A sweep with ``keep: {models: K}`` hands back, in
:attr:`SweepResult.models <momentum_jax.results.SweepResult.models>`, the
trained weights of its K best configurations (every seed of each) as host
arrays; :func:`write_models` stores them as::

  DIR/models/rank_0/model.json       the configuration: optimizer, hyperparameters,
                                     metric and its mean, and per seed its config_id
                                     and the summary's metrics
  DIR/models/rank_0/seed_<s>/        one Orbax checkpoint per seed: the model's
                                     parameters and its other state (BatchNorm statistics)

:func:`load_model` builds the problem's own module again (by its
``make_model``) and puts the weights in, in evaluation mode. The
manifest names each kept run (:func:`manifest_record`) and the report lists
them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from momentum_jax.runtime.files import atomic_write_text, json_default

if TYPE_CHECKING:  # imported where used: reading a result's tables needs neither
  from flax import nnx

  from momentum_jax import problems

MODELS_DIR = "models"
MODEL_FILE = "model.json"


@dataclasses.dataclass
class KeptModel:
  """One kept configuration: its description and each seed's trained weights.

  Attributes:
    rank: 0 for the best configuration.
    optimizer: Its optimizer group's label (the summary's ``optimizer``).
    hyperparameters: Its hyperparameters (those it has).
    metric: The metric the configurations were ranked by.
    mean: That metric's mean over the seeds that did not diverge.
    runs: Per seed, in configuration order: ``config_id``, ``seed`` and the
      summary's metrics.
    states: Per run, the model's arrays by name (``params.<path>``,
      ``rest.<path>``; a Trainable's ``model<path>``), see
      :mod:`momentum_jax.train._kept`.
  """

  rank: int
  optimizer: str
  hyperparameters: dict[str, float]
  metric: str
  mean: float
  runs: list[dict[str, Any]]
  states: list[dict[str, np.ndarray]]

  def describe(self) -> dict[str, Any]:
    """What ``model.json`` holds: everything but the arrays."""
    return {
      "rank": self.rank,
      "optimizer": self.optimizer,
      "hyperparameters": self.hyperparameters,
      "metric": self.metric,
      "mean": self.mean,
      "runs": self.runs,
    }


def run_folder(rank: int, seed: int) -> str:
  """Where the run of rank ``rank`` and seed ``seed`` is written, under ``models/``."""
  return f"rank_{rank}/seed_{seed}"


def manifest_record(models: list[KeptModel]) -> list[dict[str, Any]]:
  """The manifest's ``models``: one entry per kept run, best configuration first.

  Each names its ``rank`` (as :func:`load_model` takes it), ``config_id``,
  ``seed``, ``path`` (its folder, relative to the output folder), the
  ``metric`` ranked by, the run's ``value`` of it and the configuration's
  ``mean`` over its seeds (what it was ranked by).
  """
  return [
    {
      "rank": model.rank,
      "config_id": run["config_id"],
      "seed": run["seed"],
      "path": f"{MODELS_DIR}/{run_folder(model.rank, run['seed'])}",
      "metric": model.metric,
      "value": run["metrics"].get(model.metric),
      "mean": model.mean,
    }
    for model in models
    for run in model.runs
  ]


def write_models(models: list[KeptModel], out_dir: str | os.PathLike) -> Path:
  """Writes ``models`` under ``out_dir/models/``, replacing what was there.

  The folder is written beside under a temporary name, then swapped in by
  two renames: an interrupted write leaves the previous ``models/`` whole
  (or, killed between the renames, beside under ``.models.*.old``).

  Returns:
    The ``models`` folder.
  """
  folder = Path(out_dir).resolve() / MODELS_DIR
  token = secrets.token_hex(4)
  fresh = folder.with_name(f".{MODELS_DIR}.{token}.tmp")
  fresh.mkdir(parents=True)
  try:
    with _checkpointer() as checkpointer:
      for model in models:
        for run, state in zip(model.runs, model.states):
          checkpointer.save(fresh / run_folder(model.rank, run["seed"]), state)
        checkpointer.wait_until_finished()
        atomic_write_text(
          fresh / f"rank_{model.rank}" / MODEL_FILE,
          json.dumps(model.describe(), indent=2, default=json_default) + "\n",
        )
    old = folder.with_name(f".{MODELS_DIR}.{token}.old")
    if folder.exists():
      folder.rename(old)
    fresh.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
  finally:
    shutil.rmtree(fresh, ignore_errors=True)
  return folder


def _checkpointer():
  """An Orbax checkpointer of this process alone: one process writes (or reads) the models."""
  import jax
  import orbax.checkpoint as ocp  # only a sweep that keeps models needs it

  alone = ocp.options.MultiprocessingOptions(
    primary_host=jax.process_index(), active_processes={jax.process_index()}
  )
  return ocp.StandardCheckpointer(multiprocessing_options=alone)


def read_model(out_dir: str | os.PathLike, rank: int = 0) -> dict[str, Any]:
  """``model.json`` of the kept configuration of rank ``rank``.

  Raises:
    FileNotFoundError: if the sweep kept no such model, saying how many it kept.
  """
  folder = Path(out_dir) / MODELS_DIR
  path = folder / f"rank_{rank}" / MODEL_FILE
  if not path.is_file():
    kept = len(list(folder.glob(f"rank_*/{MODEL_FILE}")))
    if kept:
      raise FileNotFoundError(
        f"{path} not found: the sweep in {out_dir} kept {kept} model(s) (ranks 0 to "
        f"{kept - 1}); keep more with 'keep: {{models: K}}' in its config"
      )
    if folder.is_dir():  # it kept, but nothing qualified
      raise FileNotFoundError(
        f"{path} not found: the sweep in {out_dir} kept no models, since none of its "
        "configurations finished without diverging (see its summary.md); change the "
        "ranges searched and run it again"
      )
    raise FileNotFoundError(
      f"{path} not found: the sweep in {out_dir} kept no models; add 'keep: {{models: K}}' "
      "to its config and run it again"
    )
  return json.loads(path.read_text(encoding="utf-8"))


def load_model(
  out_dir: str | os.PathLike,
  rank: int = 0,
  seed: int | None = None,
  problem: "problems.Problem | problems.Trainable | None" = None,
) -> "nnx.Module | Any":
  """The kept model of rank ``rank`` (0: the best), trained with ``seed``, in evaluation mode.

  The module is the problem's own, built by its ``make_model``, with the
  trained parameters and model state; BatchNorm layers use their running
  statistics. For a :class:`~momentum_jax.problems.Trainable`, the pytree
  its ``model(state)`` returns (default: its whole state), as numpy arrays.

  Args:
    out_dir: The sweep's output folder (its ``manifest.json`` and ``models/``).
    rank: Which configuration, 0 for the best.
    seed: Which of its seeds; ``None``: the first kept.
    problem: The sweep's problem; ``None`` builds it again as the
      manifest's ``problem_builder`` says (:func:`momentum_jax.problems.rebuild`;
      a problem given as a Python object must be given).

  Raises:
    FileNotFoundError: if no such model was kept.
    ValueError: for a seed it was not trained with, or a problem that cannot
      be built again.
  """
  import jax
  from flax import nnx

  from momentum_jax.train._kept import PARTS, part_name
  from momentum_jax.train._state import _eval_mode

  described = read_model(out_dir, rank)
  seeds = [run["seed"] for run in described["runs"]]
  seed = seeds[0] if seed is None else seed
  if seed not in seeds:
    raise ValueError(f"rank {rank} was kept with the seeds {seeds}, not {seed!r}")
  if problem is None:
    problem = _manifest_problem(out_dir)
  path = Path(out_dir).resolve() / MODELS_DIR / run_folder(rank, seed)
  with _checkpointer() as checkpointer:
    arrays = checkpointer.restore(path)
  if not hasattr(problem, "make_model"):  # a Trainable: its model(state), as a pytree
    return _trainable_model(problem, tuple(described["hyperparameters"]), arrays)
  model = problem.make_model(nnx.Rngs(0))
  _, params, rest = nnx.split(model, nnx.Param, ...)
  for part, state in zip(PARTS, (params, rest)):
    for path_, variable in nnx.to_flat_state(state):
      value = arrays[part_name(part, path_)]
      if jax.dtypes.issubdtype(variable[...].dtype, jax.dtypes.prng_key):
        value = jax.random.wrap_key_data(value)
      variable[...] = value
  nnx.update(model, params, rest)
  return _eval_mode(model)


def _trainable_model(trainable: "problems.Trainable", names: tuple[str, ...], arrays) -> Any:
  """The kept pytree of ``trainable`` from its flat ``arrays`` (named by
  :func:`~momentum_jax.train._kept.tree_name`)."""
  import jax

  from momentum_jax.train._kept import tree_name

  state = trainable.abstract_state(names)
  abstract = state if trainable.model is None else jax.eval_shape(trainable.model, state)
  leaves, structure = jax.tree_util.tree_flatten_with_path(abstract)
  values = []
  for path, leaf in leaves:
    value = np.asarray(arrays[tree_name(path)])
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
      value = jax.random.wrap_key_data(value)
    values.append(value)
  return jax.tree_util.tree_unflatten(structure, values)


def _manifest_problem(out_dir: str | os.PathLike) -> "problems.Problem":
  """The problem of the sweep in ``out_dir``, built again as its manifest records it."""
  from momentum_jax import problems  # imports jax: reading tables needs it not

  manifest = Path(out_dir) / "manifest.json"
  if not manifest.is_file():
    raise FileNotFoundError(
      f"{manifest} not found: load_model reads the sweep's problem from "
      "it (write the result with result.save(out_dir))"
    )
  written = json.loads(manifest.read_text(encoding="utf-8"))
  builder = written.get("problem_builder")
  if builder is None:
    raise ValueError(
      f"the sweep in {out_dir} was given its problem as a Python object "
      f"({written.get('problem')}) or its manifest does not say how it was "
      "built; pass it: load_model(out_dir, problem=...)"
    )
  try:
    return problems.rebuild(builder["name"], builder["options"])
  except ValueError as error:
    raise ValueError(f"{error}: load_model(out_dir, problem=...)") from None
