"""What the tests of the two caches share: a tiny sweep, and the caches put back as found."""

import jax
from jax.experimental.compilation_cache import compilation_cache

from momentum_jax.runtime import compile_cache as _compile_cache
from momentum_jax.sweep import _program_cache

# K = 4 configurations, a few steps: compiles in well under a second.
TINY = {
  "problem": {"name": "linear_regression"},
  "optimizer": {"name": "momentum", "ema": False, "learning_rate": [0.01, 0.1], "beta": [0.0, 0.9]},
  "train": {"steps": 10, "log_every": 5},
  "seeds": 1,
}


def reset_caches() -> None:
  """JAX's cache unset and ours (both folders) undecided."""
  _compile_cache._enabled.clear()
  _program_cache._folder.clear()
  jax.config.update("jax_compilation_cache_dir", None)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)  # JAX's default
  compilation_cache.reset_cache()
