"""A Trainable as a stranger brings it: their own training loop and their mistakes in it.

Each bad input is refused before anything compiles with one line naming the
config path at fault (exit status 2 from the command); each reasonable one
works. The Trainables are in ``tests/quadratic_trainable.py`` (named by
import path, as a user's YAML names them) or built here. How the config is
written: ``tests/test_trainable_config.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.struct
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import quadratic_trainable
from _trainable_yaml import BASE, check_fails
from momentum_jax import problems, sweep
from momentum_jax import train as train_lib
from momentum_jax.problems._trainable import named_metrics


def _init64(hyperparameters, key):
  # JAX's default float: float64 under x64, float32 otherwise.
  return {"w": jax.random.normal(key, (3,)), "steps": jnp.zeros((), jnp.int32)}


def test_a_float64_trainable_sweeps_under_jax_x64():
  """With ``jax_enable_x64`` on, a float64 state trains in float64 (it failed: the divergence
  step became int64 in the scan's carry). lr = 1/2 halves ``w`` exactly in binary, so each
  logged loss is ``½|w₀|²·4^-t`` averaged over the interval: float64 rounding only (a few
  ulps of the squares and the sum, the mean of 5: ``(3 + 5 + 1)·2^-53``), far below float32's."""
  config = {**BASE, "hyperparameters": {"learning_rate": [0.5]}}
  with jax.enable_x64(True):
    trainable = problems.Trainable("float64", _init64, quadratic_trainable.train)
    result = sweep.run({**config, "problem": trainable}, quiet=True)
    w0 = np.asarray(_init64({}, train_lib.run_keys(jax.random.key(0))[0])["w"])
  losses = 0.5 * np.sum(w0**2) * 0.25 ** np.arange(10)
  expected = losses.reshape(2, 5).mean(axis=1)
  curve = result.curves["train_loss"].to_numpy()
  np.testing.assert_allclose(curve, expected, rtol=9 * 2.0**-53, atol=0)
  assert np.abs(curve / expected - 1).max() < 2.0**-30  # float32 could not come this close


def test_a_problem_sweeps_under_jax_x64_too():
  """The Problem's step had the same int64 divergence step in its carry."""
  config = {
    "problem": {"name": "linear_regression"},
    "optimizer": {"name": "momentum", "learning_rate": [0.01]},
    "train": {"steps": 4, "log_every": 2, "batch_size": 8},
  }
  with jax.enable_x64(True):
    summary = sweep.run(config, quiet=True).summary
  assert np.isfinite(summary["final_loss"]).all()


BAD = {
  "a hyperparameter nothing reads": (
    {"hyperparameters": {"learning_rate": [0.1], "momentum": [0.0, 0.9]}},
    "hyperparameters.momentum: neither problem.init nor problem.train reads it",
  ),
  "a misspelt name read with a default": (
    {
      "problem": {"name": "quadratic_trainable:reads_a_default"},
      "hyperparameters": {"learnin_rate": [0.1, 0.5]},
    },
    "hyperparameters.learnin_rate: neither problem.init nor problem.train reads it",
  ),
  "a train that ignores steps": (
    {"problem": {"name": "quadratic_trainable:ignores_steps"}},
    "problem.train: traced with steps=1 and steps=5 it gave the same program",
  ),
  "a model of nothing": (
    {"problem": {"name": "quadratic_trainable:keeps_nothing"}},
    "problem.model: returned no array",
  ),
  "a metric without a name": (
    {"problem": {"name": "quadratic_trainable:unnamed_metric"}},
    "problem.train: a metric's name must be a non-empty string, got ''",
  ),
  "a train that returns the state only": (
    {"problem": {"name": "quadratic_trainable:returns_the_state_only"}},
    "problem.train: must return (state, metrics), got a dict",
  ),
  "a train that returns three values": (
    {"problem": {"name": "quadratic_trainable:returns_three"}},
    "problem.train: must return (state, metrics), got a tuple of 3",
  ),
  "text in the state": (
    {"problem": {"name": "quadratic_trainable:text_in_state"}},
    "problem.init: returned a str at ['name'], not an array",
  ),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_naming_the_key(case, tmp_path, capsys):
  changes, says = BAD[case]
  err = check_fails({**BASE, **changes}, tmp_path, capsys)
  assert says in err and "_trainable.py" not in err, err


def _edited(scale: float) -> problems.Trainable:
  """The quadratic, its step scaled: the same functions by name, as after an edit of the code."""

  def train(state, hyperparameters, key, steps):
    rate = hyperparameters["learning_rate"] * scale
    return quadratic_trainable.train(state, {"learning_rate": rate}, key, steps)

  return problems.Trainable("edited", quadratic_trainable.init, train)


def test_a_sweep_is_not_resumed_with_edited_code(tmp_path):
  """A sweep's folder with a Trainable whose code changed is refused, saying so: resumed, it
  mixed the old code's steps with the new's (a finished one returned the old results)."""
  sweep.run({**BASE, "problem": _edited(1.0)}, tmp_path, quiet=True)
  with pytest.raises(sweep.OutputDirError, match="Trainable.s code changed") as error:
    sweep.run({**BASE, "problem": _edited(2.0)}, tmp_path, quiet=True)
  assert "overwrite" in str(error.value)
  again = sweep.run({**BASE, "problem": _edited(1.0)}, tmp_path, quiet=True)
  assert again.manifest["checkpoint"]["configs_resumed"] == 1


_X = jnp.eye(4)


def _linear(hyperparameters, key):
  return {"model": nnx.Linear(4, 1, use_bias=False, rngs=nnx.Rngs(key))}


def _linear_train(state, hyperparameters, key, steps):
  """Gradient descent on ½·mean((x·w)²), NNX's functional way (split, a scan, merge)."""
  graphdef, params = nnx.split(state["model"])

  def loss(params):
    return 0.5 * jnp.mean(nnx.merge(graphdef, params)(_X) ** 2)

  def step(params, _):
    value, grad = jax.value_and_grad(loss)(params)
    return jax.tree.map(lambda p, g: p - hyperparameters["learning_rate"] * g, params, grad), value

  params, losses = jax.lax.scan(step, params, None, length=steps)
  return {"model": nnx.merge(graphdef, params)}, {"loss": losses}


def test_a_flax_nnx_module_in_the_state_trains_and_is_kept():
  """An NNX module is a pytree whose nodes compare by identity: the state check refused it.
  With X = I₄ the loss is |w|²/8 and each step scales w by 1 − lr/4: lr = 2 halves it,
  exactly in binary."""
  trainable = problems.Trainable("nnx", _linear, _linear_train, model=lambda s: s["model"])
  config = {**BASE, "problem": trainable, "hyperparameters": {"learning_rate": [2.0]}}
  config["keep"] = {"models": 1}
  result = sweep.run(config, quiet=True)
  w0 = _linear({}, train_lib.run_keys(jax.random.key(0))[0])["model"].kernel[...]
  kept = result.models[0].states[0]
  (name,) = [n for n in kept if "kernel" in n]
  np.testing.assert_array_equal(kept[name], np.asarray(w0) * np.float32(0.5**10))


class _Metrics(NamedTuple):
  loss: jax.Array
  norm: jax.Array


@flax.struct.dataclass
class _StructMetrics:
  loss: jax.Array
  norm: jax.Array


STRUCTURES = {
  "a NamedTuple": lambda m, state: _Metrics(m["loss"], m["norm"]),
  "a flax.struct dataclass": lambda m, state: _StructMetrics(m["loss"], m["norm"]),
  "nested dicts": lambda m, state: {"loss": m["loss"], "weights": {"norm": m["norm"]}},
}


@pytest.mark.parametrize("structure", STRUCTURES)
def test_metrics_in_named_structures_are_logged(structure):
  """Named fields are metric names, a nested dict's ``outer/inner`` (they were refused)."""
  shaped = STRUCTURES[structure]

  def train(state, hyperparameters, key, steps):
    state, metrics = quadratic_trainable.train(state, hyperparameters, key, steps)
    return state, shaped(metrics, state)

  config = {**BASE, "problem": problems.Trainable("shaped", quadratic_trainable.init, train)}
  curves = sweep.run(config, quiet=True).curves
  plain = sweep.run({**config, "problem": quadratic_trainable.quadratic(False)}, quiet=True).curves
  column = "train_weights/norm" if structure == "nested dicts" else "train_norm"
  # The same arithmetic in another program: XLA may fuse it otherwise, a few float32 ulps.
  np.testing.assert_allclose(curves[column], plain["train_norm"], rtol=8 * 2.0**-24)
  np.testing.assert_allclose(curves["train_loss"], plain["train_loss"], rtol=8 * 2.0**-24)


def test_integer_and_bool_metrics_are_logged_as_numbers():
  """An int32 count and a bool flag (per step: the interval's fraction), exact; they were
  refused as not float."""

  def train(state, hyperparameters, key, steps):
    state, metrics = quadratic_trainable.train(state, hyperparameters, key, steps)
    below = metrics["loss"] < 0.5 * metrics["loss"][0]  # the steps past half the first loss
    return state, {"loss": metrics["loss"], "steps": state["steps"], "below": below}

  def evaluate(state):
    return {"steps": state["steps"], "done": state["steps"] >= 10}

  trainable = problems.Trainable("counted", quadratic_trainable.init, train, evaluate=evaluate)
  config = {**BASE, "problem": trainable, "hyperparameters": {"learning_rate": [0.5]}}
  result = sweep.run(config, quiet=True)
  curves = result.curves
  assert list(curves["train_steps"]) == [5, 10] and list(curves["val_steps"]) == [5, 10]
  assert list(curves["val_done"]) == [0, 1] and result.summary["val_done"].item() == 1
  # lr = 1/2 quarters the loss each step: within an interval, steps 2 to 5 are below half.
  assert list(curves["train_below"]) == [np.float32(0.8)] * 2  # the float32 mean of 4 of 5


_NAMES = st.text(st.sampled_from("ab_/ .-:"), min_size=1, max_size=4)


_NESTED = st.recursive(
  st.floats(allow_nan=False, width=32),
  lambda inner: st.dictionaries(_NAMES, inner, min_size=1, max_size=3),
  max_leaves=8,
)


def _paths(tree, prefix=()):
  if not isinstance(tree, dict):
    return [(prefix, tree)]
  return [path for key, value in tree.items() for path in _paths(value, (*prefix, key))]


@hypothesis.given(st.dictionaries(_NAMES, _NESTED, min_size=1, max_size=3))
def test_nested_metrics_are_named_by_their_paths_or_refused(metrics):
  """Every value under its path joined by ``/``; two paths that join alike are refused, never
  one silently dropped."""
  paths = _paths(metrics)
  names = ["/".join(path) for path, _ in paths]
  if len(set(names)) < len(names):
    with pytest.raises(TypeError, match="two metrics are named"):
      named_metrics(metrics)
  else:
    assert named_metrics(metrics) == {"/".join(path): value for path, value in paths}


def test_the_check_is_traced_again_under_x64():
  """Traced once per (names, steps) and x64 mode: a float64 program is another program."""
  trainable = problems.Trainable("float64", _init64, quadratic_trainable.train)
  assert trainable.traced(("learning_rate",), 5).metrics["loss"].dtype == jnp.float32
  with jax.enable_x64(True):
    assert trainable.traced(("learning_rate",), 5).metrics["loss"].dtype == jnp.float64
