"""The landscape tests' momentum (the heavy ball at β = 0.9) and float64 Hessian."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import momentum_jax as mj
from momentum_jax.data import Landscape


BETA = 0.9


def heavy_ball(lr):
  return mj.momentum(lr, BETA, ema=False)


def hessian64(landscape: Landscape, xy) -> np.ndarray:
  with jax.enable_x64(True):
    return np.asarray(jax.hessian(landscape.fn)(jnp.asarray(xy, jnp.float64)))
