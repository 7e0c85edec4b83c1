"""Building a model from its name and options, as a config names it."""

from __future__ import annotations

import inspect
from typing import Any

from flax import nnx

from momentum_jax.models._checks import did_you_mean
from momentum_jax.models._cnn import CNN
from momentum_jax.models._linear import LinearRegression
from momentum_jax.models._mlp import MLP

MODELS: dict[str, type[nnx.Module]] = {
  "linear": LinearRegression,
  "mlp": MLP,
  "cnn": CNN,
}


def create_model(name: str, *, rngs: nnx.Rngs, **options: Any) -> nnx.Module:
  """Builds the model called ``name`` with constructor ``options``.

  Args:
    name: ``"linear"`` (:class:`LinearRegression`), ``"mlp"`` (:class:`MLP`)
      or ``"cnn"`` (:class:`CNN`).
    rngs: random streams for the initial weights.
    **options: the model's constructor arguments by keyword, e.g.
      ``in_features=64, hidden=[64] * 10, out_features=10`` for ``"mlp"``.

  Returns:
    The model, BatchNorm (if any) in training mode.

  Raises:
    ValueError: for an unknown ``name``, naming the closest valid one.
    TypeError: for an unknown or missing option, listing the valid ones.

  Example:
    >>> from flax import nnx
    >>> from momentum_jax.models import create_model
    >>> model = create_model("linear", in_features=8, rngs=nnx.Rngs(0))
    >>> type(model).__name__
    'LinearRegression'
  """
  if name not in MODELS:
    allowed = ", ".join(repr(n) for n in MODELS)
    raise ValueError(f"name must be one of {allowed}, got {name!r}{did_you_mean(name, MODELS)}")
  model_class = MODELS[name]
  parameters = {
    p.name: p
    for p in inspect.signature(model_class.__init__).parameters.values()
    if p.name not in ("self", "rngs")
  }
  unknown = sorted(set(options) - set(parameters))
  if unknown:
    raise TypeError(
      f"unknown option {unknown[0]!r} for model {name!r}"
      f"{did_you_mean(unknown[0], parameters)} (valid options: "
      f"{', '.join(parameters)})"
    )
  missing = [
    n for n, p in parameters.items() if p.default is inspect.Parameter.empty and n not in options
  ]
  if missing:
    raise TypeError(
      f"model {name!r} needs option(s) {', '.join(missing)}; valid options: {', '.join(parameters)}"
    )
  return model_class(**options, rngs=rngs)
