"""Files written once, whole: the atomic writes and the JSON encoding every writer shares.

Results, figures, checkpoints and the experiments write through these, so a
killed process never leaves a truncated file, and numpy values become JSON
one way everywhere.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
  """Yields a temporary path beside ``path`` that replaces ``path`` on success.

  Whatever is written to the yielded path becomes ``path`` in one
  ``os.replace`` once the block exits normally; if the block or the replace
  raises, the temporary file is removed and ``path`` keeps its old content.
  The temporary file is in the same folder because ``os.replace`` is only
  atomic within one file system.

  Args:
    path: The file to write; its folder must exist.

  Yields:
    The temporary path to write to (its suffix is ``.tmp``, so pass the format
    explicitly to writers that guess it from the name).
  """
  path = Path(path)
  temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
  try:
    yield temporary
    os.replace(temporary, path)
  finally:
    temporary.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
  """Writes ``data`` to ``path`` atomically: readers see the old or the new file.

  Args:
    path: The file to write; its folder must exist.
    data: The whole new content.

  Returns:
    ``path`` as a ``Path``.
  """
  path = Path(path)
  with atomic_path(path) as temporary:
    # os.open applies the umask, unlike tempfile's private 0o600 files.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      # Without fsync a power cut after the rename can leave an empty file.
      os.fsync(f.fileno())
  return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
  """Writes ``text`` to ``path`` atomically, UTF-8 encoded (see :func:`atomic_write_bytes`).

  Args:
    path: The file to write; its folder must exist.
    text: The whole new content.

  Returns:
    ``path`` as a ``Path``.
  """
  return atomic_write_bytes(path, text.encode("utf-8"))


def json_default(value: Any) -> Any:
  """``json.dumps``'s ``default``: numpy scalars and arrays, and paths, as JSON values."""
  # The engine's numbers often arrive as numpy scalars or arrays.
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, os.PathLike):
    return os.fspath(value)
  raise TypeError(f"values must be JSON-serialisable, got {type(value).__name__}: {value!r}")


def jsonable(value: Any) -> Any:
  """``value`` with string keys and numpy scalars as Python numbers: what JSON reads back."""
  if isinstance(value, Mapping):
    return {str(k): jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [jsonable(v) for v in value]
  if isinstance(value, np.generic):
    return value.item()
  return value
