"""The one segment loop: every search's batches trained, observed, decided on, saved.

For each optimizer group the loop asks its strategy
(:mod:`momentum_jax.sweep.strategies`) for a batch, trains it in one
compiled program to each boundary the strategy names, hands the strategy
the rows' scores there (plain numpy, on every process) and applies its
decision: a :class:`~momentum_jax.sweep.strategies.Stop` cuts the stopped
rows' later logs to NaN and gathers the others into a narrower chunk
(:mod:`momentum_jax.sweep._programs`); an
:class:`~momentum_jax.sweep.strategies.Exploit` copies rows' training
state on the devices and changes their hyperparameters (inputs of the
program: nothing recompiles). When the batch ends its rows are saved, with
the strategy's state, and the strategy is told.

Between segments, every ``checkpoint_every`` seconds, the batch's device
state and the loop's own (the batch, the rows still training, their
hyperparameters, what stopped so far, the strategy's state) are saved
together (:mod:`momentum_jax.sweep._batch_state`): a sweep killed anywhere,
under any strategy, resumes where it was and ends as an uninterrupted run
would, bit for bit.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import jax
import numpy as np

from momentum_jax.sweep import _answers, _execute, _programs
from momentum_jax.sweep._batch_state import BatchState, LoopPosition
from momentum_jax.sweep._plan import Group
from momentum_jax.sweep.strategies import Batch, Continue, Exploit, Outcome, Scores, Stop, Strategy

HISTORY = "history"


@dataclasses.dataclass
class GroupJob:
  """What the loop needs to train one group.

  Attributes:
    group: The group (its label, spec and shared seed; its rows' planned values).
    index: Its position among the config's groups.
    programs: Its compiled programs.
    capacity: Rows a batch may have (the strategy's ``rows_at_once``).
    steps: Training steps; ``log_every`` steps per log.
    checkpoint: The output folder's finished batches, or ``None``.
    saved: The group's batches it had finished, as read back when the sweep started
      (:meth:`~momentum_jax.sweep._checkpoint.Checkpoint.batches`).
    state: Where the unfinished batch's state is saved, or ``None``.
    advancer: ``rows -> on_segment`` for the progress bar.
    keep: ``(rows, metrics, diverged, carry, mesh)``, offered the rows that
      trained to the last step, or ``None``.
  """

  group: Group
  index: int
  programs: _programs.Programs
  capacity: int
  steps: int
  log_every: int
  checkpoint: Any = None
  saved: list = dataclasses.field(default_factory=list)
  state: BatchState | None = None
  advancer: Callable[[int], Any] = lambda rows: None
  keep: Callable[..., None] | None = None
  after_save: Callable[[], None] | None = None  # once each batch is saved (the keeper's prune)
  on_batch: Callable[[int], None] | None = None  # the configuration-steps a batch trained
  on_saved: Callable[[dict], None] | None = None  # each batch's ended rows, once saved
  # The rows still training, as they are at each segment boundary before the batch's last.
  on_segment: Callable[[dict], None] | None = None


@dataclasses.dataclass
class GroupTrained:
  """A group's outcome: every row's metrics, diverged and stopped steps, values, history."""

  outcome: Outcome
  values: dict[str, np.ndarray]
  seconds: float  # training, without waiting for compilations
  resumed_from: list[dict[str, int]]
  trained_rows: int  # rows this run trained (not read back from the output folder)


def _host(carry: Any, rows: int) -> tuple[dict, dict, np.ndarray]:
  """``(logged, start, diverged_at)`` of the carry's first ``rows`` rows, on every process."""
  state, logged = carry
  return _execute.host_rows((logged, state.start, state.diverged_at), rows)


def _ended(
  logged: dict, start: dict, diverged_at: np.ndarray, positions: np.ndarray, at: int, step: int
) -> dict[str, Any]:
  """The rows at ``positions`` as they end after log ``at`` (later logs NaN), at ``step``."""

  def cut(values):
    values = np.array(values[positions])
    values[:, at + 1 :] = np.nan
    return values

  metrics = jax.tree.map(cut, dict(logged))
  metrics.update({f"start_{name}": value[positions] for name, value in start.items()})
  return {
    "metrics": metrics,
    "diverged_at_step": diverged_at[positions],
    "stopped_at_step": np.full(len(positions), step, np.int64),
  }


def _merged(pieces: list[dict[str, Any]], rows: np.ndarray) -> dict[str, Any]:
  """The pieces of a batch in the order of ``rows`` (each piece has its ``rows``)."""
  found = np.concatenate([p["rows"] for p in pieces])
  order = np.argsort(found)
  if not np.array_equal(found[order], np.sort(rows)):
    raise RuntimeError("internal error: a batch row ended twice or not at all")
  return jax.tree.map(lambda *xs: np.concatenate(xs)[order], *pieces)


def _history(batch: Batch, logs: int) -> dict[str, Any]:
  n = len(batch.rows)
  return {
    "hyperparameters": {name: np.zeros((n, logs)) for name in batch.values},
    "copied_from": np.full((n, logs), -1, np.int64),
  }


def train_group(strategy: Strategy, job: GroupJob) -> GroupTrained:
  """Trains the group's batches until its strategy has no more; their outcomes merged."""
  pieces, resumed, seconds, trained = [], [], 0.0, 0
  position = _resume(strategy, job, pieces)
  ended = np.zeros(len(job.group.seeds), bool)
  for piece in pieces:
    ended[piece["rows"]] = True
  while True:
    if position is None:
      batch = strategy.ask(job.capacity)
      if batch is None:
        break
      _answers.check_batch(strategy, batch, len(ended), list(job.group.values), ended)
      position = _start(batch, job)
    elif position.step:
      resumed.append(
        {
          "batch": position.batch.number,
          "first": int(position.batch.rows[0]),
          "configs": len(position.live),
          "from_step": position.step,
        }
      )
    begin, waited = time.perf_counter(), job.programs.waited
    done, used = _train_batch(strategy, job, position)
    # Training only: not the wait for a narrower program compiled after a stop.
    seconds += time.perf_counter() - begin - (job.programs.waited - waited)
    trained += len(position.batch.rows)
    if job.on_batch is not None:
      job.on_batch(position.spent)
    _finish(strategy, job, position.batch, done, tuple(used))
    pieces.append(done)
    ended[position.batch.rows] = True
    position = None
  if not pieces:
    raise RuntimeError(f"internal error: {job.group.label} trained no batch")
  merged = _merged(pieces, np.concatenate([p["rows"] for p in pieces]))
  outcome = Outcome(
    merged["rows"], merged["metrics"], merged["diverged_at_step"], merged["stopped_at_step"]
  )
  values = {name: merged["values"][name] for name in job.group.values}  # the config's order
  outcome.metrics[HISTORY] = merged[HISTORY]
  return GroupTrained(outcome, values, seconds, resumed, trained)


def _start(batch: Batch, job: GroupJob) -> LoopPosition:
  key = job.programs.fresh_key(len(batch.rows))
  carry = _execute.zeros(job.programs.get(key).carry)
  return LoopPosition(
    batch,
    batch.rows,
    {n: np.asarray(v, np.float64) for n, v in batch.values.items()},
    0,
    key,
    carry,
    [],
    _history(batch, job.steps // job.log_every),
  )


def _inputs(position: LoopPosition, program: _execute.Program):
  index = np.searchsorted(position.batch.rows, position.live)
  seeds = position.batch.seeds[index]
  return _execute.row_inputs(position.values, seeds, program.size, program.mesh)


def _train_batch(
  strategy: Strategy, job: GroupJob, position: LoopPosition
) -> tuple[dict[str, Any], list[int]]:
  """Trains ``position``'s batch to its end; the rows' ended record and the widths used."""
  batch, used = position.batch, position.widths
  in_batch = lambda rows: np.searchsorted(batch.rows, rows)
  boundaries = strategy.boundaries(batch)
  _answers.check_boundaries(
    strategy, boundaries, job.steps, job.programs.get(position.key).segments.steps
  )
  for boundary in [b for b in boundaries if b > position.step]:
    program = job.programs.get(position.key)
    history = position.history["hyperparameters"]  # written first: a save may come mid-way
    for name, value in position.values.items():
      history[name][
        in_batch(position.live), position.step // job.log_every : boundary // job.log_every
      ] = value[:, None]
    position.carry = _execute.train_steps(
      program,
      position.carry,
      _inputs(position, program),
      position.step,
      boundary,
      None if job.state is None else job.state.saver(position, strategy),
      job.advancer(len(position.live)),
      _live(job, position),
    )
    position.spent += len(position.live) * (boundary - position.step)
    used.append(position.key[1])  # once trained to the boundary (a save may come before)
    position.step = boundary
    if boundary >= job.steps:
      break
    pulled = _host(position.carry, len(position.live))  # once, for the hook and the strategy
    if job.on_segment is not None:
      _segment_rows(job, position, pulled, boundary)
    at = boundary // job.log_every - 1
    logged, start, diverged_at = pulled
    so_far = jax.tree.map(lambda x, at=at: x[:, : at + 1], logged)
    scores = Scores(boundary, position.live, so_far, diverged_at >= 0)
    decision = strategy.observe(batch, scores)
    if isinstance(decision, Stop):
      stopping = np.isin(position.live, np.asarray(decision.rows, np.int64))
      if stopping.any():
        ended = _ended(logged, start, diverged_at, np.flatnonzero(stopping), at, boundary)
        position.stopped.append({"rows": position.live[stopping], **ended})
      going = np.flatnonzero(~stopping)
      if not len(going):
        position.live = position.live[going]
        break
      position.key = job.programs.narrow_key(len(going))
      position.carry = _programs.repack(position.carry, going, job.programs.get(position.key))
      position.live = position.live[going]
      position.values = {n: v[going] for n, v in position.values.items()}
    elif isinstance(decision, Exploit):
      _answers.check_exploit(strategy, decision, position.live, list(position.values))
      _exploit(position, decision, job.programs.get(position.key), at, in_batch)
    elif not isinstance(decision, Continue):
      raise ValueError(
        f"{type(strategy).__name__}.observe returned {decision!r}: a Continue, Stop or Exploit"
      )
  return _ended_batch(job, position), used


def _live(job: GroupJob, position: LoopPosition) -> Callable[[Any, int], None] | None:
  """``train_steps``' ``at_boundary`` for ``job.on_segment`` (None without it): the rows still
  training, pulled from the devices at each segment boundary inside the batch's training."""
  if job.on_segment is None:
    return None
  return lambda carry, step: _segment_rows(job, position, _host(carry, len(position.live)), step)


def _segment_rows(job: GroupJob, position: LoopPosition, pulled: tuple, step: int) -> None:
  """``job.on_segment`` given the rows still training as they are at ``step``: their logs so
  far (the later ones NaN), ``pulled`` from the devices (:func:`_host`), and their values as
  asked."""
  logged, start, diverged_at = pulled
  rows = np.arange(len(position.live))
  so_far = _ended(logged, start, diverged_at, rows, step // job.log_every - 1, step)
  index = np.searchsorted(position.batch.rows, position.live)
  values = {n: np.asarray(v, np.float64)[index] for n, v in position.batch.values.items()}
  job.on_segment({"rows": position.live, "values": values, **so_far})


def _exploit(position: LoopPosition, decision: Exploit, program, at: int, in_batch) -> None:
  sources = np.asarray(decision.sources, np.int64)
  index = np.arange(program.size)
  index[: len(position.live)] = np.searchsorted(position.live, sources)
  moved = sources != position.live
  if moved.any():
    position.carry = _programs.copy_rows(position.carry, index, program)
  position.values = {n: np.asarray(decision.values[n], np.float64) for n in position.values}
  position.history["copied_from"][in_batch(position.live[moved]), at] = sources[moved]


def _ended_batch(job: GroupJob, position: LoopPosition) -> dict[str, Any]:
  """The batch's rows as they ended: those still training now, at the last step, and the
  stopped ones; with their values (as asked) and the loop's history."""
  batch, pieces = position.batch, list(position.stopped)
  if len(position.live):
    program = job.programs.get(position.key)
    metrics, diverged = _execute.host_rows(
      _execute.chunk_outputs(position.carry), len(position.live)
    )
    if job.keep is not None:
      job.keep(position.live, metrics, diverged, position.carry, program.mesh)
    pieces.append(
      {
        "rows": position.live,
        "metrics": metrics,
        "diverged_at_step": diverged,
        "stopped_at_step": np.full(len(position.live), job.steps, np.int64),
      }
    )
  ended = _merged(pieces, batch.rows)
  ended["values"] = {n: np.asarray(v, np.float64) for n, v in batch.values.items()}
  ended[HISTORY] = position.history
  return ended


def _finish(
  strategy: Strategy, job: GroupJob, batch: Batch, ended: dict[str, Any], widths: tuple[int, ...]
) -> None:
  """Saves the batch's rows with the strategy's state and the widths they trained at, forgets
  its device state, tells it."""
  if job.checkpoint is not None:
    job.checkpoint.save_batch(job.index, batch, _answers.checked_state(strategy), ended, widths)
  if job.state is not None:
    job.state.clear()
  if job.after_save is not None:
    job.after_save()
  if job.on_saved is not None:
    job.on_saved(ended)
  strategy.tell(batch, _outcome(ended, widths))


def _outcome(ended: dict[str, Any], widths: tuple[int, ...] | np.ndarray) -> Outcome:
  return Outcome(
    ended["rows"],
    ended["metrics"],
    ended["diverged_at_step"],
    ended["stopped_at_step"],
    tuple(int(w) for w in widths),
  )


def _resume(strategy: Strategy, job: GroupJob, pieces: list) -> LoopPosition | None:
  """What a saved sweep left of this group: its finished batches (into ``pieces``), the
  strategy as it was, and the unfinished batch's position (None if none)."""
  if job.checkpoint is None:
    return None
  saved = job.saved
  pieces.extend(s.ended for s in saved)
  if any(s.state is None for s in saved):  # seeds added: renumbered, told anew
    if job.state is not None:
      job.state.clear()  # an unfinished batch of the old numbering trains again
    for s in saved:
      strategy.tell(s.batch, _outcome(s.ended, s.widths))
    return None
  position = None if job.state is None else job.state.restore(job.programs)
  last = saved[-1] if saved else None
  if position is not None and (last is None or position.batch.number > last.batch.number):
    strategy.restore(position.strategy_state)
    return position
  if job.state is not None:
    job.state.clear()
  if last is not None:
    strategy.restore(last.state)
    strategy.tell(last.batch, _outcome(last.ended, last.widths))
  return None
