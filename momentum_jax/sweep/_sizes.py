"""Sizes checked before they are allocated: a sweep's configurations, and one configuration's memory.

A typo can ask for a billion of something (``seeds: 1000000000``, a
``linspace`` count with three zeros too many, ``hidden: [100000000]``); the
sweep would allocate until the memory runs out, long before it said
anything. The sizes are known from the config (and the model's shapes,
built abstractly) before any value is computed, so they are checked first,
and refused with their numbers; ``force`` (the CLI's ``--force``) goes on.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

from momentum_jax.sweep._errors import ConfigError

if TYPE_CHECKING:
  from momentum_jax.sweep._search import SearchSpec

# Configurations (seeds included) a sweep may have unless forced: a million
# runs of the smallest problem here take hours on a CPU core; more is a typo.
MAX_CONFIGS = 1_000_000
_FORCE = "pass --force (force=True) to go on"


def _factors(group: Any, search: SearchSpec, seeds: int) -> list[tuple[str, int]]:
  """``(path, count)`` of each factor of a group's configurations, as written."""
  factors = [(f"{group.path}.{name}", size) for name, size in group.sizes().items()]
  if search.trials is not None:
    factors.append(("search.trials", search.trials))
  elif group.ranges:
    factors.append(
      ("search.population" if search.pbt is not None else "search.samples", search.samples)
    )
  factors.append(("seeds", seeds))
  return factors


def check_config_sizes(groups: Sequence[Any], search: SearchSpec, seeds: int) -> None:
  """Refuses more than :data:`MAX_CONFIGS` configurations, before any value is computed.

  ``groups`` are the optimizer groups as written: each has a ``path``, its
  grid's ``sizes()`` and its ``ranges``.

  Raises:
    ConfigError: at the largest factor of the largest group, with the product.
  """
  total, worst = 0, None
  for group in groups:
    factors = _factors(group, search, seeds)
    count = math.prod(size for _, size in factors)
    total += count
    if worst is None or count > worst[0]:
      worst = (count, factors)
  if worst is None or total <= MAX_CONFIGS:
    return
  count, factors = worst
  path = max(factors, key=lambda factor: factor[1])[0]
  shown = " x ".join(f"{size:,} ({where})" for where, size in factors if size > 1)
  raise ConfigError(
    path,
    f"the sweep has {total:,} configurations ({shown} in "
    f"{'this group' if len(groups) > 1 else 'all'}), more than {MAX_CONFIGS:,}; "
    f"ask for fewer, or {_FORCE}",
  )


def check_memory(per_config: int, budget: int) -> None:
  """Refuses a problem one configuration of which needs more than a device's memory budget.

  Args:
    per_config: Bytes one configuration trains in
      (:func:`momentum_jax.sweep._devices.bytes_per_config`).
    budget: Bytes a device's batch may use
      (:func:`momentum_jax.sweep._devices.memory_budget`).
  """
  if per_config > budget:
    raise ConfigError(
      "problem",
      f"one configuration needs about {per_config / 2**30:.1f} GiB "
      f"(parameters, gradients, optimizer state and activations), more than "
      f"the {budget / 2**30:.1f} GiB a device may use; make the model or "
      f"batch smaller, or {_FORCE}",
    )
