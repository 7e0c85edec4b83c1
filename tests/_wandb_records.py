"""W&B's offline run files read back: the records of a ``run-*.wandb`` file.

wandb 0.31 no longer ships a Python reader (``wandb.sdk.internal.datastore``
went with the Go core), so the tests read the format it wrote: LevelDB's log
format (github.com/google/leveldb, doc/log_format.md) after a 7-byte header
(``:W&B``, a 2-byte magic, a version byte), in 32 KiB blocks; each record
piece has a 7-byte header (CRC-32 of its type byte and data, little-endian
length, type: 1 full, 2 first, 3 middle, 4 last) and a record is one
``wandb_internal_pb2.Record``. The CRC is checked: a misread fails loudly.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

_BLOCK, _HEADER = 32768, 7
_FULL, _FIRST, _LAST = 1, 2, 4


def records(path: str | Path):
  """Each ``Record`` of a ``.wandb`` file, in order."""
  from wandb.proto import wandb_internal_pb2

  data = Path(path).read_bytes()
  if len(data) < _HEADER:  # a running run's file, its header not written yet
    return
  if data[:4] != b":W&B":
    raise ValueError(f"{path}: not a W&B run file (starts {data[:4]!r})")
  at, pieces = _HEADER, []
  while at + _HEADER <= len(data):
    if _BLOCK - at % _BLOCK < _HEADER:  # a block's tail too short for a header is padding
      at += _BLOCK - at % _BLOCK
      continue
    crc, length, kind = struct.unpack("<IHB", data[at : at + _HEADER])
    if at + _HEADER + length > len(data):  # a running run's file: its last piece half written
      break
    body = data[at + _HEADER : at + _HEADER + length]
    at += _HEADER + length
    if kind == 0 and length == 0:  # zeros written ahead of a record that never came
      continue
    if zlib.crc32(bytes([kind]) + body) & 0xFFFFFFFF != crc:
      raise ValueError(f"{path}: bad checksum at byte {at - length - _HEADER}")
    pieces = [body] if kind in (_FULL, _FIRST) else [*pieces, body]
    if kind in (_FULL, _LAST):
      record = wandb_internal_pb2.Record()
      record.ParseFromString(b"".join(pieces))
      yield record


def run_contents(path: str | Path) -> dict:
  """A run file's ``name``, ``group``, ``job_type``, ``config`` and ``history`` (step -> values;
  a step logged twice raises)."""
  found = {"config": {}, "history": {}}
  for record in records(path):
    kind = record.WhichOneof("record_type")
    if kind == "run":
      run = record.run
      found.update(name=run.display_name, group=run.run_group, job_type=run.job_type)
      found["config"].update(
        {
          item.key: json.loads(item.value_json)
          for item in run.config.update
          if item.key != "_wandb"
        }
      )
    elif kind == "history":
      items = {
        "/".join(item.nested_key) or item.key: json.loads(item.value_json)
        for item in record.history.item
      }
      step = int(items.pop("_step"))
      if step in found["history"]:
        raise ValueError(f"{path}: step {step} logged twice")
      found["history"][step] = {k: v for k, v in items.items() if not k.startswith("_")}
  return found
