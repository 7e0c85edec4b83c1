"""A small convolutional classifier for CIFAR-10 (32x32x3) and scikit-learn digits (8x8x1)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

from momentum_jax.models._checks import check_input_shape
from momentum_jax.models._checks import check_positive_int
from momentum_jax.models._checks import check_positive_ints


def _pooled_side(side: int, stages: int) -> int:
  for _ in range(stages):
    side //= 2
  return side


class CNN(nnx.Module):
  """Conv stages, then a hidden dense layer, then logits.

  Each stage is a 3x3 convolution (``SAME`` padding) → BatchNorm (with
  ``batch_norm=True``) → ReLU → 2x2 max pool with stride 2, which halves the
  height and width (rounding down). After the stages the feature map is
  flattened into a dense layer of ``dense`` units with ReLU, and a linear layer
  returns logits of shape ``(batch, num_classes)``. Kernels use flax's default
  initialisation (LeCun normal), biases start at zero.

  Each 2x2 pool needs a side of at least 2, so an image of side ``s`` allows at
  most ``floor(log2(s))`` stages: 5 for CIFAR-10's 32x32, 3 for digits' 8x8.
  The constructor raises rather than build a network whose pooling would
  empty the image.

  Layers are kept in ``self.layers`` (an ``nnx.List``: the convolutions, the
  hidden dense layer, the output layer, input to output) and BatchNorms in
  ``self.norms``, like :class:`~momentum_jax.models.MLP`. BatchNorm starts in
  training mode; see :mod:`momentum_jax.models` for evaluation mode.

  Args:
    in_shape: ``(height, width, channels)`` of one image; inputs are
      ``(batch, height, width, channels)`` (NHWC, as CIFAR-10's arrays).
    num_classes: number of outputs.
    channels: output channels of each conv stage.
    dense: width of the hidden dense layer.
    batch_norm: put an ``nnx.BatchNorm`` after each convolution.
    rngs: random streams for the initial weights.

  Raises:
    ValueError: for non-positive sizes, or more stages than the image allows.

  Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from momentum_jax.models import CNN
    >>> model = CNN((8, 8, 1), 4, channels=(4, 8), dense=16, rngs=nnx.Rngs(0))
    >>> model(jnp.ones((2, 8, 8, 1))).shape
    (2, 4)
  """

  def __init__(
    self,
    in_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    *,
    channels: Sequence[int] = (32, 64),
    dense: int = 128,
    batch_norm: bool = False,
    rngs: nnx.Rngs,
  ):
    in_shape = check_positive_ints("in_shape", in_shape)
    if len(in_shape) != 3:
      raise ValueError(
        f"in_shape must be (height, width, channels), e.g. (32, 32, 3) or (8, 8, 1), got {in_shape}"
      )
    check_positive_int("num_classes", num_classes)
    channels = check_positive_ints("channels", channels)
    check_positive_int("dense", dense)
    height, width, in_channels = in_shape
    smallest = min(height, width)
    max_stages = smallest.bit_length() - 1
    if len(channels) > max_stages:
      raise ValueError(
        f"channels={list(channels)} asks for {len(channels)} conv stages, "
        f"but each halves the image and a {height}x{width} image allows at "
        f"most {max_stages}; pass at most {max_stages} channel counts or "
        "larger images"
      )
    self.in_shape = in_shape
    convs = [
      nnx.Conv(c_in, c_out, kernel_size=(3, 3), padding="SAME", rngs=rngs)
      for c_in, c_out in zip((in_channels, *channels[:-1]), channels)
    ]
    flat = (
      _pooled_side(height, len(channels))
      * _pooled_side(width, len(channels))
      * (channels[-1] if channels else in_channels)
    )
    self.layers = nnx.List(
      [
        *convs,
        nnx.Linear(flat, dense, rngs=rngs),
        nnx.Linear(dense, num_classes, rngs=rngs),
      ]
    )
    self.norms = nnx.List([nnx.BatchNorm(c, rngs=rngs) for c in channels] if batch_norm else [])

  def __call__(self, x: jax.Array) -> jax.Array:
    check_input_shape("CNN", x, self.in_shape)
    *convs, hidden, output = self.layers
    h = x
    for i, conv in enumerate(convs):
      h = conv(h)
      if self.norms:
        h = self.norms[i](h)
      h = nnx.max_pool(jax.nn.relu(h), window_shape=(2, 2), strides=(2, 2))
    h = h.reshape(h.shape[0], -1)
    return output(jax.nn.relu(hidden(h)))
