"""Linear regression: one dense layer to a single output."""

from __future__ import annotations

import jax
from flax import nnx

from momentum_jax.models._checks import check_input_shape
from momentum_jax.models._checks import check_positive_int


class LinearRegression(nnx.Module):
  """``y = x·w + b`` with a scalar output per example.

  The output is squeezed to shape ``(batch,)`` so that it lines up with
  regression targets of shape ``(n,)``; comparing ``(n, 1)`` predictions with
  ``(n,)`` targets would broadcast to an ``(n, n)`` error matrix, the bug in
  one of the literature's examples.

  The layer sits in ``self.layers`` (a one-element ``nnx.List``) like every
  model in this package, so :func:`layer_kernel_paths` works on it too.

  Args:
    in_features: number of input features.
    rngs: random streams for the initial weights (flax's defaults: LeCun
      normal kernel, zero bias).

  Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from momentum_jax.models import LinearRegression
    >>> model = LinearRegression(8, rngs=nnx.Rngs(0))
    >>> model(jnp.ones((5, 8))).shape
    (5,)
  """

  def __init__(self, in_features: int, *, rngs: nnx.Rngs):
    check_positive_int("in_features", in_features)
    self.in_features = in_features
    self.layers = nnx.List([nnx.Linear(in_features, 1, rngs=rngs)])

  def __call__(self, x: jax.Array) -> jax.Array:
    check_input_shape("LinearRegression", x, (self.in_features,))
    return self.layers[0](x)[:, 0]
