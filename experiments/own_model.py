"""A model, loss and metric of your own, swept with any optax optimizer (docs/own_model.md)."""

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from momentum_jax import data, problems


class MLP(nnx.Module):
  """Two dense layers with a ReLU between them."""

  def __init__(self, features: int, hidden: int, classes: int, *, rngs: nnx.Rngs):
    self.hidden = nnx.Linear(features, hidden, rngs=rngs)
    self.out = nnx.Linear(hidden, classes, rngs=rngs)

  def __call__(self, x):
    return self.out(nnx.relu(self.hidden(x)))


def smoothed_cross_entropy(model, x, y, smoothing=0.1):
  """Cross-entropy against labels smoothed by ``smoothing``: the batch mean."""
  logits = model(x)
  targets = optax.smooth_labels(jax.nn.one_hot(y, logits.shape[-1]), smoothing)
  return optax.softmax_cross_entropy(logits, targets).mean()


def top2_accuracy(model, x, y):
  """The share of examples whose label is among the two largest logits."""
  _, top2 = jax.lax.top_k(model(x), 2)
  return {"top2_accuracy": jnp.mean(jnp.any(top2 == y[:, None], axis=-1))}


def make_problem(hidden=64, seed=0, stream=None):
  """The MLP on scikit-learn's digits (split by ``seed``), or on a ``data.Stream`` of them."""
  digits = stream if stream is not None else data.load_digits(seed=seed)
  return problems.Problem(
    "digits_own_mlp",
    digits,
    lambda rngs: MLP(64, hidden, 10, rngs=rngs),
    loss=smoothed_cross_entropy,
    metrics=top2_accuracy,
  )
