"""The training state of an unfinished chunk, saved with Orbax now and then.

A chunk's carried state (parameters, model state, optimizer state,
divergence flags and the metrics logged so far, all on the devices) is
saved under ``DIR/state/g<group>-<first>-n<count>-s<size>/<step>/`` every
``checkpoint_every`` seconds of training, by Orbax's ``CheckpointManager``:
each process writes its own devices' shards, and a save is committed
atomically (Orbax writes to a temporary folder and renames it), keeping the
latest only. A sweep killed in the middle of a chunk restores the saved
state and continues from that step; its results equal an uninterrupted
run's bit for bit. Once the chunk is finished (its rows in ``chunks/``) its
state is deleted.

(Finished chunks stay small ``.npz`` files of host rows, see
:mod:`momentum_jax.sweep._checkpoint`; only the device state needs Orbax.)
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

from momentum_jax.sweep._checkpoint import STATE_DIR



class ChunkState:
  """The saved state of one chunk: restore it, save it when due, delete it when done.

  Args:
    out_dir: The sweep's output folder.
    group: The optimizer group's position in the config.
    indices: The chunk's configurations (within the group).
    size: The chunk's padded size (the program's shape).
    every: Seconds of training between saves; ``None``: never save.
  """

  def __init__(self, out_dir: str | Path, group: int, indices: np.ndarray, size: int,
               every: float | None):
    name = f"g{group:03d}-{int(indices[0]):07d}-n{len(indices)}-s{size}"
    self.folder = Path(out_dir).resolve() / STATE_DIR / name
    self.every = every
    self.restored_step: int | None = None  # the step a resumed chunk continued from
    self._manager = None
    self._last = time.perf_counter()

  def _open(self):
    if self._manager is None:
      import orbax.checkpoint as ocp  # only a sweep that saves or resumes state needs it
      self._manager = ocp.CheckpointManager(self.folder, options=ocp.CheckpointManagerOptions(
          max_to_keep=1, create=True, enable_async_checkpointing=False))
    return self._manager

  def restore(self, abstract: Any) -> tuple[Any, int] | None:
    """``(carry, step)`` saved for this chunk, with ``abstract``'s shardings; None if none."""
    if not self.folder.is_dir():
      return None
    manager = self._open()
    step = manager.latest_step()
    if step is None:
      return None
    import orbax.checkpoint as ocp
    self.restored_step = int(step)
    return manager.restore(step, args=ocp.args.StandardRestore(abstract)), int(step)

  def maybe_save(self, carry: Any, step: int) -> bool:
    """Saves ``carry`` (the state after ``step`` steps) if ``every`` seconds have passed."""
    if self.every is None:
      return False
    due = time.perf_counter() - self._last >= self.every
    if jax.process_count() > 1:  # a save is collective: every process must agree
      due = bool(multihost_utils.broadcast_one_to_all(np.array(due)))
    if not due:
      return False
    import orbax.checkpoint as ocp
    self._open().save(step, args=ocp.args.StandardSave(carry), force=True)
    self._last = time.perf_counter()
    return True

  def delete(self) -> None:
    """Forgets the state: the chunk is finished and saved with its rows."""
    if self._manager is not None:
      self._manager.close()
      self._manager = None
    if jax.process_index() == 0:
      shutil.rmtree(self.folder, ignore_errors=True)
