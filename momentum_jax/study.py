"""Studies: a sweep config plus a validated ``study:`` section, and overlays for variants.

A study file is a sweep config (the keys of
:func:`momentum_jax.sweep.load_config`, validated by it) with one more
top-level key, ``study:``, whose keys the study declares in a *schema*: key ->
:class:`Setting` (a check and a default). Its errors name their path like a
sweep's (``study.seeds: expected an integer >= 1, got 0``).

A study that trains several sweeps names them in ``study.runs``: run name ->
a mapping merged onto the file's sweep keys (the *base*), or the path of a
sweep config file (relative to the study file) merged onto it. Each run must
be a valid sweep config once merged. Without ``runs``, the file's sweep keys,
if any, are the one run (named ``main``).

Variants are *overlays*, merged deeply onto the study before anything is
validated (:func:`merge`: mappings merge, other values replace, ``null``
removes the key): a small YAML file (e.g. ``configs/quick/<study>.yaml``), or
``KEY.PATH=VALUE`` overrides whose values are read as YAML
(:func:`parse_override`). So their errors are path-named too.

Example:
  >>> from momentum_jax import study
  >>> schema = {"seeds": study.Setting(study.integer(minimum=1), default=3)}
  >>> found = study.load_study({"study": {"seeds": 2}}, schema, overrides=["study.seeds=5"])
  >>> found.settings["seeds"], dict(found.runs)
  (5, {})
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable, Iterable, Mapping

import yaml

from momentum_jax import problems
from momentum_jax.sweep import ConfigError, SweepConfig, load_config
from momentum_jax.sweep._checks import as_mapping, check_integer, check_keys, check_name
from momentum_jax.sweep._problem_config import make_problem, parse_problem

REQUIRED = object()
"""A :class:`Setting`'s default when the study file must give the key."""
RUNS = "runs"
MAIN_RUN = "main"
_Source = str | os.PathLike | Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Setting:
  """One key of a study section.

  Attributes:
    check: ``check(path, value) -> value``: the value as the study uses it;
      raises :class:`~momentum_jax.sweep.ConfigError` at ``path``.
    default: Used when the key is absent; :data:`REQUIRED`: it must be given.
  """

  check: Callable[[str, Any], Any]
  default: Any = REQUIRED


@dataclasses.dataclass(frozen=True)
class Study:
  """A loaded, validated study.

  Attributes:
    name: The file's stem (``"study"`` for a mapping).
    settings: The ``study:`` section, checked, with defaults filled in.
    runs: Run name -> its validated sweep config, in file order.
    raw: The study as merged from the file and its overlays, before validation.
  """

  name: str
  settings: Mapping[str, Any]
  runs: Mapping[str, SweepConfig]
  raw: Mapping[str, Any]

  @property
  def sweep(self) -> SweepConfig:
    """The one run of a single-sweep study."""
    if len(self.runs) != 1:
      raise ValueError(
        f"study {self.name} has {len(self.runs)} runs ({', '.join(self.runs) or 'none'}), not one"
      )
    return next(iter(self.runs.values()))


# --------------------------------------------------------------------------- checks


def number(
  minimum: float | None = None, maximum: float | None = None, positive: bool = False
) -> Callable[[str, Any], float]:
  """A check: a real number (not a bool) within the bounds; ``positive``: > 0."""

  def check(path: str, value: Any) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok or (positive and value <= 0):
      bounds = [
        f">= {minimum:g}" if minimum is not None else "",
        f"<= {maximum:g}" if maximum is not None else "",
        "> 0" if positive else "",
      ]
      shown = " and ".join(b for b in bounds if b)
      raise ConfigError(path, f"expected a number{' ' + shown if shown else ''}, got {value!r}")
    return float(value)

  return check


