"""How far each optimizer lets its searched hyperparameters go: recorded for the report.

The report warns when the best configuration sits on the boundary of what
was searched, unless the optimizer refuses to go further (β = 0 at the
lower end: ``beta must be in [0, 1)``). Only the optimizer can say so; the
engine asks it once, here, and the manifest keeps the answer, so that the
report reads numbers and never rebuilds the config or imports the user's
code again.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from momentum_jax.sweep._config import SCHEDULE_PREFIX, OptimizerSpec, SweepConfig


def optimizer_limits(config: SweepConfig) -> dict[str, dict[str, list[float | None]]]:
  """Per group label and swept hyperparameter, ``[low, high]``: an end the optimizer refuses to pass.

  An end is ``None`` where the optimizer takes a value a step beyond it.
  Schedule parameters are not asked (a schedule's checks are not the
  optimizer's).
  """
  return {spec.label: _limits(spec) for spec in config.optimizers}


def _limits(spec: OptimizerSpec) -> dict[str, list[float | None]]:
  ends = {
    name: (float(np.min(values)), float(np.max(values)))
    for name, values in spec.grid.items()
    if not name.startswith(SCHEDULE_PREFIX)
  }
  ends.update(
    {
      name: (r.low, r.high)
      for name, r in spec.ranges.items()
      if not name.startswith(SCHEDULE_PREFIX)
    }
  )
  # The other hyperparameters at their lower ends: values the config's checks accepted.
  others = {name: low for name, (low, _) in ends.items()}
  return {
    name: [
      low if _refuses(spec, others, name, low, -1) else None,
      high if _refuses(spec, others, name, high, +1) else None,
    ]
    for name, (low, high) in ends.items()
  }


def _refuses(
  spec: OptimizerSpec, others: dict[str, Any], name: str, end: float, direction: int
) -> bool:
  """Whether the factory raises ``ValueError`` for ``name`` a relative step of 1e-6 past ``end``."""
  beyond = end + direction * max(abs(end), 1.0) * 1e-6
  try:
    spec.factory(**{**others, name: beyond}, **spec.static)
  except ValueError:
    return True
  except Exception:  # anything else is not the optimizer saying no to the value
    return False
  return False
