"""Sweep configs shared by the engine's tests, and a way to vary them."""

import copy

# Heavy-ball momentum on the literature's regression: 3 learning rates x 3
# betas x 2 seeds = 18 configurations, 40 full-batch steps, logged twice.
REGRESSION = {
  "problem": {"name": "linear_regression"},
  "optimizer": {
    "name": "momentum",
    "ema": False,
    "learning_rate": {"logspace": [0.003, 0.3, 3]},
    "beta": {"linspace": [0.0, 0.9, 3]},
  },
  "train": {"steps": 40, "log_every": 20},
  "seeds": 2,
}

# Two groups on the regression: 9 heavy-ball momentum settings and 3 of Adam, x 2 seeds.
TWO_GROUPS = {
  "problem": {"name": "linear_regression"},
  "optimizers": [
    {
      "name": "momentum",
      "ema": False,
      "learning_rate": {"logspace": [0.003, 0.3, 3]},
      "beta": {"linspace": [0.0, 0.9, 3]},
    },
    {"name": "adam", "learning_rate": [0.01, 0.1, 1.0]},
  ],
  "train": {"steps": 40, "log_every": 20},
  "seeds": 2,
}  # 18 + 6 configurations

# Heavy-ball momentum on the regression: 9 learning rates (the largest
# diverge) x 2 seeds, 90 full-batch steps logged every 10; rungs at 10, 30, 90.
HALVING = {
  "problem": {"name": "linear_regression"},
  "optimizer": {
    "name": "momentum",
    "ema": False,
    "learning_rate": {"logspace": [0.001, 10.0, 9]},
    "beta": 0.9,
  },
  "train": {"steps": 90, "log_every": 10},
  "seeds": 2,
  "search": {
    "method": "grid",
    "scheduler": {"name": "successive_halving", "eta": 3, "min_steps": 10, "metric": "final_loss"},
  },
}


# Heavy-ball momentum on the regression: 8 members (a loguniform learning
# rate; beta from a list of one value, copied unchanged) x 2 seeds, 60
# full-batch steps logged every 10, exploits after steps 20 and 40. Factor
# 1 or 2: with this seed two copies keep their source's learning rate (and
# then train exactly as it does), two double it.
REGRESSION_PBT = {
  "problem": {"name": "linear_regression"},
  "optimizer": {
    "name": "momentum",
    "ema": False,
    "learning_rate": {"loguniform": [0.001, 0.5]},
    "beta": [0.9],
  },
  "train": {"steps": 60, "log_every": 10},
  "seeds": 2,
  "search": {
    "method": "pbt",
    "population": 8,
    "interval": 20,
    "fraction": 0.25,
    "perturb": [1.0, 2.0],
    "seed": 3,
    "metric": "final_loss",
  },
}

# Heavy-ball momentum on Rosenbrock from points spread about the start: a population of 8
# (a loguniform learning rate) x 2 seeds, 60 steps logged every 10, exploits after 20 and 40.
ROSENBROCK_PBT = {
  "problem": {"name": "rosenbrock", "start_spread": 0.1},
  "optimizer": {
    "name": "momentum",
    "ema": False,
    "learning_rate": {"loguniform": [1e-4, 1e-3]},
    "beta": [0.9],
  },
  "train": {"steps": 60, "log_every": 10},
  "seeds": 2,
  "search": {
    "method": "pbt",
    "population": 8,
    "interval": 20,
    "fraction": 0.25,
    "perturb": [1.0, 2.0],
    "seed": 3,
  },
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