def integer(minimum: int | None = None) -> Callable[[str, Any], int]:
  """A check: an integer (not a bool), at least ``minimum``."""
  if minimum is not None:
    return lambda path, value: check_integer(path, value, minimum)

  def check(path: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
      raise ConfigError(path, f"expected an integer, got {value!r}")
    return value

  return check


def text(path: str, value: Any) -> str:
  """A check: a non-empty string."""
  if not isinstance(value, str) or not value:
    raise ConfigError(path, f"expected a non-empty string, got {value!r}")
  return value


def one_of(choices: Iterable[str]) -> Callable[[str, Any], str]:
  """A check: one of ``choices``, the closest suggested otherwise."""
  choices = tuple(choices)
  return lambda path, value: check_name(path, value, choices)


def list_of(item: Callable[[str, Any], Any], min_length: int = 1) -> Callable[[str, Any], list]:
  """A check: a list of at least ``min_length`` items, each checked at ``path[i]``."""

  def check(path: str, value: Any) -> list:
    if not isinstance(value, list) or len(value) < min_length:
      raise ConfigError(path, f"expected a list of at least {min_length}, got {value!r}")
    return [item(f"{path}[{i}]", v) for i, v in enumerate(value)]

  return check


def record(fields: Mapping[str, Setting]) -> Callable[[str, Any], dict]:
  """A check: a mapping with these keys (see :func:`check_section`)."""
  return lambda path, value: check_section(path, value, fields)


def mapping_of(
  key: Callable[[str, Any], Any], value: Callable[[str, Any], Any]
) -> Callable[[str, Any], dict]:
  """A check: a non-empty mapping, each key and its value checked at ``path.key``."""

  def check(path: str, raw: Any) -> dict:
    raw = as_mapping(path, raw)
    if not raw:
      raise ConfigError(path, "expected at least one entry")
    return {key(f"{path}.{k}", k): value(f"{path}.{k}", v) for k, v in raw.items()}

  return check


def problem(path: str, value: Any) -> Callable[[], problems.Problem]:
  """A check: a sweep config's ``problem`` (a name or import path and its options).

  Returns:
    A function building the problem (when the study needs it, not before:
    loading the data takes time); it raises :class:`ConfigError` at
    ``problem`` for the builder's own errors, as a sweep does.
  """
  try:
    name, options, source = parse_problem(value)
  except ConfigError as error:
    raise ConfigError(path + error.path[len("problem") :], _message(error)) from None
  return functools.partial(make_problem, name, options, source)


def check_section(
  path: str, raw: Any, fields: Mapping[str, Setting], extra: Iterable[str] = ()
) -> dict[str, Any]:
  """``raw`` checked against ``fields``: no unknown key (but ``extra``), defaults filled in."""
  raw = as_mapping(path, {} if raw is None else raw)
  check_keys(path, raw, (*fields, *extra))
  checked = {}
  for key, setting in fields.items():
    where = f"{path}.{key}" if path else key
    if key in raw:
      checked[key] = setting.check(where, raw[key])
    elif setting.default is REQUIRED:
      raise ConfigError(where, "required")
    else:
      checked[key] = setting.default
  return checked


# --------------------------------------------------------------------------- overlays


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
  """``overlay`` merged deeply onto ``base``: a fresh dict, neither argument changed.

  Mappings merge key by key; any other value (a list included) replaces the
  base's; ``None`` removes the key.

  Example:
    >>> merge({"train": {"steps": 400, "batch_size": 64}, "seeds": 2},
    ...       {"train": {"steps": 20}, "seeds": None})
    {'train': {'steps': 20, 'batch_size': 64}}
  """
  merged = dict(base)
  for key, value in overlay.items():
    if value is None:
      merged.pop(key, None)
    elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
      merged[key] = merge(merged[key], value)
    else:
      merged[key] = value
  return merged


def parse_override(text: str) -> dict[str, Any]:
  """``"study.seeds=1"`` as the overlay ``{"study": {"seeds": 1}}``; the value is read as YAML.

  Raises:
    ConfigError: at ``--set`` if ``text`` is not ``KEY.PATH=VALUE``.
  """
  key, sign, value = text.partition("=")
  parts = key.strip().split(".")
  if not sign or not all(part.strip() for part in parts):
    raise ConfigError("--set", f"expected KEY.PATH=VALUE (e.g. study.seeds=1), got {text!r}")
  try:
    parsed = yaml.safe_load(value)
  except yaml.YAMLError as error:
    raise ConfigError(key.strip(), f"the value {value!r} is not valid YAML: {error}") from None
  overlay: Any = parsed
  for part in reversed(parts):
    overlay = {part.strip(): overlay}
  return overlay


def _read(source: _Source, what: str) -> tuple[dict[str, Any], str | None]:
  """The mapping in ``source`` (a YAML file or a mapping), and the file's folder."""
  if isinstance(source, Mapping):
    return dict(source), None
  path = os.fspath(source)
  with open(path, encoding="utf-8") as file:
    try:
      raw = yaml.safe_load(file)
    except yaml.YAMLError as error:
      raise ConfigError("", f"{path} is not valid YAML: {error}") from None
  return dict(as_mapping(what, {} if raw is None else raw)), os.path.dirname(path)


def _with_run_files(raw: dict[str, Any], folder: str | None) -> dict[str, Any]:
  """``raw`` with each run given as a file name replaced by that file's mapping."""
  runs = raw.get("study", {}).get(RUNS) if isinstance(raw.get("study"), Mapping) else None
  if not isinstance(runs, Mapping):
    return raw
  read = {}
  for name, run in runs.items():
    if isinstance(run, str):
      path = os.path.join(folder or ".", run)
      if not os.path.isfile(path):
        raise ConfigError(f"study.{RUNS}.{name}", f"no sweep config file {path}")
      run = _read(path, f"study.{RUNS}.{name}")[0]
    read[name] = run  # (a None stays: in an overlay it removes the run)
  return {**raw, "study": {**raw["study"], RUNS: read}}


# --------------------------------------------------------------------------- loading


def _message(error: ConfigError) -> str:
  """The error's message without its path."""
  return str(error)[len(error.path) + 2 :] if error.path else str(error)


def _run_config(name: str, base: Mapping[str, Any], overlay: Any, default_name: str) -> SweepConfig:
  where = f"study.{RUNS}.{name}"
  overlay = as_mapping(where, {} if overlay is None else overlay)
  merged = merge({"name": default_name, **base}, overlay)
  try:
    return load_config(merged)
  except ConfigError as error:
    message = _message(error)
    head = error.path.split(".")[0].split("[")[0]
    if head in overlay:  # the key the run gave: name it where it was written
      raise ConfigError(f"{where}.{error.path}", message) from None
    raise ConfigError(error.path, f"{message} (in run {name})") from None


def load_study(
  source: _Source,
  schema: Mapping[str, Setting] | None = None,
  overlays: Iterable[_Source] = (),
  overrides: Iterable[str] = (),
) -> Study:
  """Reads a study, merges its overlays and overrides onto it, and validates it.

  Args:
    source: The study's YAML file, or a mapping.
    schema: The keys of its ``study:`` section (besides ``runs``).
    overlays: YAML files or mappings merged onto it in order (:func:`merge`);
      a run given as a file name is read relative to the file naming it.
    overrides: ``KEY.PATH=VALUE`` strings (:func:`parse_override`), merged last.

  Returns:
    The :class:`Study`: its checked settings and each run's validated sweep config.

  Raises:
    ConfigError: naming the field's path, for the study section, a run's
      sweep config (``study.runs.<run>.<key>`` for a key the run gives) or
      an override.
    FileNotFoundError: if a file does not exist.
  """
  raw, folder = _read(source, "")
  raw = _with_run_files(raw, folder)
  for overlay in overlays:
    layer, where = _read(overlay, "")
    raw = merge(raw, _with_run_files(layer, where))
  for text in overrides:
    raw = merge(raw, parse_override(text))
  name = (
    "study"
    if isinstance(source, Mapping)
    else os.path.splitext(os.path.basename(os.fspath(source)))[0]
  )
  section = as_mapping("study", raw.get("study") or {})
  settings = check_section("study", section, schema or {}, extra=(RUNS,))
  base = {k: v for k, v in raw.items() if k != "study"}
  runs = section.get(RUNS)
  if runs is None:
    runs = {MAIN_RUN: {}} if base else {}
  runs = as_mapping(f"study.{RUNS}", runs)
  configs = {
    str(run): _run_config(str(run), base, overlay, name if run == MAIN_RUN else f"{name}_{run}")
    for run, overlay in runs.items()
  }
  return Study(name=name, settings=settings, runs=configs, raw=raw)
