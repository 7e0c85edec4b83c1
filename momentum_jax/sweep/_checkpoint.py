"""Finished chunks on disk: what makes a sweep resumable and lets each host write its own share.

A sweep run with an output folder keeps, under ``DIR/chunks/``:

- ``sweep.json``: the fingerprint of the configuration (a SHA-256 of its
  canonical JSON, ``chunk_size`` left out since results do not depend on it),
  the configuration itself, the versions of the packages that compute, and the
  vmap width of each optimizer group (results are bit-identical for a given
  width, whatever the chunk size or device count; see the engine).
- one ``.npz`` file per chunk and process, ``g<group>-<first>-p<process>.npz``,
  holding the indices (within its group) of the configurations it finished,
  their ``diverged_at_step`` and every logged metric. Each process writes only
  the configurations its own devices computed.

Every file is written atomically (a temporary file, then ``os.replace``), so a
killed sweep leaves only whole chunks. Run again on the same folder with the
same configuration, the sweep skips every configuration already in a chunk
file; the results are the same as an uninterrupted run's, bit for bit. A
different configuration (or other package versions) in that folder is refused
with :class:`OutputDirError` unless ``overwrite`` is set.

A resumed sweep reads them back once (:meth:`Checkpoint.batches`), on every
process: on several hosts the folder must be on a file system they all see.
The chunk files stay, so re-running a finished sweep rewrites its tables and
figures without training again.

Why not Orbax (installed with Flax): a chunk's payload is a few small
host arrays of metrics, not device state, and each host must write its own
rows whenever its chunk ends, with no barrier. Orbax saves one global
checkpoint per step, synchronizing every host on each save, in a folder of
several files. One atomically renamed ``.npz`` per chunk and process needs
only NumPy and no coordination.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import numpy as np

from momentum_jax import results
from momentum_jax.runtime import files as _files
from momentum_jax.runtime.versions import versions  # noqa: F401  (the engine reads them here)
from momentum_jax.results._models import MODELS_DIR
from momentum_jax.sweep._arrays import METRIC_PREFIX, batch_arrays, unpack
from momentum_jax.sweep._errors import OutputDirError
from momentum_jax.sweep._recorded import extension, mismatch, recorded_sweep
from momentum_jax.sweep.strategies import OWN_FILES

CHUNKS_DIR = "chunks"
STATE_DIR = "state"  # unfinished batches' state (see momentum_jax.sweep._batch_state)
STATE_FILE = "sweep.json"
FORMAT = 1
# Result files of a finished sweep that --overwrite removes along with the chunks.
_RESULT_FILES = (
  results.SUMMARY_FILE,
  results.CURVES_FILE,
  results.MANIFEST_FILE,
  results.REPORT_FILE,
  *OWN_FILES,
)
_CHUNK_NAME = re.compile(r"g(\d+)-(\d+)-p(\d+)\.npz")


class SavedBatch(NamedTuple):
  """A finished batch as read back (:meth:`Checkpoint.batches`).

  Attributes:
    batch: The batch its strategy asked for.
    state: The strategy's state at the batch's end; ``None`` if saved before
      seeds were added (its rows renumbered).
    ended: Its rows as the segment loop ended them (``rows``, ``metrics``,
      ``diverged_at_step``, ``stopped_at_step``, ``values``, ``history``).
    widths: The widths it trained at, one per segment program (a strategy's
      :class:`~momentum_jax.sweep.strategies.Outcome` has them).
  """

  batch: Any
  state: dict[str, Any] | None
  ended: dict[str, Any]
  widths: np.ndarray


def check_output_folder(out_dir: Path) -> None:
  """Refuses an output folder that is not a folder, cannot be written, or is not a sweep's.

  Created if missing; a file written and removed in it proves it writable
  (permission bits do not tell: a read-only mount, a root user). Nothing in
  it is removed.

  Raises:
    OutputDirError: naming the path and what to do.
  """
  if out_dir.exists() and not out_dir.is_dir():
    raise OutputDirError(f"{out_dir}: not a folder; give --out a folder (new or a sweep's)")
  try:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=out_dir):
      pass
  except OSError as error:
    raise OutputDirError(
      f"{out_dir}: cannot write there ({error.strerror or error}); choose another output folder"
    ) from None
  for name, folder in ((CHUNKS_DIR, True), (STATE_DIR, True), (results.MANIFEST_FILE, False)):
    path = out_dir / name
    if path.exists() and path.is_dir() != folder:
      raise OutputDirError(
        f"{path}: a {'file' if folder else 'folder'} where a sweep keeps its "
        f"{'folder' if folder else 'manifest file'}: this is not a sweep's "
        "output folder; choose another (or remove it)"
      )


class Checkpoint:
  """The ``chunks/`` folder of one sweep's output folder.

  Create it with :meth:`open`, which checks that the folder belongs to this
  configuration (or clears it with ``overwrite``).
  """

  # Rows per setting now (the engine's); a batch saved with fewer seeds is renumbered.
  seeds_per_setting: int | None = None

  def __init__(self, folder: Path, state: dict[str, Any], resumed: bool):
    self.folder = folder
    self.state = state
    self.resumed = resumed

  @property
  def extended(self) -> list[str]:
    """How the search was raised since it first ran (``search.trials 24 -> 32``), if it was."""
    return list(self.state.get("extended", []))

  @property
  def widths(self) -> dict[str, int] | None:
    """The vmap width of each optimizer group, by label; None until recorded."""
    widths = self.state.get("widths")
    return None if widths is None else {k: int(v) for k, v in widths.items()}

  def record_widths(self, widths: Mapping[str, int], *, write: bool = True) -> None:
    """Records the widths chosen for a fresh sweep, so that a resumed one keeps them."""
    self.state = {**self.state, "widths": {k: int(v) for k, v in widths.items()}}
    if write:
      self._write_state()

  def _write_state(self) -> None:
    _files.atomic_write_text(
      self.folder / STATE_FILE,
      json.dumps(self.state, indent=2, sort_keys=True, default=_files.json_default),
    )

  @classmethod
  def open(
    cls,
    out_dir: str | Path,
    state: dict[str, Any],
    *,
    overwrite: bool,
    write: bool = True,
    appends: bool = True,
    reseeds: bool = True,
  ) -> "Checkpoint":
    """Opens (or starts) the checkpoint of the sweep described by ``state``.

    Args:
      out_dir: The sweep's output folder.
      state: ``{"fingerprint", "config", "versions"}`` of this run. On resume
        the recorded state, widths included (see :attr:`widths`), is kept.
      overwrite: Clear a different sweep's chunks and results instead of
        refusing.
      write: Whether this process creates and clears files (process 0 of
        several: the others only read).
      appends: Whether more trials or points would only add rows after the
        trained ones (a random search whose points cross a list would move them).
      reseeds: Whether the search may take more seeds: every row moves (the
        seed varies fastest), which a plain search takes up and one that
        ranks or asks (halving, PBT, Optuna, a user's) cannot.

    Raises:
      OutputDirError: if ``out_dir`` holds a different configuration's sweep
        (or one computed with other package versions) and not ``overwrite``.
    """
    out_dir = Path(out_dir)
    check_output_folder(out_dir)
    folder = out_dir / CHUNKS_DIR
    recorded = recorded_sweep(out_dir, folder / STATE_FILE, state["versions"])
    problem = None if recorded is None else mismatch(recorded, state)
    extended = (
      None
      if problem is None or recorded.get("finished_without_chunks")
      else (extension(recorded, state))
    )
    if extended is not None and not appends and "samples" in extended:
      raise OutputDirError(
        f"{out_dir} holds this sweep with fewer points ({extended}), and its groups cross "
        "the points with lists: new points would move the trained ones; run the larger "
        "search in another folder, or pass --overwrite to train it all again"
      )
    if extended is not None and not reseeds and "seeds" in extended:
      raise OutputDirError(
        f"{out_dir} holds this sweep with fewer seeds ({extended}): more seeds move every "
        "configuration's rows, which a search that ranks or asks as it trains, or keep:, "
        "cannot take up; run it in another folder, or pass --overwrite to train it all again"
      )
    if extended is not None:  # the same sweep, asked for more: keep what it trained
      recorded = {
        **recorded,
        "fingerprint": state["fingerprint"],
        "config": state["config"],
        "problem": state.get("problem"),
        "extended": [*recorded.get("extended", []), extended],
      }
      return cls._opened(folder, recorded, resumed=True, write=write)
    if problem is not None and not overwrite:
      raise OutputDirError(
        f"{out_dir} holds a sweep of {problem}; pass --overwrite (overwrite=True) to "
        f"replace it, or choose another output folder"
      )
    if problem is not None or recorded is None or recorded.get("finished_without_chunks"):
      if write and problem is not None:
        _clear(out_dir, folder)
      return cls._opened(folder, {"format": FORMAT, **state}, resumed=False, write=write)
    if write:  # what a killed write left behind: never a chunk, only litter
      for temporary in folder.glob(".*.tmp"):
        temporary.unlink(missing_ok=True)
    return cls(folder, recorded, resumed=True)

  @classmethod
  def _opened(cls, folder: Path, state: dict[str, Any], resumed: bool, write: bool) -> "Checkpoint":
    """The checkpoint of ``state``, written to ``folder`` (process 0)."""
    checkpoint = cls(folder, state, resumed=resumed)
    if write:
      folder.mkdir(parents=True, exist_ok=True)
      checkpoint._write_state()
    return checkpoint

  def _files(self, group: int) -> list[Path]:
    found = []
    for path in sorted(self.folder.glob(f"g{group:03d}-*.npz")):
      if _CHUNK_NAME.fullmatch(path.name):
        found.append(path)
    return found

  def save_batch(
    self,
    group: int,
    batch: Any,
    strategy_state: Mapping[str, Any],
    ended: Mapping[str, Any],
    widths: tuple[int, ...],
  ) -> Path | None:
    """Writes a finished batch of ``group`` atomically, with its strategy's state (process 0).

    The file holds the rows, where they diverged, their metrics, and what
    the segment loop resumes from: where each row stopped, its
    hyperparameters as asked, the loop's history of exploits, the widths
    it trained at, the batch (JSON) and the strategy's state at the
    batch's end (JSON). :meth:`batches` reads it back.
    """
    import jax  # the process index; jax is imported by any sweep anyway

    if jax.process_index() != 0:
      return None
    buffer = io.BytesIO()
    np.savez(buffer, **batch_arrays(batch, strategy_state, ended, widths, self.seeds_per_setting))
    name = f"g{group:03d}-{int(np.min(ended['rows'])):07d}-p000.npz"
    return _files.atomic_write_bytes(self.folder / name, buffer.getvalue())

  def batches(self, group: int) -> list[SavedBatch]:
    """``group``'s finished batches, in the order they trained, as the segment loop gave them
    to :meth:`save_batch`. A batch saved before seeds were added comes renumbered, its
    strategy state ``None``.

    Raises:
      OutputDirError: for a chunk file written by another version of the engine.
    """
    from momentum_jax.sweep.strategies import Batch

    found = []
    for path in self._files(group):
      with np.load(path) as chunk:
        arrays = {name: chunk[name] for name in chunk.files}
      if "batch" not in arrays:
        raise OutputDirError(
          f"{path} was written by an earlier momentum_jax, which this one "
          "cannot resume; pass --overwrite to train the sweep again"
        )
      batch = Batch.from_record(json.loads(str(arrays["batch"])))
      state = json.loads(str(arrays["strategy"]))
      saved_with = int(arrays.get("seeds_per_setting", self.seeds_per_setting or 0))
      if self.seeds_per_setting and saved_with != self.seeds_per_setting:
        # Saved before seeds were added: its rows renumbered, its strategy's state void.
        batch = dataclasses.replace(batch, rows=self._renumbered(batch.rows, saved_with))
        arrays["index"], state = self._renumbered(arrays["index"], saved_with), None
      ended = {
        "rows": arrays["index"],
        "diverged_at_step": arrays["diverged_at_step"],
        "stopped_at_step": arrays["stopped_at_step"],
        "metrics": unpack(METRIC_PREFIX, arrays),
        "values": unpack("values:", arrays),
        "history": unpack("history:", arrays),
      }
      found.append(SavedBatch(batch, state, ended, arrays["widths"]))
    return sorted(found, key=lambda saved: saved.batch.number)

  def _renumbered(self, rows: np.ndarray, saved_with: int) -> np.ndarray:
    """Rows numbered with ``saved_with`` seeds per setting, numbered with today's."""
    rows = np.asarray(rows, np.int64)
    return rows // saved_with * self.seeds_per_setting + rows % saved_with


def _clear(out_dir: Path, folder: Path) -> None:
  """Removes another sweep's chunks, state, kept models and results (``--overwrite``)."""
  shutil.rmtree(folder, ignore_errors=True)
  shutil.rmtree(out_dir / STATE_DIR, ignore_errors=True)
  shutil.rmtree(out_dir / MODELS_DIR, ignore_errors=True)  # keep:'s, the old sweep's
  for name in _RESULT_FILES:
    (out_dir / name).unlink(missing_ok=True)
