"""Training a group under a scheduler: rung by rung, the survivors re-packed into narrower chunks.

With ``search: {scheduler: ...}`` a group trains as one chunk (its
configurations are ranked together). After each rung the host reads the
ranked metric from the carry's logged buffer and asks the strategy
(:mod:`momentum_jax.sweep._strategies`) which rows continue; their carry
rows are gathered on the devices (``carry[rows]``, laid out with the
configuration sharding) into the chunk of the next, narrower program. The
width stays the group's while the survivors fill a batch on every device,
and each size is a multiple of ``width × devices``, padded as any chunk
is, so a row trains exactly as it would in a plain sweep: its curves equal
the plain sweep's bit for bit. Fewer survivors are split evenly over the
devices, the width cut to their share (as a plain group's is cut to its
size): training them at the group's width would pad the chunk with copies
that cost as much as the survivors, and on an accelerator, whose width is
often the whole group, would save nothing. Their later logs then differ
from the plain sweep's by float32 rounding only. Each ``(size, width)`` is
compiled once (:class:`Programs`).

A stopped configuration keeps what it logged up to its rung; its later logs
are NaN, and ``stopped_at_step`` (in its metrics, as each configuration's
``start_<name>`` are) says where it stopped. Hyperband runs its brackets one
after the other, each on its own share of the group's settings.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import os
import time
from typing import Any, Callable, Iterable

import jax
import numpy as np
from jax.experimental import multihost_utils

from momentum_jax.sweep import _execute
from momentum_jax.sweep._config import ConfigError, SchedulerSpec
from momentum_jax.sweep._plan import Group, group_setup, logs_per_segment, merge
from momentum_jax.sweep._strategies import Hyperband, SuccessiveHalving
from momentum_jax.train import TrainConfig


def brackets(spec: SchedulerSpec, maximize: bool, settings: int, train: TrainConfig,
             seed: int) -> list[tuple[np.ndarray, SuccessiveHalving]]:
  """The successive halvings ``spec`` runs, each with the settings it starts from."""
  if spec.name == "successive_halving":
    return [(np.arange(settings), SuccessiveHalving(spec.eta, spec.min_steps, maximize))]
  return Hyperband(spec.eta, spec.min_steps, maximize).split(settings, train.steps, seed)


def segment_logs(spec: SchedulerSpec, train: TrainConfig) -> int:
  """Log intervals per segment: the plain sweep's, cut to divide every rung's interval."""
  logs = logs_per_segment(train.num_logs)
  halvings = [SuccessiveHalving(spec.eta, spec.min_steps)] if spec.name != "hyperband" else [
      h for _, h in Hyperband(spec.eta, spec.min_steps).brackets(train.steps)]
  for halving in halvings:
    rungs = [0, *halving.rungs(train.steps)]
    for begin, end in zip(rungs[:-1], rungs[1:]):
      logs = math.gcd(logs, (end - begin) // train.log_every)
  return logs


def planned_sizes(spec: SchedulerSpec, settings: int, seeds: int, train: TrainConfig
                  ) -> list[list[tuple[int, int]]]:
  """Per bracket, ``(rung, rows trained to it)`` when no configuration diverges."""
  planned = []
  for chosen, halving in brackets(spec, False, settings, train, 0):
    alive, rungs = len(chosen), []
    for rung in halving.rungs(train.steps):
      rungs.append((rung, alive * seeds))
      alive = max(1, alive // halving.eta)
    planned.append(rungs)
  return planned


def planned_config_steps(spec: SchedulerSpec, settings: int, seeds: int,
                         train: TrainConfig) -> int:
  """The configuration-steps the schedule spends when no configuration diverges."""
  total = 0
  for rungs in planned_sizes(spec, settings, seeds, train):
    starts = [0, *(rung for rung, _ in rungs[:-1])]
    total += sum(rows * (rung - start) for (rung, rows), start in zip(rungs, starts))
  return total


class Programs:
  """A group's compiled segment programs, one per ``(size, width)``, each compiled once.

  :meth:`prefetch` compiles the planned ones in threads, together and while
  the first rung trains (XLA compiles each on one thread); any other is
  compiled when first needed.

  Args:
    compile_for: ``(size, width) -> Program``.
    width: The group's width.
    devices: Devices the chunk is split over.
  """

  def __init__(self, compile_for: Callable[[int, int], _execute.Program], width: int,
               devices: int):
    self._compile_for = compile_for
    self._width = width
    self._devices = devices
    self.compiled: dict[tuple[int, int], _execute.Program] = {}
    self._pending: dict[tuple[int, int], concurrent.futures.Future] = {}
    self.waited = 0.0  # seconds the training waited for a compilation

  def _key(self, rows: int) -> tuple[int, int]:
    width = self.width(rows)
    batch = width * self._devices
    return -(-rows // batch) * batch, width

  def prefetch(self, planned_rows: Iterable[int]) -> None:
    """Starts compiling the programs for these numbers of rows, in threads."""
    keys = sorted({self._key(rows) for rows in planned_rows} - set(self.compiled), reverse=True)
    if not keys:
      return
    pool = concurrent.futures.ThreadPoolExecutor(min(len(keys), os.cpu_count() or 1))
    self._pending.update({key: pool.submit(self._compile_for, *key) for key in keys})
    pool.shutdown(wait=False)

  def width(self, rows: int) -> int:
    """The group's width, cut to an even share of ``rows`` per device."""
    return min(self._width, -(-rows // self._devices))

  def for_rows(self, rows: int) -> _execute.Program:
    key = self._key(rows)
    if key not in self.compiled:
      begin = time.perf_counter()
      pending = self._pending.pop(key, None)
      self.compiled[key] = pending.result() if pending else self._compile_for(*key)
      self.waited += time.perf_counter() - begin
    return self.compiled[key]

  def finish(self) -> dict[tuple[int, int], _execute.Program]:
    """Every program compiled, a prefetched one left unused (fewer survivors) included."""
    for key in list(self._pending):
      self.compiled[key] = self._pending.pop(key).result()
    return self.compiled

  def repack(self, carry: Any, rows: np.ndarray, program: _execute.Program) -> Any:
    """``carry``'s ``rows``, padded with copies of the last, laid out as ``program``'s carry."""
    # jit caches the gather by its function and shapes: a sweep run again
    # in this process (a benchmark, a test) compiles it no more.
    take = jax.jit(_take, out_shardings=jax.tree.map(lambda s: s.sharding, program.carry))
    index = np.concatenate([rows, np.repeat(rows[-1:], program.size - len(rows))])
    return take(carry, program.replicated(index.astype(np.int32)))


def _take(tree: Any, index: jax.Array) -> Any:
  return jax.tree.map(lambda x: x[index], tree)


def host_rows(tree: Any, rows: int) -> Any:
  """The first ``rows`` rows of a config-sharded ``tree``, as numpy arrays, on every process."""
  if jax.process_count() > 1:
    tree = multihost_utils.process_allgather(tree, tiled=True)
  else:
    tree = jax.device_get(tree)
  return jax.tree.map(lambda x: np.asarray(x)[:rows], tree)


def _host(carry: Any, rows: int) -> tuple[dict, dict, np.ndarray]:
  """``(logged, start, diverged_at)`` of the carry's first ``rows`` rows, on every process."""
  state, logged = carry
  return host_rows((logged, state.start, state.diverged_at), rows)


def rung_values(logged: dict[str, Any], metric: str, at: int) -> np.ndarray:
  """Each row's ``metric`` as the summary would give it after log ``at``."""
  if metric == "final_loss":
    return logged["train_loss"][:, at]
  if metric == "best_loss":
    losses = logged["train_loss"][:, :at + 1]
    return np.min(np.where(np.isnan(losses), np.inf, losses), axis=1)
  return logged[metric][:, at]


def _stopped(logged: dict, start: dict, diverged_at: np.ndarray, rows: np.ndarray, at: int,
             step: int) -> tuple[dict[str, Any], np.ndarray]:
  """The ``rows``' metrics as they stop after log ``at``: later logs NaN."""
  def cut(values):
    values = values[rows]  # a copy (fancy indexing)
    values[:, at + 1:] = np.nan
    return values
  metrics = jax.tree.map(cut, dict(logged))
  metrics.update({f"start_{name}": value[rows] for name, value in start.items()})
  metrics["stopped_at_step"] = np.full(len(rows), step, np.int64)
  return metrics, diverged_at[rows]


def train_bracket(programs: Programs, group: Group, rows: np.ndarray,
                  halving: SuccessiveHalving, metric: str, seeds: int, train: TrainConfig,
                  advancer: Callable[[int], Any] = lambda rows: None, keep=None,
                  ) -> tuple[list[tuple[np.ndarray, dict, np.ndarray]], dict[str, Any]]:
  """Successive halving of ``group``'s ``rows`` (whole settings, ``seeds`` rows each).

  ``advancer(rows)`` gives the ``on_segment`` of :func:`_execute.train_steps`
  for a rung of ``rows`` configurations (the progress bar). ``keep(rows,
  logged, diverged_at, carry, mesh)``, when given, is offered the rows that
  trained to the last step (the carry holds them first, in that order).

  Returns:
    The stopped configurations' ``(indices, metrics, diverged_at)`` per rung,
    and the bracket's record: its ``rungs``, the ``sizes`` (rows trained to
    each rung; 0 past the last reached), the ``widths`` they trained at and
    the ``config_steps`` spent.
  """
  rungs = halving.rungs(train.steps)
  program = programs.for_rows(len(rows))
  carry, live, step = _execute.zeros(program.carry), rows, 0
  pieces, sizes, widths, spent = [], [], [], 0
  for rung in rungs:
    inputs = _execute.chunk_inputs(group, live, program.size, program.mesh)
    carry = _execute.train_steps(program, carry, inputs, step, rung,
                                 on_segment=advancer(len(live)))
    sizes.append(len(live))
    widths.append(programs.width(len(live)))
    spent += len(live) * (rung - step)
    step, at = rung, rung // train.log_every - 1
    logged, start, diverged_at = _host(carry, len(live))
    if rung == train.steps and keep is not None:
      keep(live, logged, diverged_at, carry, program.mesh)
    going = (halving.survivors(rung_values(logged, metric, at), diverged_at >= 0, seeds)
             if rung < train.steps else np.zeros(0, np.int64))
    stopping = np.setdiff1d(np.arange(len(live)), going)
    pieces.append((live[stopping], *_stopped(logged, start, diverged_at, stopping, at, rung)))
    if not len(going):
      break
    program = programs.for_rows(len(going))
    carry, live = programs.repack(carry, going, program), live[going]
  sizes += [0] * (len(rungs) - len(sizes))
  return pieces, {"rungs": rungs, "sizes": sizes, "widths": widths, "config_steps": spent}


def train_group(programs: Programs, group: Group, spec: SchedulerSpec, metric: str,
                maximize: bool, seeds: int, train: TrainConfig, seed: int,
                advancer: Callable[[int], Any] = lambda rows: None, keep=None,
                ) -> tuple[list[tuple[np.ndarray, dict, np.ndarray]], list[dict[str, Any]]]:
  """Every bracket of ``spec`` over ``group`` (``seeds`` adjacent rows per setting).

  ``keep``: see :func:`train_bracket`.

  Returns the stopped rows (see :func:`train_bracket`) and each bracket's record.
  """
  settings = len(group.seeds) // seeds
  programs.prefetch(rows for bracket in planned_sizes(spec, settings, seeds, train)
                    for _, rows in bracket)
  pieces, records = [], []
  for chosen, halving in brackets(spec, maximize, settings, train, seed):
    rows = (chosen[:, None] * seeds + np.arange(seeds)).reshape(-1)
    stopped, record = train_bracket(programs, group, rows, halving, metric, seeds, train,
                                    advancer, keep)
    pieces += stopped
    records.append(record)
  return pieces, records


def check_one_chunk(groups: list[Group], held: int, path: str = "search.scheduler",
                    advice: str = "sample fewer, or drop the scheduler") -> None:
  """Refuses a group larger than the devices hold: a scheduled (or PBT) group is one chunk.

  Raises:
    ConfigError: at ``path``, ending with ``advice``.
  """
  for group in groups:
    if len(group.seeds) > held:
      raise ConfigError(path, f"{group.label}'s {len(group.seeds)} configurations are ranked "
                        f"together, in one chunk, and the devices hold about {held}: {advice}")


@dataclasses.dataclass(frozen=True)
class Schedule:
  """A sweep's scheduler: its spec, the metric it ranks by and which way, seeds per setting."""

  spec: Any
  metric: str
  maximize: bool
  seeds: int
  seed: int  # the search's: Hyperband's share of settings among brackets


def train_scheduled(problem, group, index, width, mesh, segments, schedule: Schedule,
                    advancer, checkpoint, identity=None, keeper=None):
  """Trains one group under the scheduler.

  Returns ``(metrics, diverged)``, its brackets' records, its programs, and
  the seconds it trained (not those it waited for a compilation: the
  programs of later rungs compile while the first trains). With a
  checkpoint, process 0 saves the whole group once it is finished (every
  process holds every row: they ranked them together). ``identity``: the
  programs' key for :mod:`momentum_jax.sweep._program_cache`
  (see :func:`momentum_jax.sweep._execute.compile_program`). ``keeper``
  (``keep:``, a :class:`momentum_jax.sweep._keep.Keeper`) is offered the
  rows that trained to the end, bracket by bracket, and prunes once the
  group is saved.
  """
  train = segments.config
  run_setup = group_setup(group.spec, problem, train)
  programs = Programs(
      lambda size, width: _execute.compile_program(run_setup, group, width, mesh, size, segments,
                                                   identity=identity),
      width, mesh.devices.size)
  begin = time.perf_counter()
  keep = None if keeper is None else functools.partial(keeper.offer_carry, index)
  pieces, records = train_group(programs, group, schedule.spec, schedule.metric,
                                schedule.maximize, schedule.seeds, train, schedule.seed,
                                advancer, keep)
  seconds = time.perf_counter() - begin - programs.waited
  metrics, diverged = merge(pieces, len(group.seeds))
  if checkpoint is not None and jax.process_index() == 0:
    checkpoint.save(index, 0, np.arange(len(group.seeds)), metrics, diverged)
  if keeper is not None:
    keeper.prune()
  compiled = {f"{group.label}[{size}, width {width}]": p
              for (size, width), p in programs.finish().items()}
  return (metrics, diverged), records, compiled, seconds
