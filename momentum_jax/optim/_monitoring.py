"""Recording gradient norms inside an optimizer chain, for vanishing-gradient studies."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from momentum_jax.optim import _tree


class GradNormState(NamedTuple):
  """State of :func:`record_grad_norms`: norms of the last updates seen.

  Attributes:
    global_norm: L2 norm of all leaves together, a float32 scalar.
    leaf_norms: L2 norm of each leaf, a tree shaped like the params with a
      float32 scalar per leaf (one per layer kernel, bias, BatchNorm scale, …).
  """

  global_norm: jax.Array
  leaf_norms: Any


def _leaf_norm(x: jax.Array) -> jax.Array:
  # At least float32 precision; a complex leaf's norm is that of |x|.
  x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  return jnp.sqrt(jnp.sum(_tree.abs_sq(x)))


def record_grad_norms() -> optax.GradientTransformation:
  r"""Passes updates through unchanged and records their global and per-leaf L2 norms.

  Put it first in a chain to record the raw gradients, or after
  ``optax.clip_by_global_norm`` to record what the optimizer sees. The norms
  are read back with :func:`grad_norms` (or ``optax.tree.get(state,
  "global_norm")``). Before the first update they are zero.

  Written here rather than with ``optax.monitor`` because that state starts as
  an empty dict and fills on the first update, so its structure changes and it
  cannot be carried through ``jax.lax.scan``; this state keeps one structure.

  Returns:
    An :class:`optax.GradientTransformation` with state :class:`GradNormState`.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> import momentum_jax as mj
    >>> tx = optax.chain(mj.record_grad_norms(), mj.sgd(0.1))
    >>> params = {"w": jnp.zeros(2), "b": jnp.zeros(1)}
    >>> grads = {"w": jnp.array([3.0, 4.0]), "b": jnp.array([12.0])}
    >>> _, state = tx.update(grads, tx.init(params))
    >>> norms = mj.grad_norms(state)
    >>> float(norms.global_norm), float(norms.leaf_norms["w"])
    (13.0, 5.0)
  """

  def init_fn(params):
    return GradNormState(
      global_norm=jnp.zeros([], jnp.float32),
      leaf_norms=jax.tree.map(lambda _: jnp.zeros([], jnp.float32), params),
    )

  def update_fn(updates, state, params=None):
    del params, state
    leaf_norms = jax.tree.map(_leaf_norm, updates)
    squares = [jnp.square(n) for n in jax.tree.leaves(leaf_norms)]
    global_norm = jnp.sqrt(sum(squares, jnp.zeros([], jnp.float32)))
    return updates, GradNormState(global_norm=global_norm, leaf_norms=leaf_norms)

  return optax.GradientTransformation(init_fn, update_fn)


def grad_norms(opt_state: optax.OptState) -> GradNormState:
  """Finds the :class:`GradNormState` in a (nested) optimizer state.

  Raises:
    ValueError: if the state holds none or more than one.
  """
  found = [
    s
    for s in jax.tree.leaves(opt_state, is_leaf=lambda s: isinstance(s, GradNormState))
    if isinstance(s, GradNormState)
  ]
  if len(found) != 1:
    raise ValueError(
      f"expected exactly one record_grad_norms() in the optimizer chain, found {len(found)}"
    )
  return found[0]


def named_norms(leaf_norms: Any) -> dict[str, jax.Array]:
  """Flattens per-leaf norms to ``{"path/to/leaf": norm}``, e.g. for a table."""
  flat, _ = jax.tree_util.tree_flatten_with_path(leaf_norms)
  return {"/".join(str(_key_name(k)) for k in path): value for path, value in flat}


def _key_name(key: Any) -> Any:
  for attribute in ("key", "name", "idx"):
    if hasattr(key, attribute):
      return getattr(key, attribute)
  return key
