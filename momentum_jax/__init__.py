"""momentum_jax: gradient-descent optimizers as Optax transformations, and studies of them.

>>> import momentum_jax as mj
>>> tx = mj.momentum(learning_rate=0.1, beta=0.9)
"""

from momentum_jax.optim import *  # noqa: F401,F403  (the public optimizer API)
from momentum_jax.optim import __all__ as _optim_all

__version__ = "0.1.0"
__all__ = list(_optim_all)
