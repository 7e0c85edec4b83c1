"""Multi-layer perceptron with a choice of activation, initialisation, BatchNorm and residuals.

The knobs are the ones the vanishing-gradient literature turns: a saturating
activation (sigmoid) with a small initialisation makes early layers' gradients
vanish; ReLU with He initialisation, BatchNorm and residual connections are the
cures.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

from momentum_jax.models._checks import check_choice
from momentum_jax.models._checks import check_input_shape
from momentum_jax.models._checks import check_positive_int
from momentum_jax.models._checks import check_positive_ints

ACTIVATIONS = {
  "relu": jax.nn.relu,
  "sigmoid": jax.nn.sigmoid,
  "tanh": jax.numpy.tanh,
}

NAIVE_STDDEV = 0.01

# He and LeCun use jax's truncated normal, which is rescaled so that the
# standard deviation after truncation is the nominal one.
INITIALIZERS = {
  "xavier_uniform": nnx.initializers.xavier_uniform(),
  "he_normal": nnx.initializers.he_normal(),
  "lecun_normal": nnx.initializers.lecun_normal(),
  "naive": nnx.initializers.normal(stddev=NAIVE_STDDEV),
}


class MLP(nnx.Module):
  """Dense layers ``in_features → hidden[0] → … → hidden[-1] → out_features``.

  Each hidden layer computes ``f(h) = activation(BatchNorm(h·W + b))`` (the
  BatchNorm only with ``batch_norm=True``); the output layer is linear and
  returns logits of shape ``(batch, out_features)``.

  Kernel initialisations (biases always start at zero), with the standard
  deviation each gives a kernel of shape ``(fan_in, fan_out)``:

  ====================  ===============================  ==============================
  ``init``              distribution                     std
  ====================  ===============================  ==============================
  ``"he_normal"``       truncated normal (Kaiming)       ``sqrt(2 / fan_in)``
  ``"lecun_normal"``    truncated normal (flax default)  ``sqrt(1 / fan_in)``
  ``"xavier_uniform"``  uniform (Glorot)                 ``sqrt(2 / (fan_in + fan_out))``
  ``"naive"``           normal ``N(0, 0.01²)``           ``0.01``
  ====================  ===============================  ==============================

  ``"naive"`` is the small fixed-scale initialisation of early networks. It
  ignores the layer width, so each layer shrinks the backward signal by about
  ``0.01·sqrt(fan_out)`` times the activation's slope (≤ 0.25 for sigmoid):
  with sigmoid and ten layers the first layer's gradient is many orders of
  magnitude below the last's. It is here to show vanishing gradients.

  Residual connections (``residual=True``) turn every hidden layer after the
  first into ``h ← h + f(h)``. The first hidden layer maps the input features
  into the hidden space and has no skip; the others need equal widths, so
  ``hidden`` must be constant (a projection on the skip path would add
  parameters the comparison with a plain MLP does not have).

  BatchNorm runs in training mode (batch statistics, running averages
  updated) when built; see :mod:`momentum_jax.models` for switching to
  evaluation mode.

  Layers are kept in ``self.layers`` (an ``nnx.List`` of ``nnx.Linear``, input
  to output), so parameter paths read ``('layers', 0, 'kernel')``, …, and
  BatchNorms in ``self.norms`` (``('norms', i, 'scale')``, empty without
  BatchNorm). :func:`layer_kernel_paths` lists the kernel paths.

  Args:
    in_features: number of input features.
    hidden: widths of the hidden layers; may be empty (a linear classifier).
    out_features: number of outputs (classes).
    activation: ``"relu"``, ``"sigmoid"`` or ``"tanh"``.
    batch_norm: put an ``nnx.BatchNorm`` after each hidden linear layer,
      before the activation.
    residual: add skip connections ``h ← h + f(h)`` between consecutive hidden
      layers (all hidden widths must be equal).
    init: kernel initialisation, one of the table above.
    rngs: random streams for the initial weights.

  Raises:
    ValueError: for an unknown ``activation`` or ``init`` (naming the closest
      valid one), non-positive sizes, or ``residual=True`` with unequal widths.

  Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from momentum_jax.models import MLP, layer_kernel_paths
    >>> model = MLP(8, [8, 8], 4, activation="tanh", rngs=nnx.Rngs(0))
    >>> model(jnp.ones((2, 8))).shape
    (2, 4)
    >>> layer_kernel_paths(model)
    [('layers', 0, 'kernel'), ('layers', 1, 'kernel'), ('layers', 2, 'kernel')]
  """

  def __init__(
    self,
    in_features: int,
    hidden: Sequence[int],
    out_features: int,
    *,
    activation: str = "relu",
    batch_norm: bool = False,
    residual: bool = False,
    init: str = "he_normal",
    rngs: nnx.Rngs,
  ):
    check_positive_int("in_features", in_features)
    hidden = check_positive_ints("hidden", hidden)
    check_positive_int("out_features", out_features)
    check_choice("activation", activation, ACTIVATIONS)
    check_choice("init", init, INITIALIZERS)
    if residual and len(set(hidden)) > 1:
      raise ValueError(
        "residual=True needs equal hidden widths, because each skip adds a "
        f"layer's input to its output; got hidden={list(hidden)}. Use e.g. "
        f"hidden={[hidden[0]] * len(hidden)} or residual=False"
      )
    self.in_features = in_features
    self.activation = activation
    self.residual = residual
    widths = (in_features, *hidden, out_features)
    self.layers = nnx.List(
      [
        nnx.Linear(
          fan_in,
          fan_out,
          kernel_init=INITIALIZERS[init],
          bias_init=nnx.initializers.zeros_init(),
          rngs=rngs,
        )
        for fan_in, fan_out in zip(widths[:-1], widths[1:])
      ]
    )
    self.norms = nnx.List(
      [nnx.BatchNorm(width, rngs=rngs) for width in hidden] if batch_norm else []
    )

  def __call__(self, x: jax.Array) -> jax.Array:
    check_input_shape("MLP", x, (self.in_features,))
    activation = ACTIVATIONS[self.activation]
    h = x
    for i, linear in enumerate(self.layers[:-1]):
      z = linear(h)
      if self.norms:
        z = self.norms[i](z)
      h = h + activation(z) if self.residual and i > 0 else activation(z)
    return self.layers[-1](h)
