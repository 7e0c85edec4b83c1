"""vmap-batched hyperparameter sweeps.

>>> from momentum_jax import sweep
>>> config = sweep.load_config({
...     "problem": {"name": "linear_regression"},
...     "optimizer": {"name": "momentum", "learning_rate": [0.01, 0.1],
...                   "beta": {"linspace": [0.0, 0.9, 4]}},
...     "train": {"steps": 100, "log_every": 50},
...     "seeds": 2})
>>> config.num_configs
16
"""

from momentum_jax.runtime.cpu import use_cpu_cores
from momentum_jax.sweep._checkpoint import OutputDirError
from momentum_jax.sweep._config import OPTIMIZERS
from momentum_jax.sweep._schema import SCHEDULES
from momentum_jax.sweep._config import OptimizerSpec
from momentum_jax.sweep._config import ScheduleSpec
from momentum_jax.sweep._config import SearchSpec
from momentum_jax.sweep._config import SweepConfig
from momentum_jax.sweep._config import build_problem
from momentum_jax.sweep._config import load_config
from momentum_jax.sweep._devices import bytes_per_config
from momentum_jax.sweep._devices import choose_chunk_size
from momentum_jax.sweep._engine import check
from momentum_jax.sweep._engine import run
from momentum_jax.sweep._errors import ConfigError
from momentum_jax.sweep._grid import grid_values
from momentum_jax.sweep._plan import make_optimizer_factory

__all__ = [
  "ConfigError",
  "OPTIMIZERS",
  "OptimizerSpec",
  "OutputDirError",
  "SCHEDULES",
  "ScheduleSpec",
  "SearchSpec",
  "SweepConfig",
  "build_problem",
  "bytes_per_config",
  "check",
  "choose_chunk_size",
  "grid_values",
  "load_config",
  "make_optimizer_factory",
  "run",
  "use_cpu_cores",
]
