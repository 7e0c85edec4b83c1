"""The plan of a sweep: its groups, their programs' shapes, and what is left to train.

A group is one optimizer entry of the config: its grid times its sampled
points (a search's draws from its ranges) times the seeds, or the trials a
search asks for while it trains times the seeds, as flat arrays of length K, trained by one compiled
program. The plan cuts each
group into chunks (whole batches of ``width`` configurations on every
device) and each chunk's training into segments of a few log intervals, and
leaves out what a checkpoint already holds. Nothing here touches a device.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np

from momentum_jax import optim, problems
from momentum_jax.sweep._config import SCHEDULE_PREFIX, SCHEDULES, OptimizerSpec, SweepConfig
from momentum_jax.sweep._grid import product
from momentum_jax.train import Setup, TrainableRun, TrainConfig, setup, steps_per_epoch

# Segments a chunk's training is cut into, about: enough to checkpoint a long
# chunk every few seconds of it, few enough that the host's work between
# segments (a dispatch, ~0.1 ms) stays out of sight.
SEGMENTS_PER_CHUNK = 8


@dataclasses.dataclass
class Group:
  """One optimizer group: its spec and its K configurations' hyperparameters and seeds."""

  spec: OptimizerSpec
  values: dict[str, np.ndarray]
  seeds: np.ndarray

  @property
  def label(self) -> str:
    return self.spec.label

  @property
  def shared_seed(self) -> int | None:
    """The seed of every configuration, or None when they differ.

    With one seed, the key is a constant of the program: ``jax.vmap`` then
    leaves it unbatched, so the initialization and the minibatch draws, the
    same for every configuration, are computed once per batch instead of
    once per configuration (and compile to smaller code).
    """
    return int(self.seeds[0]) if np.all(self.seeds == self.seeds[0]) else None


def groups(config: SweepConfig) -> list[Group]:
  """The config's optimizer groups: grid times samples times seeds (the seed fastest).

  With a search that asks its points while training (``spec.trials``), its
  trials times the seeds (:func:`trial_rows`).
  """
  found = []
  for spec in config.optimizers:
    if spec.trials is not None:
      values, seeds = trial_rows(spec, config.seeds)
    else:
      values, seeds = product(spec.grid, config.seeds, spec.samples)
    found.append(Group(spec, values, seeds))
  return found


def points_last(groups: list[Group]) -> bool:
  """Whether more sampled points (or trials) would only add rows after a group's others: no
  group crosses its points with a list of more than one value (the grid varies slowest)."""
  return all(
    math.prod(len(v) for v in g.spec.grid.values()) == 1 or g.spec.trials is not None
    for g in groups
  )


def trial_rows(
  spec: OptimizerSpec, seeds: tuple[int, ...]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """The rows of a group whose points are asked while it trains: ``trials × seeds``, trial ``t`` at rows ``t·S … t·S + S - 1``.

  Known before training, their searched values are not: each holds its
  range's low end or its list's first value until the trial is asked
  (its strategy fills them batch by batch); fixed
  values are fixed.
  """
  rows = spec.trials * len(seeds)
  values = {name: np.full(rows, v[0], np.float64) for name, v in spec.grid.items()}
  values.update({name: np.full(rows, r.low, np.float64) for name, r in spec.ranges.items()})
  return values, np.tile(np.asarray(seeds, np.int64), spec.trials)


def make_optimizer_factory(spec: OptimizerSpec, problem: problems.Problem, train: TrainConfig):
  """``make_optimizer(**hyperparameters)`` for one group, schedule included.

  Hyperparameters named ``schedule.<arg>`` go to the schedule, whose
  ``init_value`` is the learning rate; the rest go to the optimizer.
  """

  def make_optimizer(**hyperparameters):
    own = {k: v for k, v in hyperparameters.items() if not k.startswith(SCHEDULE_PREFIX)}
    if spec.schedule is not None:
      arguments = {
        k[len(SCHEDULE_PREFIX) :]: v
        for k, v in hyperparameters.items()
        if k.startswith(SCHEDULE_PREFIX)
      }
      warmup_steps = arguments.pop("warmup_steps", None)
      peak = own["learning_rate"]
      schedule = SCHEDULES[spec.schedule.name](peak, **arguments, **spec.schedule.static)
      if spec.schedule.unit == "epoch":
        schedule = optim.per_epoch(schedule, steps_per_epoch(problem, train.batch_size))
      if warmup_steps is not None:
        schedule = optim.join(
          [optim.linear_warmup(0.0, peak, warmup_steps), schedule], [warmup_steps]
        )
      own["learning_rate"] = schedule
    return spec.factory(**own, **spec.static)

  return make_optimizer


def group_setup(
  spec: OptimizerSpec, problem: problems.Problem | TrainableRun, train: TrainConfig
) -> Setup | TrainableRun:
  """What the step functions of ``spec``'s group share: its optimizer and where it is evaluated;
  for a Trainable (given as its :class:`~momentum_jax.train.TrainableRun`), that run at ``train``."""
  if isinstance(problem, TrainableRun):  # the same run where the config is (its counts kept)
    return problem if problem.config == train else dataclasses.replace(problem, config=train)
  return setup(problem, make_optimizer_factory(spec, problem, train), train, spec.eval_params)


def logs_per_segment(num_logs: int, segments: int | None = None) -> int:
  """Log intervals per segment: the largest divisor of ``num_logs`` giving ≥ ``segments`` of them.

  ``segments`` defaults to :data:`SEGMENTS_PER_CHUNK`.

  A divisor, so that every segment has one shape (one compilation); fewer
  segments when ``num_logs`` has no such divisor (a prime count: one log
  per segment).

  >>> logs_per_segment(30), logs_per_segment(31), logs_per_segment(4)
  (3, 1, 1)
  """
  wanted = max(1, math.ceil(num_logs / (segments or SEGMENTS_PER_CHUNK)))
  return max(d for d in range(1, wanted + 1) if num_logs % d == 0)


def chunks(todo: np.ndarray, size: int) -> list[np.ndarray]:
  """The configurations ``todo`` cut into chunks of at most ``size``."""
  return [todo[i : i + size] for i in range(0, len(todo), size)]


def merge(
  rows: list[tuple[np.ndarray, Any, np.ndarray]], num_configs: int
) -> tuple[dict[str, Any], np.ndarray]:
  """Puts chunks' ``(indices, metrics, diverged)`` back in configuration order."""
  indices = np.concatenate([r[0] for r in rows])
  order = np.argsort(indices)
  if not np.array_equal(indices[order], np.arange(num_configs)):
    raise RuntimeError("internal error: a configuration was trained twice or not at all")
  metrics = jax.tree.map(lambda *xs: np.concatenate(xs)[order], *[r[1] for r in rows])
  return metrics, np.concatenate([r[2] for r in rows])[order]
