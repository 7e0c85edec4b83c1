"""Compiled sweep programs kept across runs: JAX's persistent compilation cache.

A sweep's hyperparameter values are inputs of its program, not constants, so
a second run of the same sweep, or of one that differs only in the values
(same grid sizes, same model, same width), compiles the same programs. With
JAX's persistent cache (https://docs.jax.dev/en/latest/persistent_compilation_cache.html)
the executables come from disk: the quickstart's second run compiled in about
a quarter of the first's time (the rest is tracing and lowering; see
``benchmarks/RESULTS.md``, run 8). Programs whose whole code is momentum_jax's
or optax's skip even that: :mod:`momentum_jax.sweep._program_cache` keeps them,
keyed by what shapes them, in a folder inside this one, and reads them back
untraced; JAX's cache serves the rest (the caller's own models, losses and
optimizers).

:func:`enable` turns the cache on, in ``$XDG_CACHE_HOME/momentum_jax/xla``
(``~/.cache/momentum_jax/xla`` by default); ``MOMENTUM_JAX_COMPILE_CACHE=DIR``
moves it and ``MOMENTUM_JAX_COMPILE_CACHE=off`` leaves it off. The engine
compiles through :func:`compile`, which enables the cache on first use and says
whether a program came from it, so the command line, the experiments and
:func:`momentum_jax.sweep.run` all use it. It is JAX's process-wide setting:
once on, the caller's own programs that take as long to compile are cached
there too. A cache dir already set in JAX's config
(``JAX_COMPILATION_CACHE_DIR``, ``jax.config.update``) is kept as it is.

A cached executable is code that the process will run, so the folder must be
private: one that another user owns, or that others may write (the folder or,
without the sticky bit, a folder above it) is refused with a warning, and the
sweep compiles without the cache.

JAX writes no entry for a program with host callbacks, so the engine's
programs call nothing back (its progress bar advances on the host, between
segments).
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import jax

ENV_VAR = "MOMENTUM_JAX_COMPILE_CACHE"
# JAX caches only programs that took at least this long to compile (its
# default is 1 s). A hit costs a file read and a deserialization, ~10-50 ms
# for the engine's executables on the CPU, so programs that compile in 0.2 s
# are still worth keeping; below that the entries would mostly be JAX's own
# small helper programs, each a file written for little gain.
MIN_COMPILE_SECONDS = 0.2

_lock = threading.Lock()
_enabled: dict[str, Any] = {}  # {"folder": Path | None} once decided
_hits = threading.local()
_warned: set[str] = set()  # the unknown compile options already warned of
_listening = False

# JAX's own thread-local switch for its cache (``with cache_switch(False):``),
# a context manager of its private config module, used by JAX's tests; None
# where this JAX has none, and then momentum_jax.sweep._program_cache keeps nothing.
try:
  from jax._src import config as _jax_config

  cache_switch = getattr(_jax_config, "enable_compilation_cache", None)
except ImportError:  # pragma: no cover -- a JAX whose private layout moved
  cache_switch = None


def cache_home() -> Path:
  """``$XDG_CACHE_HOME/momentum_jax`` (``~/.cache/momentum_jax`` when it is unset)."""
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return Path(base) / "momentum_jax"


def _others_may_write(folder: Path) -> str | None:
  """Why someone else could put files in ``folder``, or None when only its owner can."""
  if not hasattr(os, "getuid"):  # not POSIX: nothing to check against
    return None
  info = folder.stat()
  if not stat.S_ISDIR(info.st_mode):
    return f"{folder} is not a folder"
  if info.st_uid != os.getuid():
    return f"{folder} belongs to another user (uid {info.st_uid})"
  if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
    return f"{folder} is writable by its group or by others (mode {stat.filemode(info.st_mode)})"
  for parent in folder.parents:
    mode = parent.stat().st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH) and not mode & stat.S_ISVTX:
      return f"{parent}, above it, lets others replace it (mode {stat.filemode(mode)})"
  return None


def private_folder(folder: Path) -> str | None:
  """Makes ``folder`` (mode 700) if missing; why it is not private to the user, or None if it is."""
  try:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return _others_may_write(folder.resolve())
  except OSError as error:
    return f"it cannot be made ({error})"


def _choose_folder() -> Path | None:
  """The cache folder, made if missing (private), or None: off, or refused with a warning."""
  value = os.environ.get(ENV_VAR, "").strip()
  if value.lower() == "off":
    return None
  folder = Path(value).expanduser() if value else cache_home() / "xla"
  reason = private_folder(folder)
  if reason is not None:
    warnings.warn(
      f"not using the compilation cache {folder}: {reason}. A cached program is "
      "code this process would run; make the folder private (chmod 700) or set "
      f"{ENV_VAR} to a private folder, or to 'off'. Compiling without it.",
      stacklevel=4,
    )
    return None
  return folder


def enable() -> Path | None:
  """Turns JAX's persistent compilation cache on; idempotent.

  Reads ``MOMENTUM_JAX_COMPILE_CACHE`` on the first call only: unset, the
  folder is ``$XDG_CACHE_HOME/momentum_jax/xla``; ``off``, nothing is
  changed; otherwise it names the folder. The folder is made private to the
  user (mode 700) when missing and refused, with a warning, when others may
  write to it. JAX then caches every program of this process that takes at
  least :data:`MIN_COMPILE_SECONDS` to compile. If JAX's own cache dir was
  already set, that folder and JAX's settings are kept.

  Returns:
    The folder in use, or None when the cache is off (or refused).
  """
  with _lock:
    if "folder" not in _enabled:
      own = jax.config.jax_compilation_cache_dir
      if own:
        _enabled["folder"] = Path(own)
      else:
        folder = _choose_folder()
        if folder is not None:
          jax.config.update("jax_compilation_cache_dir", str(folder))
          jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
        _enabled["folder"] = folder
      _listen()
    return _enabled["folder"]


def _listen() -> None:
  """Counts JAX's cache hits per thread (JAX reports them in the compiling thread)."""
  global _listening
  if _listening:
    return

  def on_event(event: str, **kwargs) -> None:
    del kwargs
    if event == "/jax/compilation_cache/cache_hits":
      _hits.count = getattr(_hits, "count", 0) + 1

  jax.monitoring.register_event_listener(on_event)
  _listening = True


