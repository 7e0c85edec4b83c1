"""What an output folder records of the sweep that wrote it, and whether this one is it.

``DIR/chunks/sweep.json`` holds the fingerprint of the configuration, the
configuration and the versions of the packages that compute
(:mod:`momentum_jax.sweep._checkpoint`); a folder whose chunks were deleted
is known by its manifest. :func:`mismatch` says why a recorded sweep is not
this one; :func:`extension` whether it is the same search asked for more.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from momentum_jax import results
from momentum_jax.sweep._errors import OutputDirError
from momentum_jax.sweep._fingerprint import fingerprint

# Package versions that must match for resumed results to equal an uninterrupted run's.
COMPUTING_PACKAGES = ("momentum_jax", "jax", "jaxlib", "optax", "flax", "numpy")


def recorded_sweep(
  out_dir: Path, state_file: Path, versions: Mapping[str, str]
) -> dict[str, Any] | None:
  """The sweep ``out_dir`` records (None: none): its chunks' state, or a finished sweep's
  manifest when its chunks were deleted.

  Raises:
    OutputDirError: for a record or manifest that is not a sweep's.
  """
  recorded = read_state(state_file)
  if recorded is not None and not isinstance(recorded, dict):
    raise OutputDirError(
      f"{state_file}: not a sweep's record; remove it, or choose another output folder"
    )
  if recorded is None and (out_dir / results.MANIFEST_FILE).exists():
    manifest = read_state(out_dir / results.MANIFEST_FILE)
    if not isinstance(manifest, dict):
      raise OutputDirError(
        f"{out_dir / results.MANIFEST_FILE}: not a sweep's manifest; "
        "remove it, or choose another output folder"
      )
    recorded = {
      "fingerprint": fingerprint(
        {**manifest.get("config", {}), "problem": manifest.get("problem_record")}
      ),
      "config": manifest.get("config"),
      "versions": dict(versions),
      "finished_without_chunks": True,
    }
  return recorded


# Keys of search: that a finished search may raise to go on (Optuna's trials; the points of a
# random or quasi-random search, whose sequences keep their first points).
_EXTENSIBLE = ("trials", "samples")


def _seed_list(seeds: Any) -> list | None:
  if isinstance(seeds, int) and not isinstance(seeds, bool):
    return list(range(seeds))
  return list(seeds) if isinstance(seeds, list) else None


def _raised(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str] | None:
  """The ``search:`` keys raised from ``before`` to ``after`` (None: one lowered or not a count)."""
  changed = [k for k in _EXTENSIBLE if before.get(k) != after.get(k)]
  if any(
    not isinstance(after.get(k), int) or not isinstance(before.get(k), int) or after[k] < before[k]
    for k in changed
  ):
    return None
  return changed


def extension(recorded: Mapping[str, Any], state: Mapping[str, Any]) -> str | None:
  """What raising ``search.trials`` or ``search.samples``, or adding seeds after the others,
  added, when that is all that changed (same problem, same package versions); None otherwise."""
  old, new = recorded.get("config"), state.get("config")
  if not isinstance(old, Mapping) or not isinstance(new, Mapping):
    return None
  before, after = old.get("search") or {}, new.get("search") or {}
  if not isinstance(before, Mapping) or not isinstance(after, Mapping):
    return None
  changed = _raised(before, after)
  seeds_before, seeds_after = _seed_list(old.get("seeds", 1)), _seed_list(new.get("seeds", 1))
  more_seeds = (
    seeds_before is not None
    and seeds_after is not None
    and seeds_after != seeds_before
    and seeds_after[: len(seeds_before)] == seeds_before
  )
  if changed is None or not (changed or more_seeds):
    return None

  def without(config, problem):
    search = {k: v for k, v in (config.get("search") or {}).items() if k not in _EXTENSIBLE}
    return fingerprint({**config, "search": search, "seeds": None, "problem": problem})

  if without(old, recorded.get("problem")) != without(new, state.get("problem")):
    return None
  if mismatch({**recorded, "fingerprint": state["fingerprint"]}, state) is not None:
    return None  # other package versions
  said = [f"search.{k} {before[k]} -> {after[k]}" for k in changed]
  return ", ".join(said + ([f"seeds {seeds_before} -> {seeds_after}"] if more_seeds else []))


def read_state(path: Path) -> Any:
  try:
    return json.loads(path.read_text(encoding="utf-8"))
  except FileNotFoundError:
    return None
  except (json.JSONDecodeError, UnicodeDecodeError) as error:  # only a hand edit gets here
    raise OutputDirError(
      f"{path}: not valid JSON ({error}); remove it, or choose another output folder"
    ) from None


def mismatch(recorded: Mapping[str, Any], state: Mapping[str, Any]) -> str | None:
  """Why the recorded sweep is not this one, or None when it is."""
  if recorded.get("fingerprint") != state["fingerprint"]:
    return _changed(recorded, state)
  old = recorded.get("versions", {})
  changed = [
    f"{p} {old.get(p)} -> {state['versions'].get(p)}"
    for p in COMPUTING_PACKAGES
    if old.get(p) != state["versions"].get(p)
  ]
  if changed:
    return f"this config computed with other package versions ({', '.join(changed)})"
  return None


def _changed(recorded: Mapping[str, Any], state: Mapping[str, Any]) -> str:
  """Why the fingerprints differ: another config, or the same one of a problem that changed."""
  old, new = recorded.get("problem"), state.get("problem")
  if recorded.get("config") != state.get("config") or not isinstance(old, Mapping):
    name = (recorded.get("config") or {}).get("name")
    return f"a different config{f' ({name!r})' if name else ''}"
  if {**old, "programs": None} == {**new, "programs": None}:
    return (
      "the same config, but its Trainable's code changed (what its init, train, evaluate or "
      "model compute, or the arrays they close over): resumed, its runs would mix the two"
    )
  return "the same config, but its problem changed (its data, functions or shapes)"
