"""Models split, vmapped over seeds and merged inside jax transforms: each seed as if alone."""

from __future__ import annotations

import jax
import numpy as np
import optax
from flax import nnx

import _rounding
import _tolerances
from momentum_jax.models import MLP

IN_FEATURES, WIDTH, CLASSES, BATCH = 8, 8, 4, 16
# The vanishing-gradient study's cures: BatchNorm and residuals on a naive
# sigmoid MLP, BatchNorm in training mode.
OPTIONS = dict(activation="sigmoid", init="naive", batch_norm=True, residual=True)


def _mlp(key):
  return MLP(IN_FEATURES, [WIDTH, WIDTH], CLASSES, rngs=nnx.Rngs(key), **OPTIONS)


GRAPHDEF = nnx.graphdef(nnx.eval_shape(lambda: _mlp(0)))
X = 1.0 + np.random.default_rng(1).standard_normal((BATCH, IN_FEATURES), dtype=np.float32)
Y = np.arange(BATCH) % CLASSES


def _loss_and_grad(params, rest):
  """A training-mode evaluation on split state: loss, grads, new BatchStats."""

  def loss_fn(params):
    # copy=True: without it the BatchNorms' statistics belong to the outer
    # trace and writing them raises TraceContextError.
    model = nnx.merge(GRAPHDEF, params, rest, copy=True)
    loss = optax.softmax_cross_entropy_with_integer_labels(model(X), Y)
    return loss.mean(), nnx.state(model, nnx.BatchStat)

  (loss, new_rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
  return loss, grads, new_rest


def _init(key):
  return nnx.split(_mlp(key), nnx.Param, ...)[1:]


def _initial_params(key):
  return _init(key)[0]


def _init_and_grad(key):
  params, rest = _init(key)
  return params, _loss_and_grad(params, rest)


def _assert_within(actual, exact, bound, where):
  by_path = _rounding.by_path
  _tolerances.assert_within(by_path(actual, where), by_path(exact, where), by_path(bound, where))


def test_vmap_init_and_grad_over_seeds_equals_each_seed_alone():
  keys = jax.random.split(jax.random.key(0), 3)
  batched = jax.jit(jax.vmap(_init_and_grad))(keys)
  single = jax.jit(_loss_and_grad)
  for i, key in enumerate(keys):
    params, rest = _init(key)
    programs = {
      "vmapped": jax.tree.map(lambda x: x[i], batched),
      "alone": (params, single(params, rest)),
    }
    # Two float32 programs of one function (vmapped and fused, or eager and
    # alone) round apart. Each program's initial parameters lie within
    # _rounding's first-order bound of the initialisation in float64 from the
    # key; and its loss, gradients and statistics within the bound of the
    # evaluation in float64 at its own parameters (so the initialisation's
    # error, far the larger, does not loosen theirs).
    init_exact, init_bound = _rounding.rounding_bound(_initial_params, key)
    for name, (own_params, evaluated) in programs.items():
      _assert_within(own_params, init_exact, init_bound, f"seed {i}, {name}, params")
      exact, bound = _rounding.rounding_bound(_loss_and_grad, own_params, rest)
      _assert_within(evaluated, exact, bound, f"seed {i}, {name}, ")

  params, (_, _, new_rest) = batched
  first_kernels = params["layers"][0]["kernel"][...]
  assert not np.array_equal(first_kernels[0], first_kernels[1])
  means = [v[...] for p, v in nnx.to_flat_state(new_rest) if p[-1] == "mean"]
  assert len(means) == 2
  assert all(np.all(np.asarray(m) != 0) for m in means)
