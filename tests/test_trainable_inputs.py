"""A Trainable as a stranger brings it: their own training loop, their own YAML, their mistakes.

Each bad input is refused before anything compiles with one line naming the
config path at fault (exit status 2 from the command); each reasonable one
works. The Trainables are in ``tests/quadratic_trainable.py`` (named by
import path, as a user's YAML names them) or built here.
"""

from __future__ import annotations

import functools
import operator

import numpy as np
import pytest
import yaml

import quadratic_trainable
from momentum_jax import cli, problems, sweep

BASE = {
  "problem": {"name": "quadratic_trainable:quadratic"},
  "hyperparameters": {"learning_rate": [0.1]},
  "train": {"steps": 10, "log_every": 5},
}


def check_fails(config, tmp_path, capsys) -> str:
  """The command's one-line error for ``config`` (written as YAML), checked to be one."""
  path = tmp_path / "sweep.yaml"
  path.write_text(yaml.safe_dump(config))
  code = cli.main(["check", str(path)])
  err = capsys.readouterr().err.strip()
  assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
  return err


# The columns the results give a meaning of their own (and the prefixes of the metrics'): a
# hyperparameter of one of these names overwrote the column, or crashed the report.
COLUMNS = [
  "seed",
  "config_id",
  "optimizer",
  "step",
  "diverged",
  "final_loss",
  "val_distance",
  "start_val_x",
  "train_loss",
  "train_norm",
  "lineage",
  "member",
  "trial",
  "stopped_at_step",
]


@pytest.mark.parametrize("name", COLUMNS)
def test_a_hyperparameter_named_as_a_column_is_refused(name, tmp_path, capsys):
  config = {**BASE, "hyperparameters": {"learning_rate": [0.1], name: [1.0, 2.0]}}
  err = check_fails(config, tmp_path, capsys)
  assert f"hyperparameters.{name}: " in err and "call it something else" in err, err


def _scaled(names):
  """The quadratic, its learning rate the product of the hyperparameters ``names``."""

  def train(state, hyperparameters, key, steps):
    rate = functools.reduce(operator.mul, [hyperparameters[n] for n in names])
    return quadratic_trainable.train(state, {"learning_rate": rate}, key, steps)

  return problems.Trainable("scaled", quadratic_trainable.init, train)


def test_hyperparameter_names_with_dashes_dots_and_spaces_work():
  names = ["learning-rate", "clip.eps", "my scale"]
  config = {
    **BASE,
    "problem": _scaled(names),
    "hyperparameters": {"learning-rate": [0.1, 0.2], "clip.eps": [0.5], "my scale": [1.0]},
  }
  summary = sweep.run(config, quiet=True).summary
  assert list(summary[names].itertuples(index=False, name=None)) == [
    (0.1, 0.5, 1.0),
    (0.2, 0.5, 1.0),
  ]
  alone = sweep.run(
    {
      **config,
      "problem": quadratic_trainable.quadratic(False),
      "hyperparameters": {"learning_rate": [0.05, 0.1]},
    },
    quiet=True,
  ).summary
  np.testing.assert_array_equal(summary["final_loss"], alone["final_loss"])
