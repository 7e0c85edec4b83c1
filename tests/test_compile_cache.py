"""The persistent compilation cache: used, keyed by shapes not values, private, and off on demand.

The suite compiles with the cache off (tests/conftest.py); these tests turn it
on in a folder of their own and put JAX's cache back as they found it.
"""

import os
import stat
import warnings

import jax
import jax.numpy as jnp
import pytest

from _caches import TINY, reset_caches
from momentum_jax import sweep
from momentum_jax.runtime import compile_cache as _compile_cache


@pytest.fixture
def fresh(monkeypatch):
  """JAX's cache unset and ours undecided, before and after the test."""
  # The tiny programs compile in less than the threshold: cache them all.
  monkeypatch.setattr(_compile_cache, "MIN_COMPILE_SECONDS", 0.0)
  reset_caches()
  yield monkeypatch
  reset_caches()


def _hits(result) -> list[bool]:
  return [p["cache_hit"] for p in result.manifest["programs"]]


def test_a_second_run_comes_from_the_cache_other_values_hit_and_another_width_misses(
  fresh, tmp_path
):
  folder = tmp_path / "xla"
  fresh.setenv(_compile_cache.ENV_VAR, str(folder))
  first = sweep.run(TINY, quiet=True, width=2)
  assert _hits(first) == [False]
  assert first.manifest["compile_cache"] == str(folder)
  assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and any(folder.iterdir())
  (program,) = first.manifest["programs"]
  assert program["group"] == "momentum(ema=false)"
  assert 0 < program["xla_seconds"] <= program["compile_seconds"]

  again = sweep.run(TINY, quiet=False, width=2)  # with the progress bar: the same program
  assert _hits(again) == [True]
  assert again.summary.equals(first.summary)  # the same executable, the same numbers
  other_values = {
    **TINY,
    "optimizer": {**TINY["optimizer"], "learning_rate": [0.02, 0.2], "beta": [0.5, 0.99]},
  }
  assert _hits(sweep.run(other_values, quiet=True, width=2)) == [True]
  assert _hits(sweep.run(TINY, quiet=True, width=4)) == [False]  # another program


def test_off_leaves_the_cache_off(fresh, tmp_path):
  fresh.setenv(_compile_cache.ENV_VAR, "off")
  fresh.setenv("XDG_CACHE_HOME", str(tmp_path))
  assert _compile_cache.enable() is None
  assert jax.config.jax_compilation_cache_dir is None
  result = sweep.run(TINY, quiet=True, width=2)
  assert _hits(result) == [False] and result.manifest["compile_cache"] is None
  assert not (tmp_path / "momentum_jax").exists()


def test_by_default_the_cache_is_a_private_folder_under_xdg_cache_home(fresh, tmp_path):
  fresh.delenv(_compile_cache.ENV_VAR)
  fresh.setenv("XDG_CACHE_HOME", str(tmp_path))
  folder = tmp_path / "momentum_jax" / "xla"
  assert _compile_cache.enable() == folder
  assert _compile_cache.enable() == folder  # idempotent
  assert jax.config.jax_compilation_cache_dir == str(folder)
  assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.0
  assert stat.S_IMODE(folder.stat().st_mode) == 0o700


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
@pytest.mark.parametrize("where", ["folder", "parent"])
def test_a_folder_others_may_write_is_refused_with_a_warning(fresh, tmp_path, where):
  parent = tmp_path / "shared"
  folder = parent / "xla"
  folder.mkdir(parents=True)
  (folder if where == "folder" else parent).chmod(0o777)  # (no sticky bit)
  fresh.setenv(_compile_cache.ENV_VAR, str(folder))
  with pytest.warns(UserWarning, match="not using the compilation cache"):
    assert _compile_cache.enable() is None
  assert jax.config.jax_compilation_cache_dir is None
  # Decided once: no second warning.
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    assert _compile_cache.enable() is None


def test_a_cache_dir_set_in_jax_is_kept(fresh, tmp_path):
  jax.config.update("jax_compilation_cache_dir", str(tmp_path))
  fresh.setenv(_compile_cache.ENV_VAR, str(tmp_path / "ours"))
  assert _compile_cache.enable() == tmp_path
  assert jax.config.jax_compilation_cache_dir == str(tmp_path)
  assert not (tmp_path / "ours").exists()


def test_a_program_with_host_callbacks_is_said_not_to_be_cacheable(fresh, tmp_path):
  fresh.setenv(_compile_cache.ENV_VAR, str(tmp_path))

  def noisy(x):
    jax.debug.callback(lambda value: None, x)
    return x + 1

  _, info = _compile_cache.compile(jax.jit(noisy).lower(jnp.zeros(3)))
  assert info["cacheable"] is False and info["cache_hit"] is False
  _, info = _compile_cache.compile(jax.jit(lambda x: x * 3).lower(jnp.zeros(3)))
  assert "cacheable" not in info


def test_two_groups_compile_side_by_side_and_their_hits_are_counted_in_their_threads(
  fresh, tmp_path
):
  import threading

  fresh.setenv(_compile_cache.ENV_VAR, str(tmp_path / "xla"))
  two = {
    **{k: v for k, v in TINY.items() if k != "optimizer"},
    "optimizers": [TINY["optimizer"], {"name": "sgd", "learning_rate": [0.01, 0.1]}],
  }
  threads = []
  compile_ = _compile_cache.compile

  def spy(lowered, options=None, **kwargs):
    threads.append(threading.current_thread().name)
    return compile_(lowered, options, **kwargs)

  fresh.setattr(_compile_cache, "compile", spy)
  first = sweep.run(two, quiet=True, width=2)
  assert len(threads) == 2 and all(t.startswith("momentum-jax-compile") for t in threads)
  assert _hits(first) == [False, False]
  # JAX reports a hit in the compiling thread: each program's own is counted.
  again = sweep.run(two, quiet=True, width=2)
  assert _hits(again) == [True, True]
  assert again.summary.equals(first.summary)
  # One group compiles where it is traced.
  threads.clear()
  sweep.run(TINY, quiet=True, width=2)
  assert threads == [threading.main_thread().name]
