"""The PPO example (experiments/ppo_cartpole.py): pure, vmappable, and it learns CartPole.

One program is compiled for the module: ``train_one`` vmapped over four hyperparameter
settings, 20 updates in intervals of 5, all agents from one key (their differences are
their hyperparameters), with the engine's CPU compiler options.
"""

from __future__ import annotations

import functools
import re
import importlib.util
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from experiments import ppo_cartpole
from momentum_jax import problems, sweep
from momentum_jax.train import compiler_options

pytest.importorskip("gymnax", reason="the rl extra (gymnax) is not installed")

UPDATES, LOG_EVERY = 20, 5
# Two that learn fast, one slower, and a learning rate of 0: the initial, near-uniform
# policy (its last layer is scaled by 0.01), the random baseline measured on the same seed.
HYPERPARAMETERS = {
  "learning_rate": jnp.array([2.5e-3, 1e-2, 1e-3, 0.0], jnp.float32),
  "b1": jnp.array([0.9, 0.0, 0.5, 0.99], jnp.float32),
  "clip_eps": jnp.array([0.2, 0.3, 0.1, 0.4], jnp.float32),
}
WIDTH = 4
KEY = jax.random.key(0)
ROOT = Path(__file__).resolve().parent.parent


def _program(train_one):
  run = functools.partial(train_one, updates=UPDATES, log_every=LOG_EVERY)
  return jax.jit(jax.vmap(run, in_axes=(0, None)), compiler_options=compiler_options("cpu"))


@pytest.fixture(scope="module")
def program():
  return _program(ppo_cartpole.train_one)


@pytest.fixture(scope="module")
def swept(program):
  return program(HYPERPARAMETERS, KEY)


def _row(tree, k):
  return jax.tree.map(lambda x: np.asarray(x[k]), tree)


def _assert_bit_identical(actual, expected):
  jax.tree.map(np.testing.assert_array_equal, actual, expected)


def _setting(k):
  return {name: values[k] for name, values in HYPERPARAMETERS.items()}


def test_pure_traced_afresh_and_run_again_the_same(program, swept):
  # A fresh trace (a new jit of the undecorated function: no cache shared with `program`)
  # lowers to the same program, and running it again gives the same bits: nothing depends
  # on Python state at trace time or on anything but the arguments at run time.
  static = ("updates", "log_every", "settings")
  fresh = _program(jax.jit(ppo_cartpole.train_one.__wrapped__, static_argnames=static))
  lowered = fresh.lower(HYPERPARAMETERS, KEY).as_text()
  assert lowered == program.lower(HYPERPARAMETERS, KEY).as_text()
  _assert_bit_identical(program(HYPERPARAMETERS, KEY), swept)


@pytest.mark.parametrize("k", range(WIDTH))
def test_vmapped_run_equals_the_run_alone_at_the_same_width(program, swept, k):
  # Setting k alone, as the engine pads a chunk: every row of the same program holds it.
  # One program, rows computed independently: bit-identical. (Across widths XLA may
  # order a reduction differently, and a flipped action sample makes a different run.)
  alone = program({name: jnp.full(WIDTH, value) for name, value in _setting(k).items()}, KEY)
  _assert_bit_identical(_row(alone, 0), _row(swept, k))


def test_training_raises_the_return_well_above_random(swept):
  _, metrics, evaluation = swept
  returns = np.asarray(evaluation["return"])
  # Measured after 20 updates (episodes completed in the last 5), the settings of rows 0
  # and 1 over 16 seeds: min 120 and 110, means 224 and 198; the random policy 21.8 (an
  # average over ~450 episodes, its standard error < 1). A CPU that rounds differently
  # runs another trajectory, as another seed would: 60 is half the worst of 16 seeds and
  # still 2.7 times the random return.
  assert returns[3] < 30, returns
  assert (returns[:2] > 60).all(), returns
  assert np.isfinite(np.asarray(metrics["loss"])).all()
  assert metrics["loss"].shape == (WIDTH, UPDATES)


