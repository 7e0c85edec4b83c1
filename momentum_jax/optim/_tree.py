"""One tree helper the transformations share."""

from __future__ import annotations

from typing import Any, Callable

import jax


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
