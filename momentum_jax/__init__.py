"""momentum_jax: gradient-descent optimizers as Optax transformations, and studies of them.

>>> import momentum_jax as mj
>>> tx = mj.momentum(learning_rate=0.1, beta=0.9)

The optimizers are imported at once; the rest (``mj.sweep``, ``mj.problems``,
``mj.data``, ``mj.models``, ``mj.train``, ``mj.results``, ``mj.report``) on first use, so that
importing the package stays cheap.

On a CPU, importing the package gives JAX one device per core when JAX has not
started and no count was chosen (``JAX_NUM_CPU_DEVICES``, ``XLA_FLAGS``), so
that sweeps spread over the cores; ``MOMENTUM_JAX_CPU_DEVICES=1`` keeps JAX's
one default device (see :func:`momentum_jax.sweep.use_cpu_cores`).
"""

import importlib as _importlib

from momentum_jax.runtime import cpu as _cpu

_cpu.default_cpu_devices()  # before anything starts JAX's backends

from momentum_jax.optim import *  # noqa: E402,F401,F403  (the public optimizer API)
from momentum_jax.optim import __all__ as _optim_all  # noqa: E402

__version__ = "0.1.0"
__all__ = list(_optim_all)

_SUBMODULES = ("data", "models", "problems", "report", "results", "runtime", "sweep", "train")


def __getattr__(name: str):
  if name in _SUBMODULES:
    return _importlib.import_module(f"momentum_jax.{name}")
  raise AttributeError(f"module 'momentum_jax' has no attribute {name!r}")


def __dir__() -> list[str]:
  return sorted({*globals(), *_SUBMODULES})
