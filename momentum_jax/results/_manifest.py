"""The manifest: a typed record of what is needed to trust and repeat a sweep.

A sweep's :class:`Manifest` is built once, by the engine
(:mod:`momentum_jax.sweep._record`), and written as ``manifest.json``
beside the tables. Code reads its fields by name (``manifest.steps``,
``manifest.timings["run_seconds"]``). It is also a read-only mapping of the
same names (``manifest["steps"]``, ``dict(manifest)``), as the JSON file
reads, so scripts written against the file work on the record too.

:meth:`Manifest.from_dict` reads a file's dict: fields it lacks (a manifest
written by hand, or by another version) are left at their defaults, and
keys the record does not know are kept in :attr:`Manifest.extra` and
written back, so nothing is lost on a round trip.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Manifest(Mapping):
  """What a sweep was, where and how it ran (``manifest.json``).

  Attributes:
    config: The configuration as given, JSON-serialisable (objects by import path).
    name: The sweep's name.
    problem: The problem's name.
    problem_record: The problem's fingerprinted facts: its data's hash or
      stream, its loss and metrics, its parameters' shapes.
    problem_builder: How the problem was built: ``{"name": builder,
      "options": {...}}`` (the options typed), or None for a Problem object;
      :func:`~momentum_jax.results.load_model` builds it again from this.
    search: The search: its method, ranges and drawn points (and what a
      strategy recorded).
    limits: Per optimizer group and swept hyperparameter, ``[low, high]``:
      a searched end the optimizer refuses to step beyond, ``None`` where
      it takes a value past it (the report's boundary warnings read it).
    num_configs: Configurations in the sweep, seeds counted.
    steps: Training steps per configuration.
    versions: Package versions.
    devices: The devices JAX had.
    num_processes: JAX processes (hosts).
    timings: Seconds spent: ``compile_seconds`` (compiling, or reading
      from the cache), ``run_seconds`` (training), ``probe_seconds``
      (timing widths).
    compilations: Programs compiled (or read from the cache) for training.
    programs: Per program: its ``group``, ``compile_seconds``,
      ``xla_seconds``, ``cache_hit`` (read back from either cache) and
      ``program_cache``: ``"read"`` (kept by
      :mod:`momentum_jax.sweep._program_cache`, read back untraced),
      ``"written"`` (compiled and kept), or ``"not kept: <why>"``.
    compile_cache: The persistent compilation cache's folder, or None when off.
    scheduler: The scheduler's rungs, sizes and configuration-steps, or None.
    probe_compilations: Programs compiled to time widths (``width="measure"``).
    chunk_size: Per group, configurations trained together.
    execution: The widths chosen and why, the compiler options, segments.
    memory: The memory estimate per configuration and the budget.
    checkpoint: The output folder's checkpoint facts (what was resumed), or None.
    models: With ``keep:``, the kept runs, best configuration first: per run
      its ``rank`` (as ``results.load_model`` takes it), ``config_id``,
      ``seed``, ``path`` (its folder, relative to the output folder:
      ``models/rank_<r>/seed_<s>``), the ``metric`` ranked by, the run's
      ``value`` of it and its configuration's ``mean``; None without ``keep``.
    extra: Keys of a read manifest that this record does not know.
  """

  config: dict[str, Any] = dataclasses.field(default_factory=dict)
  name: str | None = None
  problem: str | None = None
  problem_record: dict[str, Any] | None = None
  problem_builder: dict[str, Any] | None = None
  search: dict[str, Any] | None = None
  limits: dict[str, dict[str, list[float | None]]] = dataclasses.field(default_factory=dict)
  num_configs: int | None = None
  steps: int | None = None
  versions: dict[str, str] = dataclasses.field(default_factory=dict)
  devices: list[str] = dataclasses.field(default_factory=list)
  num_processes: int = 1
  timings: dict[str, float] = dataclasses.field(default_factory=dict)
  compilations: int | None = None
  programs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  compile_cache: str | None = None
  scheduler: dict[str, Any] | None = None
  probe_compilations: int = 0
  chunk_size: dict[str, int] = dataclasses.field(default_factory=dict)
  execution: dict[str, Any] = dataclasses.field(default_factory=dict)
  memory: dict[str, Any] = dataclasses.field(default_factory=dict)
  checkpoint: dict[str, Any] | None = None
  models: list[dict[str, Any]] | None = None
  extra: dict[str, Any] = dataclasses.field(default_factory=dict)

  @classmethod
  def from_dict(cls, raw: Mapping[str, Any] | None) -> Manifest:
    """The record of a manifest's dict (as ``manifest.json`` holds it); a Manifest as it is."""
    if isinstance(raw, Manifest):
      return raw
    raw = dict(raw or {})
    known = {k: raw.pop(k) for k in _names(cls) if k in raw and k != "extra"}
    return cls(**known, extra=raw)

  def to_dict(self) -> dict[str, Any]:
    """The manifest as ``manifest.json`` holds it (``extra``'s keys at the top level)."""
    out = {name: getattr(self, name) for name in _names(Manifest) if name != "extra"}
    return {**out, **self.extra}

  def __getitem__(self, key: str) -> Any:
    if key in self.extra:
      return self.extra[key]
    if key == "extra" or key not in _names(Manifest):  # "extra" is the record's, not the file's
      raise KeyError(key)
    return getattr(self, key)

  def __iter__(self) -> Iterator[str]:
    return iter([*(n for n in _names(Manifest) if n != "extra"), *self.extra])

  def __len__(self) -> int:
    return len(_names(Manifest)) - 1 + len(self.extra)


def _names(cls) -> tuple[str, ...]:
  return tuple(field.name for field in dataclasses.fields(cls))
