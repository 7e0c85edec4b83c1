"""The engine's compiled programs kept across runs and found without tracing them.

JAX's persistent cache (:mod:`momentum_jax.runtime.compile_cache`) is keyed by the
lowered program, so a hit there still pays to trace and lower it: about
1.2 s of the 1.9 s the quickstart's second run spent compiling
(``benchmarks/RESULTS.md``, run 12). This cache is keyed instead by what
determines a sweep program when every line of its code is momentum_jax's
or optax's, and a hit is an executable read back with no trace at all:

- the problem as built: a built-in problem's name and options (plain data),
  its data's digest, its loss and metrics;
- the group's optimizer: its factory (momentum_jax's or optax's), its static
  options and schedule (plain data), and the names of the swept
  hyperparameters (their values are inputs of the program, so a sweep that
  differs only in values hits, as with JAX's cache);
- the shared seed, the training config, the width, the chunk size and the
  segment's length;
- the devices (ids, kinds, platform version) and the host's CPU (model and
  instruction-set flags), the compile options, ``XLA_FLAGS``, JAX's config,
  the versions the manifest records (Python, momentum_jax, jax, jaxlib, optax,
  flax, numpy, pandas) and chex's and ml_dtypes', and a digest of
  momentum_jax's own source files.

A program whose code the key cannot see is not kept here, and goes through
JAX's cache as before: a problem built by the caller's own function or given
as a ``Problem`` object, a name registered in ``problems.PROBLEMS`` from
elsewhere, an optimizer from another package, options that are not plain
data, a multi-process sweep. Code that patches momentum_jax's functions at
run time (as some tests do) should set ``MOMENTUM_JAX_PROGRAM_CACHE=off``:
the source digest cannot see a patch.

The entries live in ``momentum_jax_programs/`` inside the compilation cache's
folder (so ``MOMENTUM_JAX_COMPILE_CACHE`` moves it and ``off`` turns it off
too), are pickles, and so are code this process would run: the folder is
checked to be private as the compilation cache's is. An entry is written
only from a fresh compilation: JAX's cache is skipped for a program kept
here (an executable JAX read back from its cache does not serialize whole
on the CPU: its copy fails at run time with a missing kernel). An entry that
no longer loads is discarded, with a warning, and the program compiled again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import platform
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import jax
from jax.experimental import serialize_executable

from momentum_jax import problems
from momentum_jax.runtime import compile_cache as _compile_cache
from momentum_jax.runtime import files as _files
from momentum_jax.runtime.versions import versions

ENV_VAR = "MOMENTUM_JAX_PROGRAM_CACHE"
FOLDER = "momentum_jax_programs"
# Bumped when an entry's layout changes: older entries then miss.
FORMAT = 1
_OWN_MODULES = ("momentum_jax", "optax")

_lock = threading.Lock()
_folder: dict[str, Any] = {}  # "folder" and "why", once decided


def _plain(value: Any) -> bool:
  """Whether ``value`` is plain data (JSON's kinds), whose ``repr`` says all of it."""
  if value is None or isinstance(value, (bool, int, float, str)):
    return True
  if isinstance(value, (list, tuple)):
    return all(_plain(v) for v in value)
  if isinstance(value, dict):
    return all(isinstance(k, str) and _plain(v) for k, v in value.items())
  return False


def _unwrapped(function: Any) -> Any:
  while isinstance(function, functools.partial):  # optax.nadam is a partial of optax.adam
    function = function.func
  return function


def _own(function: Any) -> bool:
  module = getattr(_unwrapped(function), "__module__", None) or ""
  return module.split(".")[0] in _OWN_MODULES


def sweep_identity(config, record: dict[str, Any]) -> dict[str, Any] | str:
  """The problem's part of every program key of a sweep, or why its programs are not kept.

  Args:
    config: The :class:`~momentum_jax.sweep.SweepConfig`.
    record: Its problem's record (:func:`momentum_jax.sweep._fingerprint.problem_record`):
      the data's digest, the loss's and metrics' import paths.

  Returns:
    A dict of plain data, or a sentence saying why the programs are not kept.
  """
  if os.environ.get(ENV_VAR, "").strip().lower() == "off":
    return f"{ENV_VAR}=off"
  if jax.process_count() > 1:
    return "a multi-process sweep"
  if config.problem_source is not None or not _own(problems.PROBLEMS.get(config.problem)):
    return "the problem is built by code outside momentum_jax"
  if not _plain(config.problem_options):
    return "the problem's options are not plain data"
  functions = [record["loss"]] + ([] if record["metrics"] is None else [record["metrics"]])
  if any(f.split(".")[0].split(":")[0] not in _OWN_MODULES for f in functions):
    return "the problem's loss or metrics are code outside momentum_jax"
  return {
    "problem": config.problem,
    "options": config.problem_options,
    "data": record["data"],
    "loss": record["loss"],
    "metrics": record["metrics"],
  }


def _optimizer_identity(spec) -> dict[str, Any] | str:
  if not _own(spec.factory):
    return f"the optimizer {spec.name} is code outside momentum_jax and optax"
  schedule = None
  if spec.schedule is not None:
    schedule = {
      "name": spec.schedule.name,
      "unit": spec.schedule.unit,
      "static": dict(spec.schedule.static),
    }
  static = dict(spec.static)
  if not _plain(static) or not _plain(schedule):
    return f"the optimizer {spec.name}'s options are not plain data"
  eval_params = None
  if spec.eval_params is not None:
    if not _own(spec.eval_params):
      return f"the optimizer {spec.name}'s eval_params is code outside momentum_jax and optax"
    function = _unwrapped(spec.eval_params)
    eval_params = f"{function.__module__}:{function.__qualname__}"
  # The config's name too: partials of one function (optax.nadam, optax.adam) differ by it.
  factory = _unwrapped(spec.factory)
  return {
    "name": spec.name,
    "factory": f"{factory.__module__}:{factory.__qualname__}",
    "static": static,
    "schedule": schedule,
    "eval_params": eval_params,
  }


@functools.cache
def _source_digest() -> str | None:
  """A digest of momentum_jax's Python files, as installed (or checked out); None if unreadable.

  (Imported from a zip, say: then no program is kept, for want of a way to
  tell one version's from another's.)
  """
  root = Path(__file__).resolve().parent
  digest = hashlib.blake2b(digest_size=16)
  paths = sorted(root.rglob("*.py"))
  try:
    for path in paths:
      digest.update(str(path.relative_to(root)).encode())
      digest.update(path.read_bytes())
  except OSError:
    return None
  return digest.hexdigest() if paths else None


@functools.cache
def _host_cpu() -> str:
  """The host CPU's model and instruction-set flags: XLA's CPU code is built for them.

  (A cache folder in a home directory shared by machines of other CPUs must
  not hand one an executable that uses instructions it lacks.)
  """
  try:
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
      first = info.read().split("\n\n", 1)[0]
    wanted = [
      line
      for line in first.splitlines()
      if line.split(":")[0].strip()
      in ("vendor_id", "model name", "flags", "Features", "CPU implementer", "CPU part")
    ]
    if wanted:
      return hashlib.blake2b("\n".join(wanted).encode(), digest_size=16).hexdigest()
  except OSError:
    pass
  return f"{platform.machine()} {platform.processor()}"


@functools.cache
def _versions() -> dict[str, str]:
  return {
    **versions("chex", "ml_dtypes"),
    "momentum_jax_source": _source_digest(),
    "host_cpu": _host_cpu(),
  }


def _jax_config() -> dict[str, str]:
  """JAX's settings as this thread sees them, but for where its cache lives."""
  return {
    name: repr(value)
    for name, value in jax.config.values.items()
    if "compilation_cache" not in name and "persistent_cache" not in name
  }


def key(
  identity: dict[str, Any] | str | None,
  run,
  group,
  width: int,
  size: int,
  segments,
  mesh,
  options: dict[str, Any],
) -> tuple[str | None, str | None]:
  """``(key, None)`` for a program kept here, or ``(None, why not)``.

  ``identity`` is :func:`sweep_identity`'s (``None``: a caller that gave
  none, whose programs are not kept). The program is ``group``'s with the
  setup ``run`` at ``width`` for chunks of ``size``, trained in
  ``segments`` on ``mesh``, compiled with ``options``.
  """
  if identity is None:
    return None, "no sweep identity was given"
  if isinstance(identity, str):
    return None, identity
  if _compile_cache.cache_switch is None:
    return None, "this JAX has no thread-local switch for its compilation cache"
  if (why := folder()[1]) is not None:
    return None, why
  if _versions()["momentum_jax_source"] is None:
    return None, "momentum_jax's source files cannot be read (to tell its versions apart)"
  optimizer = _optimizer_identity(group.spec)
  if isinstance(optimizer, str):
    return None, optimizer
  devices = [(d.id, d.platform, d.device_kind, d.process_index) for d in mesh.devices.flat]
  stream = None
  if run.stream is not None:  # the batches are inputs: their shapes shape the program
    stream = [(list(a.shape), str(a.dtype)) for a in run.stream.example]
  description = {
    "format": FORMAT,
    "problem": identity,
    "optimizer": optimizer,
    "hyperparameters": sorted(group.values),
    "shared_seed": group.shared_seed,
    "train": repr(run.config),
    "segment_logs": segments.logs,
    "segment_train": repr(segments.config),
    "width": width,
    "size": size,
    "devices": devices,
    "mesh_axes": list(mesh.axis_names),
    "platform_version": mesh.devices.flat[0].client.platform_version,
    "options": {k: repr(v) for k, v in sorted(options.items())},
    "xla_flags": os.environ.get("XLA_FLAGS", ""),
    "versions": _versions(),
    "jax_config": _jax_config(),
    "stream": stream,
  }
  text = json.dumps(description, sort_keys=True, default=repr)
  return hashlib.blake2b(text.encode(), digest_size=20).hexdigest(), None


def folder() -> tuple[Path | None, str | None]:
  """``(the entries' folder, None)``, made private; or ``(None, why not)``: off, or refused."""
  with _lock:
    if "folder" not in _folder:
      _folder["folder"], _folder["why"] = _choose()
    return _folder["folder"], _folder["why"]


def _choose() -> tuple[Path | None, str | None]:
  cache = _compile_cache.enable()
  if cache is None:
    return None, "the compilation cache is off"
  path = Path(cache) / FOLDER
  reason = _compile_cache.private_folder(path)
  if reason is not None:
    warnings.warn(
      f"not keeping compiled programs in {path}: {reason}. A kept program is "
      "code this process would run; make the folder private (chmod 700). "
      "Compiling through JAX's cache alone.",
      stacklevel=4,
    )
    return None, f"{path} was refused: {reason}"
  return path, None


def load(program_key: str, mesh) -> tuple[jax.stages.Compiled, float] | None:
  """The executable kept under ``program_key`` for ``mesh``'s devices and the seconds it took.

  None when there is none; an entry that does not load is deleted, with a
  warning, and None returned.
  """
  where, _ = folder()
  if where is None:
    return None
  path = where / f"{program_key}.pkl"
  start = time.perf_counter()
  try:
    blob = path.read_bytes()
  except FileNotFoundError:
    return None
  except OSError as error:
    warnings.warn(
      f"cannot read the kept program {path} ({error}); compiling it again",
      RuntimeWarning,
      stacklevel=3,
    )
    return None
  try:
    entry = pickle.loads(blob)
    if entry.get("format") != FORMAT:
      raise ValueError(f"format {entry.get('format')}, not {FORMAT}")
    devices = list(mesh.devices.flat)
    compiled = serialize_executable.deserialize_and_load(
      entry["executable"],
      entry["in_tree"],
      entry["out_tree"],
      backend=devices[0].client,
      execution_devices=devices,
    )
  except Exception as error:  # noqa: BLE001 -- whatever broke it, compiling again mends it
    warnings.warn(
      f"discarding the kept program {path}, which does not load "
      f"({type(error).__name__}: {error}); compiling it again",
      RuntimeWarning,
      stacklevel=3,
    )
    path.unlink(missing_ok=True)
    return None
  return compiled, time.perf_counter() - start


def store(program_key: str, compiled: jax.stages.Compiled) -> str | None:
  """Keeps ``compiled`` under ``program_key``; None when written, else why not."""
  where, why = folder()
  if where is None:
    return why
  try:
    executable, in_tree, out_tree = serialize_executable.serialize(compiled)
  except (ValueError, NotImplementedError) as error:
    return f"the executable does not serialize ({error})"
  data = pickle.dumps(
    {"format": FORMAT, "executable": executable, "in_tree": in_tree, "out_tree": out_tree},
    protocol=pickle.HIGHEST_PROTOCOL,
  )
  try:
    _files.atomic_write_bytes(where / f"{program_key}.pkl", data)
  except OSError as error:  # a full disk, say: the sweep goes on without keeping it
    return f"it could not be written ({error})"
  return None
