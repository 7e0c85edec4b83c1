"""Flax NNX models to train: linear regression, an MLP, a small CNN, and a point on a 2-D landscape.

Every network keeps its weight layers in ``model.layers`` (an ``nnx.List``, input
to output) and its BatchNorms in ``model.norms``, so parameter paths are short
and stable (``('layers', 0, 'kernel')``) and :func:`layer_kernel_paths` can
pick the first and last layers' gradients.

BatchNorm: training and evaluation mode
  A BatchNorm's mode is the static attribute ``use_running_average``; models
  are built in training mode (``False``: normalise with the batch's own
  statistics and update the running averages, momentum 0.99). In flax 0.12:

  * ``model.eval()`` / ``model.train()`` switch a model in place;
  * ``nnx.view(model, use_running_average=True)`` returns an evaluation-mode
    model sharing the same arrays, leaving ``model`` as it was.

  The mode lives in the graphdef, not in the state, so for split state keep
  one graphdef per mode; both merge with the same ``params`` and ``rest``::

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    eval_graphdef = nnx.graphdef(nnx.view(model, use_running_average=True))

Split state inside jax transforms
  Training runs on ``graphdef, params, rest = nnx.split(model, nnx.Param,
  ...)`` as plain pytrees, so ``jax.jit``/``jax.vmap`` apply directly. Inside a
  transform merge with ``copy=True``::

    def loss_fn(params, rest, x, y):
      model = nnx.merge(graphdef, params, rest, copy=True)
      loss = ...(model(x), y)
      return loss, nnx.state(model, nnx.BatchStat)  # the updated statistics

  Without ``copy=True`` the merged BatchStat variables belong to the outer
  trace and a training-mode BatchNorm raises ``TraceContextError`` when it
  writes its statistics. To initialise a batch of models (one per seed),
  build and split inside ``jax.vmap`` over keys and return the state only; the
  graphdef, which is not an array, comes from one model built outside (or
  ``nnx.eval_shape``, which allocates nothing)::

    def init(key):
      _, params, rest = nnx.split(MLP(..., rngs=nnx.Rngs(key)), nnx.Param, ...)
      return params, rest

    params, rest = jax.vmap(init)(jax.random.split(key, num_seeds))
"""

from momentum_jax.models._cnn import CNN
from momentum_jax.models._factory import MODELS
from momentum_jax.models._factory import create_model
from momentum_jax.models._linear import LinearRegression
from momentum_jax.models._mlp import ACTIVATIONS
from momentum_jax.models._mlp import INITIALIZERS
from momentum_jax.models._mlp import MLP
from momentum_jax.models._paths import layer_kernel_paths
from momentum_jax.models._point import LandscapePoint

__all__ = [
  "ACTIVATIONS",
  "CNN",
  "INITIALIZERS",
  "LandscapePoint",
  "LinearRegression",
  "MLP",
  "MODELS",
  "create_model",
  "layer_kernel_paths",
]
