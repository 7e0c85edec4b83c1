"""Counting a traced function's FLOPs from its jaxpr, loops counted as many times as they run.

What the sweep engine plans a Trainable's programs by (the width vmapped per
device, the compile options: :func:`momentum_jax.train.chosen_compiler_options`).
XLA's own cost analysis counts a loop's body once, whatever its trip count: a
PPO update (epochs × minibatches of a scanned rollout) was counted at 1/17 of
its work, and the engine compiled for seconds of training what trained for
minutes. Here a ``scan`` multiplies its body by its length; a ``while`` (trip
count unknown until it runs) counts its body once, a ``cond`` its costliest
branch. Matrix products and convolutions count two FLOPs a multiply-add, any
other operation one per output element: an estimate, not a measurement.

A :class:`~momentum_jax.problems.Problem`'s step is estimated from its
model's parameter count instead (:func:`model_flops_per_step`), without
tracing it.
"""

from __future__ import annotations

import math
from typing import Any

import jax
from flax import nnx
from jax.extend import core as jax_core

from momentum_jax.problems import Problem
from momentum_jax.train._config import TrainConfig


def _size(var: Any) -> int:
  return math.prod(getattr(getattr(var, "aval", None), "shape", ()))


def _sub_jaxprs(params: dict[str, Any]) -> list[Any]:
  found = []
  for value in params.values():
    for item in value if isinstance(value, (tuple, list)) else (value,):
      if isinstance(item, jax_core.ClosedJaxpr):
        found.append(item.jaxpr)
      elif isinstance(item, jax_core.Jaxpr):
        found.append(item)
  return found


def _equation(eqn: Any) -> float:
  name, params = eqn.primitive.name, eqn.params
  if name == "dot_general":
    (contracting, _), _ = params["dimension_numbers"]
    shape = eqn.invars[0].aval.shape
    return 2.0 * _size(eqn.outvars[0]) * math.prod(shape[d] for d in contracting)
  if name == "conv_general_dilated":
    kernel = eqn.invars[1].aval.shape
    return 2.0 * _size(eqn.outvars[0]) * math.prod(kernel) / max(1, kernel[-1])
  inner = [jaxpr_flops(j) for j in _sub_jaxprs(params)]
  if name == "scan":
    return params["length"] * sum(inner)
  if name == "cond":
    return max(inner, default=0.0)
  if inner:  # a call (pjit, remat, custom derivatives, while): its bodies once
    return sum(inner)
  return float(sum(_size(v) for v in eqn.outvars))


def jaxpr_flops(jaxpr: Any) -> float:
  """The FLOPs of ``jaxpr`` (a ``Jaxpr`` or ``ClosedJaxpr``), loops counted by trip count."""
  jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
  return sum(_equation(eqn) for eqn in jaxpr.eqns)


def flops(function: Any, *args: Any) -> float:
  """The FLOPs of ``function(*args)`` (abstract arguments welcome), traced, not compiled."""
  return jaxpr_flops(jax.make_jaxpr(function)(*args))


def num_params(problem: Problem) -> int:
  """The parameters of ``problem``'s model, counted on its abstract model (nothing allocated)."""
  abstract = problem.abstract_model()
  return sum(x.size for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))


def examples_per_step(problem: Problem, config: TrainConfig) -> int:
  """The examples one training step of ``problem`` takes: a streamed batch, a minibatch, or
  the whole training set."""
  if problem.is_stream:
    return problem.data.batch_size
  return config.batch_size or problem.data.num_train


def model_flops_per_step(problem: Problem, config: TrainConfig) -> int:
  """Estimated FLOPs of one training step of ``problem``'s model: ``6 · params · examples``.

  A dense layer's forward pass does ``2 · in · out`` FLOPs per example and its
  backward pass twice that. A convolution reuses its weights at every
  position, so for a CNN this undercounts.
  """
  return 6 * num_params(problem) * examples_per_step(problem, config)
