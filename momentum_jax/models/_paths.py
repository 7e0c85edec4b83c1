"""Where each layer's kernel sits in a model's parameter state."""

from __future__ import annotations

from flax import nnx

Path = tuple[str | int, ...]


def layer_kernel_paths(model: nnx.Module) -> list[Path]:
  """Paths of the weight layers' kernels in ``nnx.state(model, nnx.Param)``.

  Listed input to output, so ``paths[0]`` is the first layer and
  ``paths[-1]`` the output layer: the pair a vanishing-gradient study compares.
  The paths index the gradients too, since those share the params' structure.

  Args:
    model: a model from :mod:`momentum_jax.models` (any module that keeps its
      ``nnx.Linear``/``nnx.Conv`` layers in an ``nnx.List`` named ``layers``).

  Returns:
    Tuples such as ``('layers', 0, 'kernel')``; look one up in a state with
    ``dict(nnx.to_flat_state(state))[path]`` or ``state['layers'][0]['kernel']``.

  Raises:
    TypeError: if ``model`` has no ``layers`` list.

  Example:
    >>> from flax import nnx
    >>> from momentum_jax.models import MLP, layer_kernel_paths
    >>> model = MLP(8, [8, 8], 4, rngs=nnx.Rngs(0))
    >>> first, *_, last = layer_kernel_paths(model)
    >>> first, last
    (('layers', 0, 'kernel'), ('layers', 2, 'kernel'))
    >>> kernels = dict(nnx.to_flat_state(nnx.state(model, nnx.Param)))
    >>> kernels[first].shape, kernels[last].shape
    ((8, 8), (8, 4))
  """
  layers = getattr(model, "layers", None)
  if not isinstance(layers, nnx.List):
    raise TypeError(
      "layer_kernel_paths needs a model that keeps its layers in an "
      f"nnx.List named 'layers', as the models in momentum_jax.models do; "
      f"got {type(model).__name__}"
    )
  params = {path for path, _ in nnx.to_flat_state(nnx.state(model, nnx.Param))}
  paths = [("layers", i, "kernel") for i in range(len(layers))]
  return [path for path in paths if path in params]
