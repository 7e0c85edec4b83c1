"""Kept programs: read back untraced, keyed by everything that shapes them, refused when unseen.

The suite runs with ``MOMENTUM_JAX_PROGRAM_CACHE=off`` (tests/conftest.py:
tests patch momentum_jax's functions, which a source digest cannot see);
these tests turn it on, in folders of their own.
"""

import pickle
import stat

import jax
import pytest

from _caches import TINY, reset_caches
from _killed import run_killed_after_a_save
from momentum_jax import sweep
from momentum_jax.runtime import compile_cache as _compile_cache
from momentum_jax.sweep import _program_cache
from momentum_jax.sweep import _execute


@pytest.fixture
def kept(monkeypatch, tmp_path):
  """Programs kept in a fresh folder (and JAX's cache there too), reset before and after."""
  monkeypatch.delenv(_program_cache.ENV_VAR, raising=False)
  monkeypatch.setenv(_compile_cache.ENV_VAR, str(tmp_path / "xla"))
  reset_caches()
  yield tmp_path / "xla" / _program_cache.FOLDER
  reset_caches()


def _status(result) -> list[str]:
  return [p["program_cache"] for p in result.manifest["programs"]]


def test_a_second_run_reads_its_program_back_untraced_with_the_same_results(kept, monkeypatch):
  first = sweep.run(TINY, quiet=True, width=2)
  assert _status(first) == ["written"]
  (entry,) = kept.iterdir()
  assert stat.S_IMODE(kept.stat().st_mode) == 0o700
  # JAX's cache is skipped for a kept program (its copy would not serialize whole).
  assert not [p for p in kept.parent.iterdir() if p != kept]

  def no_trace(*args, **kwargs):
    raise AssertionError("a kept program was traced")

  monkeypatch.setattr(_execute, "build_program", no_trace)
  again = sweep.run(TINY, quiet=False, width=2)  # with the progress bar: the same program
  assert _status(again) == ["read"] and again.manifest["programs"][0]["cache_hit"] is True
  assert again.summary.equals(first.summary)
  assert again.curves.equals(first.curves)
  other_values = {
    **TINY,
    "optimizer": {**TINY["optimizer"], "learning_rate": [0.02, 0.2], "beta": [0.5, 0.99]},
  }
  assert _status(sweep.run(other_values, quiet=True, width=2)) == ["read"]


@pytest.mark.parametrize(
  "change",
  [
    {"width": 4},
    {"config": {"train": {"steps": 20, "log_every": 5}}},
    {
      "config": {
        "optimizer": {
          "name": "momentum",
          "ema": True,
          "learning_rate": [0.01, 0.1],
          "beta": [0.0, 0.9],
        }
      }
    },
    {"config": {"optimizer": {"name": "momentum", "ema": False, "learning_rate": [0.01, 0.1]}}},
    {"config": {"problem": {"name": "linear_regression", "dataset": "normal"}}},
    {"config": {"seeds": 2}},
  ],
)
def test_what_shapes_the_program_misses(kept, change):
  assert _status(sweep.run(TINY, quiet=True, width=2)) == ["written"]
  config = {**TINY, **change.get("config", {})}
  assert _status(sweep.run(config, quiet=True, width=change.get("width", 2))) == ["written"]
  assert len(list(kept.iterdir())) == 2


def test_the_key_sees_jax_config_the_source_and_xla_flags(kept, monkeypatch):
  from momentum_jax.sweep import _config, _plan, _problem_config
  from momentum_jax.sweep._fingerprint import problem_record
  from momentum_jax.train import setup
  from jax.sharding import Mesh
  import numpy as np

  config = _config.load_config(TINY)
  problem = _problem_config.checked_problem(config)
  identity = _program_cache.sweep_identity(config, problem_record(problem))
  (group,) = _plan.groups(config)
  run = setup(
    problem, _plan.make_optimizer_factory(group.spec, problem, config.train), config.train
  )
  mesh = Mesh(np.array(jax.devices()), ("config",))
  segments = _execute.Segments(1, config.train)

  def key():
    found, why = _program_cache.key(identity, run, group, 2, 4, segments, mesh, {})
    assert why is None
    return found

  base = key()
  assert key() == base
  with jax.default_matmul_precision("highest"):
    assert key() != base
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=true")
  assert key() != base
  monkeypatch.delenv("XLA_FLAGS")
  # Another machine's CPU (a cache folder in a shared home directory).
  _program_cache._versions.cache_clear()
  monkeypatch.setattr(_program_cache, "_host_cpu", lambda: "another CPU's flags")
  assert key() != base
  _program_cache._versions.cache_clear()
  monkeypatch.setattr(_program_cache, "_versions", lambda: {"momentum_jax_source": "edited"})
  assert key() != base


