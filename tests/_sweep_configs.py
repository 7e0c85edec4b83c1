"""Sweep configs shared by the engine's tests, and a way to vary them."""

import copy

# Heavy-ball momentum on the literature's regression: 3 learning rates x 3
# betas x 2 seeds = 18 configurations, 40 full-batch steps, logged twice.
REGRESSION = {
    "problem": {"name": "linear_regression"},
    "optimizer": {"name": "momentum", "ema": False,
                  "learning_rate": {"logspace": [0.003, 0.3, 3]},
                  "beta": {"linspace": [0.0, 0.9, 3]}},
    "train": {"steps": 40, "log_every": 20},
    "seeds": 2,
}


def with_changes(config: dict, **changes) -> dict:
  """A copy of ``config`` with ``a__b=value`` setting ``config[a][b]``."""
  config = copy.deepcopy(config)
  for path, value in changes.items():
    *parents, last = path.split("__")
    node = config
    for key in parents:
      node = node[key]
    node[last] = value
  return config