def test_state_shapes_do_not_depend_on_hyperparameter_values():
  # Traced abstractly, hyperparameters have no values: shapes cannot come from them. The
  # state `train` returns has init's structure, shapes and dtypes (a scan carry can).
  abstract = {name: jax.ShapeDtypeStruct((), jnp.float32) for name in HYPERPARAMETERS}
  state = jax.eval_shape(ppo_cartpole.init, abstract, KEY)
  after, metrics = jax.eval_shape(
    functools.partial(ppo_cartpole.train, steps=3), state, abstract, KEY
  )
  assert jax.tree.structure(after) == jax.tree.structure(state)
  assert jax.tree.leaves(after) == jax.tree.leaves(state)
  assert {name: m.shape for name, m in metrics.items()} == {
    "loss": (3,),
    "value_loss": (3,),
    "entropy": (3,),
    "episode_return": (3,),
  }
  assert jax.eval_shape(ppo_cartpole.evaluate, after)["return"].shape == ()


def test_a_missing_hyperparameter_is_named():
  with pytest.raises(ValueError, match="missing clip_eps"):
    ppo_cartpole.init({"learning_rate": 1e-3, "b1": 0.9}, KEY)


@pytest.mark.parametrize(
  "settings, message",
  [
    ({"num_envz": 8}, "^num_envz is not an option .* did you mean 'num_envs'"),
    ({"num_envs": "8"}, "^num_envs must be a whole number, got '8'"),
    ({"num_steps": 0}, "^num_steps must be at least 1"),
    ({"num_steps": 10, "minibatches": 3}, r"^minibatches \(3\) must divide .* 80"),
    ({"gamma": "0.99"}, "^gamma must be a number"),
  ],
)
def test_bad_options_start_with_their_name(settings, message):
  with pytest.raises((TypeError, ValueError), match=message):
    ppo_cartpole.trainable(**settings)


def test_imports_without_gymnax_and_names_the_extra_when_used(monkeypatch):
  monkeypatch.setitem(sys.modules, "gymnax", None)  # `import gymnax` raises ImportError
  spec = importlib.util.spec_from_file_location("ppo_without_gymnax", ppo_cartpole.__file__)
  module = importlib.util.module_from_spec(spec)
  monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
  spec.loader.exec_module(module)
  with pytest.raises(ImportError, match=r"momentum_jax\[rl\]"):
    module.trainable(num_envs=4)


def test_the_factory_builds_a_trainable_the_engine_accepts():
  trainable = ppo_cartpole.trainable(num_envs=4, num_steps=16)
  assert isinstance(trainable, problems.Trainable)
  # The engine's own checks (traced, not compiled): pure, shapes kept, scalar metrics.
  names = tuple(HYPERPARAMETERS)
  metrics, evaluated = trainable.logged(names, LOG_EVERY)
  assert set(metrics) == {"loss", "value_loss", "entropy", "episode_return"}
  assert "val_return" in trainable.metric_names(names, LOG_EVERY)
  state = trainable.abstract_state(names)
  assert state.obs.shape == (4, 4)
  assert jax.eval_shape(trainable.model, state) == state.params


def test_the_config_is_valid():
  config = sweep.check(ROOT / "configs" / "ppo_cartpole.yaml")
  assert config.problem_options == {"num_envs": 8, "num_steps": 64}


def test_a_bad_option_in_a_config_is_named_by_its_path():
  config = yaml.safe_load((ROOT / "configs" / "ppo_cartpole.yaml").read_text())
  config["problem"]["num_envs"] = "eight"
  with pytest.raises(sweep.ConfigError, match="^problem.num_envs: num_envs must be a whole"):
    sweep.check(config)


@pytest.mark.parametrize("page", ["README.md", "docs/any_training.md"])
def test_the_pages_show_the_config(page):
  """The PPO sweep the README and the docs show is configs/ppo_cartpole.yaml's."""
  config = yaml.safe_load((ROOT / "configs" / "ppo_cartpole.yaml").read_text())
  blocks = [
    yaml.safe_load(block)
    for block in re.findall(r"```yaml\n(.*?)```", (ROOT / page).read_text(), re.S)
  ]
  shown = [b for b in blocks if isinstance(b, dict) and "ppo_cartpole" in str(b.get("problem"))]
  assert shown, f"{page} shows no PPO config"
  for key in ("problem", "hyperparameters", "train", "search"):
    assert shown[0][key] == config[key], key