def test_code_the_key_cannot_see_is_not_kept(kept, monkeypatch):
  own_problem = {**TINY, "problem": {"name": "_user_optimizers:small_regression"}}
  assert _status(sweep.run(own_problem, quiet=True, width=2)) == [
    "not kept: the problem is built by code outside momentum_jax"
  ]
  own_optimizer = {
    **TINY,
    "optimizer": {"name": "_user_optimizers:scaled_sgd", "learning_rate": [0.01, 0.1]},
  }
  assert _status(sweep.run(own_optimizer, quiet=True, width=2)) == [
    "not kept: the optimizer _user_optimizers:scaled_sgd is code outside momentum_jax and optax"
  ]
  assert not kept.exists() or not any(kept.iterdir())
  optax_optimizer = {**TINY, "optimizer": {"name": "optax.sgd", "learning_rate": [0.01, 0.1]}}
  assert _status(sweep.run(optax_optimizer, quiet=True, width=2)) == ["written"]
  # optax.nadam is a partial of optax.adam: kept, apart from adam.
  for name in ("optax.adam", "optax.nadam"):
    partial = {**TINY, "optimizer": {"name": name, "learning_rate": [0.01, 0.1]}}
    assert _status(sweep.run(partial, quiet=True, width=2)) == ["written"]
  monkeypatch.setenv(_program_cache.ENV_VAR, "off")
  assert _status(sweep.run(TINY, quiet=True, width=2)) == [
    f"not kept: {_program_cache.ENV_VAR}=off"
  ]


def test_an_entry_that_does_not_load_is_discarded_and_compiled_again(kept):
  first = sweep.run(TINY, quiet=True, width=2)
  (entry,) = kept.iterdir()
  entry.write_bytes(
    pickle.dumps(
      {"format": _program_cache.FORMAT, "executable": b"junk", "in_tree": None, "out_tree": None}
    )
  )
  with pytest.warns(RuntimeWarning, match="discarding the kept program"):
    again = sweep.run(TINY, quiet=True, width=2)
  assert _status(again) == ["written"] and again.summary.equals(first.summary)
  assert _status(sweep.run(TINY, quiet=True, width=2)) == ["read"]


def test_a_folder_others_may_write_is_refused_with_a_warning(kept):
  kept.mkdir(parents=True)
  kept.chmod(0o777)
  with pytest.warns(UserWarning, match="not keeping compiled programs"):
    result = sweep.run(TINY, quiet=True, width=2)
  (status,) = _status(result)
  assert status.startswith(f"not kept: {kept} was refused: ") and "writable" in status
  assert not any(kept.iterdir())
  # JAX's cache still holds the program.
  assert [p for p in kept.parent.iterdir() if p != kept]


def test_a_program_that_cannot_be_written_is_trained_all_the_same(kept, monkeypatch):
  from momentum_jax.runtime import files as _files

  def full(path, data):
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(_files, "atomic_write_bytes", full)
  result = sweep.run(TINY, quiet=True, width=2)
  (status,) = _status(result)
  assert status.startswith("not kept: it could not be written") and "No space" in status
  assert len(result.summary) == 4


def test_scheduled_and_pbt_groups_read_their_programs_back_with_the_same_results(kept):
  import copy

  from test_halving import HALVING
  from test_pbt import PBT

  for config in (HALVING, PBT):
    first = sweep.run(copy.deepcopy(config), quiet=True, width=2)
    assert set(_status(first)) == {"written"}
    again = sweep.run(copy.deepcopy(config), quiet=True, width=2)
    assert set(_status(again)) == {"read"} and len(_status(again)) == len(_status(first))
    assert again.summary.equals(first.summary)


def test_the_command_says_how_many_programs_it_read(kept, tmp_path, capsys):
  import yaml

  from momentum_jax import cli

  config = tmp_path / "tiny.yaml"
  config.write_text(yaml.safe_dump(TINY))
  printed = []
  for out in ("first", "second"):
    assert (
      cli.main(["sweep", str(config), "--out", str(tmp_path / out), "--quiet", "--width", "2"]) == 0
    )
    printed.append(capsys.readouterr().out)
  assert "compiled 1 program(s) in" in printed[0] and "read from the cache" not in printed[0]
  assert "(1 read from the cache)" in printed[1]


def test_a_chunk_killed_mid_way_resumes_on_its_kept_program(kept, tmp_path, monkeypatch):
  config = {**TINY, "train": {"steps": 40, "log_every": 5}}  # segments of 5 steps
  whole = sweep.run(config, quiet=True, width=2)
  out = tmp_path / "out"
  run_killed_after_a_save(
    monkeypatch,
    lambda: sweep.run(config, out, quiet=True, width=2, checkpoint_every=1e-9),
    lambda position, step: step >= 10,
  )
  resumed = sweep.run(config, out, quiet=True, width=2)
  assert _status(resumed) == ["read"]
  (chunk,) = resumed.manifest["checkpoint"]["chunks_resumed_mid_training"]
  assert 0 < chunk["from_step"] < 40
  assert resumed.summary.equals(whole.summary) and resumed.curves.equals(whole.curves)


def test_without_readable_source_files_nothing_is_kept(kept, monkeypatch):
  monkeypatch.setattr(_program_cache, "_versions", lambda: {"momentum_jax_source": None})
  (status,) = _status(sweep.run(TINY, quiet=True, width=2))
  assert status.startswith("not kept: momentum_jax's source files cannot be read")
  assert _program_cache._source_digest() is not None  # (here they can)
