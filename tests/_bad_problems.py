"""Problems whose loss or metrics are wrong, each in a way the sweep must refuse before compiling."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from momentum_jax import data, problems


def _tiny(**functions) -> problems.Problem:
  """Three classes of five features: 12 training and 6 validation examples."""
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(18, 5)).astype(np.float32), np.arange(18) % 3
  tiny = data.Dataset("tiny", x[:12], y[:12], x[12:], y[12:], num_classes=3)
  return problems.Problem("tiny", tiny, lambda rngs: nnx.Linear(5, 3, rngs=rngs), **functions)


def vector_loss() -> problems.Problem:
  """The loss of every example, not their mean."""
  return _tiny(loss=lambda model, x, y: jnp.sum(model(x), axis=-1))


def mismatched_loss() -> problems.Problem:
  """Logits of 3 classes against targets of 7: broadcasting fails on the model's output."""
  return _tiny(loss=lambda model, x, y: jnp.mean((model(x) - jnp.ones((len(y), 7))) ** 2))


def list_metrics() -> problems.Problem:
  """Metrics as a list, not a dict."""
  return _tiny(metrics=lambda model, x, y: [jnp.mean(model(x))])


def vector_metrics() -> problems.Problem:
  """A metric that is a vector (the mean logit of each class), not a scalar."""
  return _tiny(metrics=lambda model, x, y: {"mean_logit": jnp.mean(model(x), axis=0)})
