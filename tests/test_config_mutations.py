"""The configs in ``configs/``, the README and the docs, mutated as people get configs wrong.

Types swapped, numbers made extreme, keys dropped and added, YAML oddities
written into the file: whatever comes of it, ``load_config`` either raises a
:class:`ConfigError` that names a key path (or the file), or returns a config
that, loaded again from what it records, is the same sweep. Never another
exception. ``load_config`` only: nothing trains.
"""

from __future__ import annotations

import copy
import glob
import math
import os
import re
import tempfile

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from momentum_jax import sweep

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _is_sweep(raw) -> bool:
  return (
    isinstance(raw, dict)
    and "problem" in raw
    and "train" in raw
    and ("optimizer" in raw or "optimizers" in raw or "hyperparameters" in raw)
  )


def _sources() -> dict[str, dict]:
  """The sweep configs of ``configs/`` (a study's base too) and the complete ones among the YAML blocks of the README and docs/."""
  found = {}
  for path in sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml"))):
    with open(path) as file:
      raw = yaml.safe_load(file)
    if isinstance(raw, dict):
      raw.pop("study", None)  # a study's base sweep is a sweep
    if _is_sweep(raw):
      found[os.path.basename(path)] = raw
  pages = ["README.md", *sorted(glob.glob("docs/**/*.md", root_dir=ROOT, recursive=True))]
  for page in pages:
    with open(os.path.join(ROOT, page)) as file:
      blocks = re.findall(r"```yaml\n(.*?)```", file.read(), re.S)
    for index, block in enumerate(blocks):
      raw = yaml.safe_load(block)
      if _is_sweep(raw) and ":" not in str(raw["problem"].get("name", "")):  # not my_project's
        found[f"{page}[{index}]"] = raw
  return found


SOURCES = _sources()

# What people put where something else goes.
ODD_VALUES = [
  True,
  False,
  "false",
  "true",
  "no",
  "1e-3",
  "",
  None,
  [],
  {},
  [1, 2],
  [[1]],
  {"linspace": [0, 1, 1e12]},
  {"linspace": [0, 1, 0]},
  {"logspace": [-1, 1, 3]},
  {"uniform": [1, 0]},
  {"unifrom": [0, 1]},
  1e308,
  -1e308,
  -1,
  0,
  0.5,
  10**12,
  float("nan"),
  float("inf"),
  "x" * 1000,
  [True, False],
  {"name": "x"},
  "2024-05-01",
  3,
  1.5,
  [0.1, "0.2"],
]
NEAR_MISSES = ["nmae", "learning_rte", "bta", "stpes", "seed", "hiden", "method", "b1", "lr"]
# Text written into the YAML file, at its end or in place of a line.
ODD_YAML = [
  "name: 2024-05-01",
  "seeds: 1e9",
  "seeds: 1_000",
  "seeds: !!binary aGk=",
  "name: &n [1, *n]",
  "name: !!python/name:os.system",
  "seeds: 0x10",
  "seeds: 010",
  "name: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[x" + "]" * 71,
  "seeds: .inf",
  "seeds: 2\nseeds: 3",
  "\tseeds: 2",
  "seeds: [1, 1]",
  "chunk_size: auto",
  "chunk_size: 0",
  "name: no",
  "name: 12",
]


def _paths(value, prefix=()):
  """Every key path of a nested config."""
  yield prefix
  if isinstance(value, dict):
    for key, item in value.items():
      yield from _paths(item, (*prefix, key))
  elif isinstance(value, list):
    for index, item in enumerate(value):
      yield from _paths(item, (*prefix, index))


def _parent(raw, path):
  for part in path[:-1]:
    raw = raw[part]
  return raw


@st.composite
def mutated(draw):
  """``(yaml text or bytes, what was done)``: a source config, mutated once or twice."""
  name = draw(st.sampled_from(sorted(SOURCES)))
  raw = copy.deepcopy(SOURCES[name])
  done = [name]
  for _ in range(draw(st.integers(1, 2))):
    paths = [p for p in _paths(raw) if p]
    path = draw(st.sampled_from(paths))
    parent = _parent(raw, path)
    action = draw(st.sampled_from(["replace", "drop", "add", "wrap", "stringify"]))
    if action == "replace":
      parent[path[-1]] = draw(st.sampled_from(ODD_VALUES))
    elif action == "drop":
      del parent[path[-1]]
    elif action == "add" and isinstance(parent, dict):
      parent[draw(st.sampled_from(NEAR_MISSES))] = draw(st.sampled_from(ODD_VALUES))
    elif action == "wrap":
      parent[path[-1]] = [parent[path[-1]]]
    elif action == "stringify":
      parent[path[-1]] = str(parent[path[-1]])
    done.append(f"{action} {path}")
  text = yaml.safe_dump(raw, sort_keys=False)
  if draw(st.booleans()):
    odd = draw(st.sampled_from(ODD_YAML))
    text = text + odd + "\n"
    done.append(f"append {odd!r}")
  if draw(st.integers(0, 9)) == 0:
    done.append("latin-1")
    return text.encode() + "# café\n".encode("latin-1"), done
  return text, done


def _same(a: sweep.SweepConfig, b: sweep.SweepConfig) -> None:
  assert a.raw == b.raw and a.problem == b.problem and a.seeds == b.seeds
  assert a.train == b.train and a.search == b.search and a.chunk_size == b.chunk_size
  assert [o.label for o in a.optimizers] == [o.label for o in b.optimizers]
  for x, y in zip(a.optimizers, b.optimizers):
    assert x.grid.keys() == y.grid.keys() and x.ranges == y.ranges
    for name in x.grid:
      np.testing.assert_array_equal(x.grid[name], y.grid[name])
    for name in x.samples:
      np.testing.assert_array_equal(x.samples[name], y.samples[name])


def _finite(value) -> bool:
  return not isinstance(value, float) or math.isfinite(value)


@settings(
  max_examples=150,
  deadline=None,
  derandomize=True,
  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated())
def test_a_mutated_config_is_a_named_error_or_the_same_sweep_again(case):
  text, done = case
  with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "sweep.yaml")
    with open(path, "wb") as file:
      file.write(text if isinstance(text, bytes) else text.encode())
    try:
      config = sweep.load_config(path)
    except sweep.ConfigError as error:
      assert error.path, (done, str(error))
      assert len(str(error)) < 1200, done
      return
  again = sweep.load_config(dict(config.raw))
  _same(config, again)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_source_loads_and_round_trips(name):
  config = sweep.load_config(copy.deepcopy(SOURCES[name]))
  _same(config, sweep.load_config(dict(config.raw)))
