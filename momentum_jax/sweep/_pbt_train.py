"""Training a group by population-based training: segments, and exploits between them.

With ``search: {method: pbt, ...}`` a group trains as one chunk, by one
compiled segment program, segment by segment. After each ``interval`` steps
the host reads the ranked metric from the carry's logged buffer and asks
the strategy (:class:`~momentum_jax.sweep._pbt.PopulationBasedTraining`)
which member copies which and with what hyperparameters. The copy happens on
the devices: a jitted gather of the carry's training state (``row r takes
row src[r]``, the identity for the others), laid out with the carry's own
sharding, so that across devices and hosts XLA's collectives move the rows;
the logged buffer is not gathered (each row keeps its own curves). When
member ``j`` copies member ``i``, each seed row of ``j`` takes the state of
the same seed row of ``i``: its parameters, model state, optimizer state,
first loss and divergence flag (a diverged member that copies a healthy
one is healthy again); it keeps its own metrics of the initial model
(``start_<name>``). The new hyperparameters are host arrays, passed to the
next segment as every segment's are: changing one compiles nothing.

A group's record of what happened is kept with its metrics (and so in its
checkpoint): ``pbt/hyperparameters/<name>``, each row's value in force
during the log interval ending at each logged step, and
``pbt/copied_from``, the row (within the group) each row copied after each
logged step, -1 where it copied none. From them
:func:`momentum_jax.results.tables` writes the curves' hyperparameter
columns and the summary's ``lineage``, and :func:`exploit_record` the
manifest's events. A PBT group is not saved mid-way: a killed sweep trains
its unfinished group again (finished groups are kept).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import jax
import numpy as np

from momentum_jax import problems, results
from momentum_jax.sweep import _execute, _pbt, _plan
from momentum_jax.sweep._search import check_metric, loss_metric
from momentum_jax.sweep._scheduled import _host, host_rows, rung_values
from momentum_jax.train import TrainConfig, TrainState


@dataclasses.dataclass(frozen=True)
class Population:
  """A sweep's population-based training: its spec, the metric it ranks by and which way."""

  spec: _pbt.PBTSpec
  metric: str
  maximize: bool
  seeds: int  # rows per member

  @property
  def strategy(self) -> _pbt.PopulationBasedTraining:
    return _pbt.PopulationBasedTraining(self.spec.fraction, self.spec.perturb, self.maximize)


def population(config, problem: problems.Problem) -> Population | None:
  """The config's population-based training (``None`` unless ``search.method`` is pbt).

  Raises:
    ConfigError: at ``search.metric`` if the problem does not log the metric.
  """
  spec = config.search.pbt
  if spec is None:
    return None
  metric = (loss_metric(problem) if spec.metric is None
            else check_metric("search.metric", spec.metric, problem))
  return Population(spec, metric, results.higher_is_better(metric), len(config.seeds))


