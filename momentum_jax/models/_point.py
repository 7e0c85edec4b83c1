"""A point in the plane as a model: gradient descent on a 2-D landscape as training."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


class LandscapePoint(nnx.Module):
  """A point ``xy`` of the plane, the only parameter; its output is ``fn(xy)``.

  The model of a 2-D landscape problem (:func:`momentum_jax.problems.landscape`):
  its loss is its output, so training it with an optimizer is that
  optimizer's descent on ``fn``, and the training run, the sweep engine and
  their logging apply unchanged. The input is ignored (a landscape has no
  data).

  Args:
    fn: The landscape, ``fn(xy) → scalar`` for ``xy`` of shape ``(2,)``
      (e.g. :attr:`momentum_jax.data.Landscape.fn`).
    start: The initial point, shape ``(2,)``.
    spread: Standard deviation of a Gaussian perturbation of ``start``, drawn
      from ``rngs.params()``: with ``spread > 0`` every seed starts elsewhere
      around ``start``. ``0``: every seed starts at ``start``.
    rngs: Random streams (used only when ``spread > 0``).

  Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from momentum_jax.models import LandscapePoint
    >>> point = LandscapePoint(lambda xy: jnp.sum(xy**2), (3.0, 4.0), rngs=nnx.Rngs(0))
    >>> point(None)
    Array(25., dtype=float32)
  """

  def __init__(
    self, fn: Callable[[jax.Array], jax.Array], start, spread: float = 0.0, *, rngs: nnx.Rngs
  ):
    if not callable(fn):
      raise ValueError(f"fn must be a function of a point (2,), got {fn!r}")
    start_ = np.asarray(start, dtype=np.float64)
    if start_.shape != (2,) or not np.all(np.isfinite(start_)):
      raise ValueError(f"start must be two finite numbers (x, y), got {start!r}")
    if (
      isinstance(spread, bool)
      or not isinstance(spread, (int, float))
      or not (np.isfinite(spread) and spread >= 0)
    ):
      raise ValueError(f"spread must be a finite number >= 0, got {spread!r}")
    xy = jnp.asarray(start_, jnp.float32)
    if spread > 0:
      xy = xy + spread * jax.random.normal(rngs.params(), (2,), jnp.float32)
    self.fn = fn
    self.xy = nnx.Param(xy)

  def __call__(self, x=None) -> jax.Array:
    return self.fn(self.xy[...])
