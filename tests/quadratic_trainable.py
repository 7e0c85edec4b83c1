"""Trainables for the tests: gradient descent on a quadratic, written by hand in pure JAX.

``w ← w − lr·w`` from ``w₀ ~ N(0, I₃)``: after ``t`` steps ``w_t = (1 − lr)^t w₀``,
a closed form for every logged value. Named by import path in configs
(``problem: {name: quadratic_trainable:quadratic}``; the tests folder is on the path).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from momentum_jax import problems

DIMENSION = 3


def init(hyperparameters, key):
  return {"w": jax.random.normal(key, (DIMENSION,)), "steps": jnp.zeros((), jnp.int32)}


def train(state, hyperparameters, key, steps):
  del key  # deterministic: full-batch gradient descent
  learning_rate = hyperparameters["learning_rate"]

  def step(state, _):
    w = state["w"]
    return {"w": w - learning_rate * w, "steps": state["steps"] + 1}, 0.5 * jnp.sum(w * w)

  state, losses = jax.lax.scan(step, state, None, length=steps)
  return state, {"loss": losses, "norm": jnp.linalg.norm(state["w"])}


def evaluate(state):
  return {"distance": jnp.linalg.norm(state["w"])}


def weights(state):
  return {"w": state["w"]}


def quadratic(evaluated: bool = True) -> problems.Trainable:
  """The quadratic, with ``evaluate`` (``val_distance``) unless ``evaluated`` is false."""
  return problems.Trainable(
    "quadratic", init, train, evaluate=evaluate if evaluated else None, model=weights
  )


# Bad Trainables, each as a stranger might write one: the message names the field at fault.
def no_loss():
  return problems.Trainable("no_loss", init, lambda s, h, k, n: (s, {"norm": jnp.ones(())}))


def matrix_metric():
  return problems.Trainable(
    "matrix_metric", init, lambda s, h, k, n: (s, {"loss": jnp.ones((2, 2))})
  )


def shape_from_value():
  return problems.Trainable(
    "shape_from_value",
    lambda h, k: jnp.zeros(int(h["learning_rate"] * 10)),
    lambda s, h, k, n: (s, {"loss": jnp.sum(s)}),
  )


_calls = []


def impure():
  """Its step size grows with every trace: a global counter read inside ``train``."""

  def drifting(state, hyperparameters, key, steps):
    _calls.append(1)
    return train(
      state, {"learning_rate": hyperparameters["learning_rate"] * len(_calls)}, key, steps
    )

  return problems.Trainable("impure", init, drifting)


def not_a_trainable():
  return 42


def ignores_steps():
  """One step per call whatever ``steps`` asks: its curves' steps would be ``log_every`` times off."""

  def one_step(state, hyperparameters, key, steps):
    state, metrics = train(state, hyperparameters, key, 1)
    return state, {"loss": metrics["loss"][0]}

  return problems.Trainable("ignores_steps", init, one_step)


def reads_a_default():
  """Reads its learning rate with a default: a misspelt name in the config would go unread."""
  return problems.Trainable(
    "reads_a_default",
    init,
    lambda s, h, k, n: train(s, {"learning_rate": h.get("learning_rate", 0.1)}, k, n),
  )


def keeps_nothing():
  return problems.Trainable("keeps_nothing", init, train, model=lambda state: None)


def text_in_state():
  return problems.Trainable(
    "text_in_state", lambda h, k: {**init(h, k), "name": "quadratic"}, train
  )


def unnamed_metric():
  def named(state, hyperparameters, key, steps):
    state, metrics = train(state, hyperparameters, key, steps)
    return state, {**metrics, "": metrics["norm"]}

  return problems.Trainable("unnamed_metric", init, named)


def returns_the_state_only():
  return problems.Trainable("state_only", init, lambda s, h, k, n: train(s, h, k, n)[0])


def returns_three():
  return problems.Trainable("three", init, lambda s, h, k, n: (*train(s, h, k, n), 0.0))
