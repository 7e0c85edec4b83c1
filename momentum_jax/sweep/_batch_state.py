"""The state of an unfinished batch, saved with Orbax now and then: what makes every search
resumable mid-run.

A group's unfinished batch is its device carry (parameters, model state,
optimizer state, divergence flags and the metrics logged so far) and the
loop's position (:class:`LoopPosition`: the batch, the rows still training,
their hyperparameters, the rows stopped so far, the history of exploits,
the step and the program) and its strategy's state. Every
``checkpoint_every`` seconds of training, between two segments, the
position is written atomically to ``DIR/state/g<group>/loop-<n>.npz``, then
the carry by Orbax's ``CheckpointManager`` as its step ``n`` (each process
writing its own devices' shards; a save committed atomically by a rename),
keeping the latest only. A sweep killed anywhere restores the latest carry
and the position written with it, and continues: its results equal an
uninterrupted run's bit for bit. Once the batch is saved with its rows
(:meth:`momentum_jax.sweep._checkpoint.Checkpoint.save_batch`) its state
is deleted.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

from momentum_jax.runtime import files as _files
from momentum_jax.sweep._answers import checked_state
from momentum_jax.sweep._arrays import pack, unpack
from momentum_jax.sweep._checkpoint import STATE_DIR
from momentum_jax.sweep.strategies import Batch, Strategy


@dataclasses.dataclass
class LoopPosition:
  """Where the segment loop is in a batch.

  Attributes:
    batch: The batch (rows ascending).
    live: The rows still training, in the carry's order.
    values: Their hyperparameters now, name -> ``[len(live)]``.
    step: The step the carry has trained to.
    key: The program training them, ``(size, width)``.
    carry: The device state.
    stopped: The rows stopped so far, pieces of ``rows``, ``metrics``,
      ``diverged_at_step``, ``stopped_at_step``.
    history: ``hyperparameters`` (name -> ``[batch rows, logs]``, the value in
      force during each log interval) and ``copied_from`` (``[batch rows,
      logs]``, the row each copied after each log, -1 for none).
    strategy_state: The strategy's state when the position was saved (on restore).
  """

  batch: Batch
  live: np.ndarray
  values: dict[str, np.ndarray]
  step: int
  key: tuple[int, int]
  carry: Any
  stopped: list[dict[str, Any]]
  history: dict[str, Any]
  strategy_state: dict[str, Any] | None = None
  spent: int = 0  # configuration-steps trained in this process (the progress bar's)
  widths: list[int] = dataclasses.field(default_factory=list)  # per boundary trained to


class _Saver:
  """``maybe_save(carry, step)`` of one position, as the segment loop's ``state``."""

  def __init__(self, owner: BatchState, position: LoopPosition, strategy: Strategy):
    self.owner, self.position, self.strategy = owner, position, strategy

  def maybe_save(self, carry: Any, step: int) -> bool:
    return self.owner.maybe_save(self.position, self.strategy, carry, step)


class BatchState:
  """A group's unfinished batch on disk: save it when due, restore it, clear it.

  Args:
    out_dir: The sweep's output folder.
    group: The group's position in the config.
    every: Seconds of training between saves; ``None``: never save.
  """

  def __init__(self, out_dir: str | Path, group: int, every: float | None):
    self.folder = Path(out_dir).resolve() / STATE_DIR / f"g{group:03d}"
    self.every = every
    self._manager = None
    self._last = time.perf_counter()
    self._saves = 0

  def _open(self):
    if self._manager is None:
      import orbax.checkpoint as ocp  # only a sweep that saves or resumes state needs it

      self._manager = ocp.CheckpointManager(
        self.folder / "carry",
        options=(
          ocp.CheckpointManagerOptions(max_to_keep=1, create=True, enable_async_checkpointing=False)
        ),
      )
    return self._manager

  def saver(self, position: LoopPosition, strategy: Strategy) -> _Saver:
    return _Saver(self, position, strategy)

  def maybe_save(self, position: LoopPosition, strategy: Strategy, carry: Any, step: int) -> bool:
    """Saves ``position`` at ``step`` with ``carry`` if ``every`` seconds have passed."""
    if self.every is None:
      return False
    due = time.perf_counter() - self._last >= self.every
    if jax.process_count() > 1:  # a save is collective: every process must agree
      due = bool(multihost_utils.broadcast_one_to_all(np.array(due)))
    if not due:
      return False
    import orbax.checkpoint as ocp

    manager = self._open()
    number = max(self._saves, (manager.latest_step() or 0)) + 1
    if jax.process_index() == 0:
      self.folder.mkdir(parents=True, exist_ok=True)
      _files.atomic_write_bytes(
        self.folder / f"loop-{number}.npz", _position_bytes(position, checked_state(strategy), step)
      )
    manager.save(number, args=ocp.args.StandardSave(carry), force=True)
    if jax.process_index() == 0:  # the position of an older carry is no longer wanted
      for old in self.folder.glob("loop-*.npz"):
        if old.name != f"loop-{number}.npz":
          old.unlink(missing_ok=True)
    self._saves = number
    self._last = time.perf_counter()
    return True

  def restore(self, programs) -> LoopPosition | None:
    """The saved position, its carry laid out as its program's; None if none."""
    if not (self.folder / "carry").is_dir():
      return None
    manager = self._open()
    number = manager.latest_step()
    if number is None or not (self.folder / f"loop-{number}.npz").is_file():
      return None
    import orbax.checkpoint as ocp

    with np.load(self.folder / f"loop-{number}.npz") as saved:
      arrays = {name: saved[name] for name in saved.files}
    meta = json.loads(str(arrays["position"]))
    key = tuple(meta["key"])
    carry = manager.restore(number, args=ocp.args.StandardRestore(programs.get(key).carry))
    self._saves = number
    stopped = unpack("stopped:", arrays)
    return LoopPosition(
      Batch.from_record(meta["batch"]),
      np.asarray(meta["live"], np.int64),
      unpack("values:", arrays),
      meta["step"],
      key,
      carry,
      [stopped] if stopped else [],
      unpack("history:", arrays),
      meta["strategy"],
      widths=list(meta["widths"]),
    )

  def clear(self) -> None:
    """Forgets the state: the batch is finished and saved with its rows."""
    if self._manager is not None:
      self._manager.close()
      self._manager = None
    if jax.process_index() == 0:
      shutil.rmtree(self.folder, ignore_errors=True)
    self._last = time.perf_counter()


def _position_bytes(position: LoopPosition, strategy_state: dict[str, Any], step: int) -> bytes:
  meta = {
    "batch": position.batch.record(),
    "live": position.live.tolist(),
    "step": step,
    "key": list(position.key),
    "strategy": _files.jsonable(strategy_state),
    "widths": list(position.widths),
  }
  arrays = {"position": np.array(json.dumps(meta))}
  arrays.update(pack("values:", position.values))
  arrays.update(pack("history:", position.history))
  if position.stopped:
    arrays.update(pack("stopped:", jax.tree.map(lambda *xs: np.concatenate(xs), *position.stopped)))
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  return buffer.getvalue()