def segment_logs(spec: _pbt.PBTSpec, train: TrainConfig) -> int:
  """Log intervals per segment: the plain sweep's, cut to divide ``interval``."""
  return math.gcd(_plan.logs_per_segment(train.num_logs), spec.interval // train.log_every)


def _copy_state(carry: Any, index: jax.Array) -> Any:
  state, logged = carry
  moved = jax.tree.map(lambda x: x[index], (state.params, state.rest, state.opt_state,
                                            state.first_loss, state.diverged_at))
  return TrainState(*moved, state.start), logged


def copier(program: _execute.Program):
  """``copy(carry, index)``: the carry with row ``r``'s training state taken from row ``index[r]``.

  Jitted with the program's carry shardings as its output's (the carry
  donated): on several devices or hosts the rows move through XLA's
  collectives. jit caches it by function and shapes: it compiles once.
  """
  shardings = jax.tree.map(lambda s: s.sharding, program.carry)
  gather = jax.jit(_copy_state, out_shardings=shardings, donate_argnums=0)
  return lambda carry, index: gather(carry, program.replicated(index.astype(np.int32)))


def train_population(program: _execute.Program, group: _plan.Group, population: Population,
                     rng: np.random.Generator, train: TrainConfig, on_segment=None
                     ) -> tuple[Any, dict[str, Any]]:
  """Trains ``group``'s members to the end, exploiting every ``interval`` steps.

  ``on_segment``: called after each segment (the progress bar, see
  :func:`~momentum_jax.sweep._execute.train_steps`).

  Returns:
    The final carry, and the group's record: ``hyperparameters`` (name ->
    ``[rows, logs]``, the value in force during each log interval) and
    ``copied_from`` (``[rows, logs]``).
  """
  rows, seeds = len(group.seeds), population.seeds
  logs, every = train.num_logs, train.log_every
  values = {name: np.asarray(v, np.float64).copy() for name, v in group.values.items()}
  in_force = {name: np.zeros((rows, logs)) for name in values}
  copied_from = np.full((rows, logs), -1, np.int64)
  ranges = {n: r for n, r in group.spec.ranges.items() if n in values}
  strategy, copy = population.strategy, copier(program)
  carry, step = _execute.zeros(program.carry), 0
  for stop in [*_pbt.exploit_steps(population.spec.interval, train.steps), train.steps]:
    current = _plan.Group(group.spec, values, group.seeds)
    inputs = _execute.chunk_inputs(current, np.arange(rows), program.size, program.mesh)
    carry = _execute.train_steps(program, carry, inputs, step, stop, on_segment=on_segment)
    for name, value in values.items():
      in_force[name][:, step // every:stop // every] = value[:, None]
    step, at = stop, stop // every - 1
    if stop == train.steps:
      break
    logged, _, diverged_at = _host(carry, rows)
    sources = strategy.sources(rung_values(logged, population.metric, at), diverged_at >= 0,
                               seeds, rng)
    replaced = sources != np.arange(len(sources))
    if not replaced.any():
      continue
    new = strategy.explore({n: v[::seeds] for n, v in values.items()}, sources, ranges, rng)
    source_rows = (sources[:, None] * seeds + np.arange(seeds)).reshape(-1)
    index = np.arange(program.size)
    index[:rows] = source_rows
    carry = copy(carry, index)
    values = {name: np.repeat(v, seeds) for name, v in new.items()}
    moved = np.repeat(replaced, seeds)
    copied_from[moved, at] = source_rows[moved]
  return carry, {"hyperparameters": in_force, "copied_from": copied_from}


def train_group(problem, group: _plan.Group, index: int, width: int, size: int, mesh,
                segments: _execute.Segments, population: Population, on_segment, checkpoint,
                identity=None, keeper=None
                ) -> tuple[tuple[dict, np.ndarray], dict[str, Any], float]:
  """Trains one group by population-based training, as one chunk of one compiled program.

  ``size`` is the chunk's: every row of the group, padded to a multiple of
  ``width`` × devices; ``on_segment`` the progress bar's advancer. With a
  checkpoint, process 0 saves the whole group once it is finished (every
  process holds every row: they ranked them together). ``identity``: the
  program's key for :mod:`momentum_jax.sweep._program_cache`
  (see :func:`momentum_jax.sweep._execute.compile_program`). ``keeper``
  (``keep:``, a :class:`momentum_jax.sweep._keep.Keeper`) is offered every
  member once trained, and prunes once the group is saved.

  Returns:
    ``((metrics, diverged), {label: program}, seconds trained)``; the
    metrics hold the group's record under ``pbt`` (see the module docstring).
  """
  train = segments.config
  run_setup = _plan.group_setup(group.spec, problem, train)
  rows = len(group.seeds)
  program = _execute.compile_program(run_setup, group, width, mesh, size, segments,
                                     identity=identity)
  begin = time.perf_counter()
  carry, record = train_population(program, group, population,
                                   _pbt.generator(population.spec.seed, index), train, on_segment)
  metrics, diverged = host_rows(_execute.chunk_outputs(carry), rows)
  seconds = time.perf_counter() - begin
  if keeper is not None:
    keeper.offer_carry(index, np.arange(rows), metrics, diverged, carry, mesh)
  metrics["pbt"] = record
  if checkpoint is not None and jax.process_index() == 0:
    checkpoint.save(index, 0, np.arange(rows), metrics, diverged)
  if keeper is not None:
    keeper.prune()
  return (metrics, diverged), {group.label: program}, seconds


def exploit_record(search: dict[str, Any], groups: list[_plan.Group],
                   outcomes: list[tuple[dict, np.ndarray]], seeds: int, train: TrainConfig
                   ) -> dict[str, Any]:
  """The manifest's ``search`` with ``exploits``: per group, each event's ``step``,
  ``member``, ``source`` and new ``values``.

  Members are numbered across the sweep, in configuration order (``config_id
  // seeds``, the summary's ``member``); ``values`` are the hyperparameters
  the member trains with from ``step`` on.
  """
  events, first, steps = {}, 0, train.logged_steps
  for group, (metrics, _) in zip(groups, outcomes):
    record = metrics["pbt"]
    copied = record["copied_from"]
    found = []
    for at in range(copied.shape[1]):
      for row in np.flatnonzero(copied[::seeds, at] >= 0) * seeds:
        found.append({"step": int(steps[at]), "member": (first + int(row)) // seeds,
                      "source": (first + int(copied[row, at])) // seeds,
                      "values": {n: float(v[row, at + 1])
                                 for n, v in record["hyperparameters"].items()}})
    events[group.label] = found
    first += len(copied)
  return {**search, "exploits": events}