def compile(
  lowered: jax.stages.Lowered, options: dict[str, Any] | None = None, persistent: bool = True
) -> tuple[jax.stages.Compiled, dict[str, Any]]:
  """``lowered.compile(options)`` through the cache (enabled on first use).

  Options this XLA does not know are dropped, with a warning, and named in
  the record's ``unknown_options``. ``persistent=False`` compiles afresh,
  neither reading nor writing JAX's cache, in this thread only (for a
  program :mod:`momentum_jax.sweep._program_cache` keeps; needs
  :data:`cache_switch`).

  Returns:
    The executable, and ``{"xla_seconds": float, "cache_hit": bool}``: how
    long XLA's compilation (or the read from the cache) took, and whether the
    executable came from the cache. ``"cacheable": False`` is added when the
    program has host callbacks, which JAX never writes to the cache.
  """
  enable()
  before = getattr(_hits, "count", 0)
  start = time.perf_counter()
  options, unknown = dict(options or {}), []
  while True:
    try:
      with contextlib.nullcontext() if persistent else cache_switch(False):
        compiled = lowered.compile(options)
      break
    except jax.errors.JaxRuntimeError as error:
      # An XLA older or newer than the one the options were chosen for may
      # not know one: compile without it (said once per option) rather than fail.
      refused = [n for n in options if f"No such compile option: '{n}'" in str(error)]
      if not refused:
        raise
      for name in refused:
        options.pop(name)
        if name not in _warned:
          _warned.add(name)
          warnings.warn(
            f"this XLA does not know the compile option {name!r}: compiling without it",
            RuntimeWarning,
            stacklevel=2,
          )
      unknown += refused
  info: dict[str, Any] = {
    "xla_seconds": time.perf_counter() - start,
    "cache_hit": getattr(_hits, "count", 0) > before,
  }
  if unknown:
    info["unknown_options"] = unknown
  # (A private attribute: where it is missing, the note is left out.)
  callbacks = getattr(getattr(lowered, "_lowering", None), "compile_args", {}).get("host_callbacks")
  if callbacks:
    info["cacheable"] = False
  return compiled, info
