"""A Trainable's config as a stranger writes it: hyperparameter names and values, YAML and dicts.

Each value written as another type, or a name the results already use, is
refused with one line naming its path (exit status 2 from the command) and
saying what to write; each reasonable one works.
"""

from __future__ import annotations

import functools
import operator

import jax.numpy as jnp
import numpy as np
import pytest

import quadratic_trainable
from _trainable_yaml import BASE, check_fails
from momentum_jax import problems, sweep


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


@pytest.mark.parametrize("value", [16777217, 2**30 + 1, -(2**25) - 2])
def test_an_integer_float32_cannot_hold_is_refused(value):
  """The values train as float32: 2**24 + 1 would train as 2**24 while the summary said
  2**24 + 1."""
  config = {**BASE, "hyperparameters": {"learning_rate": [0.1, value]}}
  with pytest.raises(sweep.ConfigError, match=r"hyperparameters\.learning_rate\[1\]: .*float32"):
    sweep.load_config(config)
  sweep.load_config({**BASE, "hyperparameters": {"learning_rate": [0.1, 2**24, 2**30]}})


WRITTEN = {
  "a bool": ({"use_gae": True}, "hyperparameters.use_gae: expected a number, got true"),
  "a list of bools": (
    {"use_gae": [True, False]},
    "hyperparameters.use_gae[0]: expected a number, got true",
  ),
  "a quoted number": (
    {"learning_rate": "1.0e-3"},
    "hyperparameters.learning_rate: expected a number, got the text '1.0e-3': write it unquoted",
  ),
  "a quoted number in a list": (
    {"learning_rate": [0.1, "0.2"]},
    "hyperparameters.learning_rate[1]: expected a number, got the text '0.2'",
  ),
  "nothing": (None, "hyperparameters: name at least one hyperparameter"),
}


@pytest.mark.parametrize("case", WRITTEN)
def test_a_value_written_as_another_type_says_what_to_write(case, tmp_path, capsys):
  given, says = WRITTEN[case]
  hyperparameters = None if given is None else {"learning_rate": [0.1], **given}
  err = check_fails({**BASE, "hyperparameters": hyperparameters}, tmp_path, capsys)
  assert says in err, err
  if "bool" in case:  # what to do instead
    assert "0 or 1" in err and "under problem:" in err, err


ARRAYS = {
  "a numpy array": np.array([0.05, 0.1]),
  "numpy scalars": [np.float32(0.05), np.float64(0.1)],
  "a jax array": jnp.array([0.05, 0.1]),
}


@pytest.mark.parametrize("kind", ARRAYS)
def test_numpy_and_jax_values_in_a_python_config_are_numbers(kind):
  """``np.logspace(...)`` in a dict config is a list of numbers (it was refused)."""
  config = {**BASE, "hyperparameters": {"learning_rate": ARRAYS[kind]}}
  swept = sweep.load_config(config).optimizers[0].grid["learning_rate"]
  np.testing.assert_array_equal(swept, np.asarray(ARRAYS[kind], np.float64))
  with_seeds = sweep.load_config(
    {**config, "seeds": np.arange(2), "train": {"steps": np.int64(10)}}
  )
  assert with_seeds.seeds == (0, 1) and with_seeds.train.steps == 10


def test_a_name_that_pbt_gives_its_final_values_is_refused(tmp_path, capsys):
  """Population-based training writes each hyperparameter's last value as ``final_<name>``."""
  config = {
    **BASE,
    "hyperparameters": {"learning_rate": {"loguniform": [0.01, 0.5]}, "final_learning_rate": 1.0},
    "search": {"method": "pbt", "population": 4, "interval": 5},
  }
  err = check_fails(config, tmp_path, capsys)
  assert "hyperparameters.final_learning_rate: " in err and "last value" in err, err


def test_a_problem_written_as_its_name_alone_says_how_to_write_it(tmp_path, capsys):
  err = check_fails({**BASE, "problem": "quadratic_trainable:quadratic"}, tmp_path, capsys)
  assert "problem: expected a mapping with a name: {name: quadratic_trainable:quadratic}" in err


def test_a_trainable_learning_rate_may_be_zero():
  """The engine does not know what a Trainable's ``learning_rate`` means: 0 (no training, a
  baseline) is the user's to sweep; it was refused as an optimizer's must be > 0."""
  config = {**BASE, "hyperparameters": {"learning_rate": [0.0, 0.5]}}
  summary = sweep.run(config, quiet=True).summary
  untrained = summary[summary["learning_rate"] == 0.0]
  np.testing.assert_array_equal(untrained["val_distance"], untrained["start_val_distance"])
