"""Helpers the transformations share: one map over leaves, and complex-safe squares."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp


def map_multi(
  fn: Callable[..., tuple[Any, ...]], num_outputs: int, tree: Any, *rest: Any
) -> tuple[Any, ...]:
  """Maps ``fn`` over the leaves of ``tree`` (and ``rest``), returning one tree per output.

  A transformation computes its update and its new state from the same leaves;
  writing that as one function per leaf keeps the maths in one place, where
  ``jax.tree.map`` would need one pass (and one copy of the formula) per output.
  """
  treedef = jax.tree.structure(tree)
  leaves = [treedef.flatten_up_to(t) for t in (tree, *rest)]
  outputs = [fn(*args) for args in zip(*leaves)]
  columns = list(zip(*outputs)) if outputs else [()] * num_outputs
  return tuple(treedef.unflatten(column) for column in columns)


def abs_sq(x: jax.Array) -> jax.Array:
  """``|x|²``: ``x · conj(x)`` for complex ``x`` (a real array), ``x**2`` for real ``x``.

  For real ``x`` this is the expression optax uses (``g**2``), so the results
  stay bit-identical to optax's.
  """
  if jnp.iscomplexobj(x):
    return (x.conj() * x).real
  return x**2


def real_full_like(tree: Any, fill_value: Any) -> Any:
  """``fill_value`` shaped like each leaf, in the leaf's real dtype (float32 for complex64).

  A second moment ``E[|g|²]`` is real even for complex parameters; keeping it
  real halves its memory and keeps the square root real.
  """

  def leaf(x):
    dtype = jnp.finfo(x.dtype).dtype if jnp.iscomplexobj(x) else x.dtype
    return jnp.full_like(x, fill_value, dtype=dtype)

  return jax.tree.map(leaf, tree)
