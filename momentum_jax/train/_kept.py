"""A trained run's kept arrays by name: what a sweep's ``keep:`` saves and
:func:`momentum_jax.results.load_model` reads back, named in this one place.

A Problem's model is named as its module's fields are
(``params.layers.0.kernel``, ``rest.…``); a Trainable's kept pytree by its
paths as ``jax.tree_util.keystr`` writes them (``model['actor'][0]``). A
random key (a Dropout's RNG state) is kept as its key data. Each run's
``kept`` (:meth:`Setup.kept <momentum_jax.train.Setup.kept>`,
:meth:`TrainableRun.kept <momentum_jax.train.TrainableRun.kept>`) names its
own, traced or not.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

PARTS = ("params", "rest")  # a Problem's model: its parameters and its other state


def part_name(part: str, path: tuple) -> str:
  """A model array's name: its part (:data:`PARTS`) and its path in the module, dotted."""
  return ".".join((part, *map(str, path)))


def tree_name(path: tuple) -> str:
  """A kept pytree leaf's name: ``model`` and its path as ``jax.tree_util.keystr`` writes it."""
  return "model" + jax.tree_util.keystr(path)


def _key_data(value: Any) -> Any:
  return (
    jax.random.key_data(value) if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key) else value
  )


def flat_arrays(params: Any, rest: Any) -> dict[str, Any]:
  """A model's ``params`` and ``rest`` (``nnx.State``) as ``{"params.layers.0.kernel": array}``."""
  return {
    part_name(part, path): _key_data(variable[...])
    for part, state in zip(PARTS, (params, rest))
    for path, variable in nnx.to_flat_state(state)
  }


def flat_tree(tree: Any) -> dict[str, Any]:
  """A Trainable's kept pytree as ``{"model<path>": array}`` (see :func:`tree_name`)."""
  return {
    tree_name(path): _key_data(value)
    for path, value in jax.tree_util.tree_flatten_with_path(tree)[0]
  }
