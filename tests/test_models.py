"""Tests for momentum_jax.models: shapes, init, BatchNorm modes, vmap."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from _tolerances import U32
from momentum_jax.models import CNN
from momentum_jax.models import MLP
from momentum_jax.models import LinearRegression
from momentum_jax.models import create_model
from momentum_jax.models import layer_kernel_paths


# On CPU these tests' cost is compilation, chiefly of the random initialisers,
# which jax compiles once per kernel shape. So the tests share a few layer
# shapes, draw inputs with NumPy, and check output shapes with jax.eval_shape,
# which traces a model without compiling it.
IN_FEATURES, WIDTH, CLASSES = 8, 8, 4
DIGITS = (8, 8, 1)


def _normal(shape, seed=0):
  return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def _mlp(rng=0, **options):
  return MLP(IN_FEATURES, [WIDTH, WIDTH], CLASSES, rngs=nnx.Rngs(rng), **options)


def _digits_cnn(seed=0, **options):
  return CNN(DIGITS, CLASSES, channels=(4, 8), dense=16, rngs=nnx.Rngs(seed), **options)


def _flat_params(model):
  return dict(nnx.to_flat_state(nnx.state(model, nnx.Param)))


def _output_shape(build, input_shape):
  """Shape of ``build()(x)`` for an input of ``input_shape``, traced only."""
  x = jax.ShapeDtypeStruct(input_shape, jnp.float32)
  return jax.eval_shape(lambda x: build()(x), x).shape


# ---------------------------------------------------------------- shapes


def test_linear_regression_output_matches_targets_shape():
  build = lambda: LinearRegression(IN_FEATURES, rngs=nnx.Rngs(0))
  assert _output_shape(build, (7, IN_FEATURES)) == (7,)


@pytest.mark.parametrize(
  "options",
  [
    dict(),
    dict(activation="sigmoid", batch_norm=True),
    dict(activation="tanh", residual=True, init="naive"),
  ],
  ids=["plain", "batch_norm", "residual"],
)
def test_mlp_returns_logits(options):
  build = lambda: _mlp(**options)
  assert _output_shape(build, (6, IN_FEATURES)) == (6, CLASSES)


def test_mlp_without_hidden_layers_is_a_linear_classifier():
  build = lambda: MLP(IN_FEATURES, [], CLASSES, rngs=nnx.Rngs(0))
  assert _output_shape(build, (6, IN_FEATURES)) == (6, CLASSES)


@pytest.mark.parametrize(
  "build, input_shape, output_shape",
  [
    (lambda: CNN(rngs=nnx.Rngs(0)), (2, 32, 32, 3), (2, 10)),
    (lambda: CNN(batch_norm=True, rngs=nnx.Rngs(0)), (2, 32, 32, 3), (2, 10)),
    (lambda: CNN(DIGITS, rngs=nnx.Rngs(0)), (2, *DIGITS), (2, 10)),
    (lambda: _digits_cnn(batch_norm=True), (2, *DIGITS), (2, CLASSES)),
    # Three stages pool 8x8 down to 1x1.
    (lambda: CNN(DIGITS, 3, channels=(4, 8, 8), rngs=nnx.Rngs(0)), (2, *DIGITS), (2, 3)),
  ],
  ids=["cifar", "cifar_batch_norm", "digits", "digits_small", "to_1x1"],
)
def test_cnn_returns_logits(build, input_shape, output_shape):
  assert _output_shape(build, input_shape) == output_shape


def test_cnn_runs_on_digits():
  logits = _digits_cnn()(_normal((2, *DIGITS)))
  assert logits.shape == (2, CLASSES)
  assert np.all(np.isfinite(logits))


def test_layer_kernel_paths_run_input_to_output():
  model = _mlp(batch_norm=True)
  params = _flat_params(model)
  shapes = [params[p].shape for p in layer_kernel_paths(model)]
  assert shapes == [(IN_FEATURES, WIDTH), (WIDTH, WIDTH), (WIDTH, CLASSES)]
  cnn = _digits_cnn()
  params = _flat_params(cnn)
  shapes = [params[p].shape for p in layer_kernel_paths(cnn)]
  assert shapes == [(3, 3, 1, 4), (3, 3, 4, 8), (2 * 2 * 8, 16), (16, CLASSES)]


# ---------------------------------------------------------- initialisation

FAN_IN, FAN_OUT = 64, 256


@pytest.mark.parametrize(
  "init, expected_std",
  [
    ("he_normal", math.sqrt(2 / FAN_IN)),
    ("lecun_normal", math.sqrt(1 / FAN_IN)),
    ("xavier_uniform", math.sqrt(2 / (FAN_IN + FAN_OUT))),
    ("naive", 0.01),
  ],
)
def test_init_gives_the_closed_form_std(init, expected_std):
  model = MLP(FAN_IN, [], FAN_OUT, init=init, rngs=nnx.Rngs(0))
  kernel = np.asarray(model.layers[0].kernel[...])
  # The sample std of n draws of kurtosis κ has relative standard deviation
  # √((κ − 1)/(4n)) (delta method); 6 of them: a correct init fails with
  # probability < 2e-9 (its bias, ~(κ − 1)/(8n), and float32 sums are below
  # 1e-4 of it). κ: uniform 9/5, normal 3, flax's N(0, 1) truncated at ±a = 2:
  # m4/m2² with m2 = 1 − 2aφ(a)/Z, m4 = 3·m2 − 2a³φ(a)/Z (2.37).
  phi, z = math.exp(-2) / math.sqrt(2 * math.pi), math.erf(math.sqrt(2))
  m2 = 1 - 4 * phi / z
  kurtosis = {"xavier_uniform": 9 / 5, "naive": 3.0}.get(init, (3 * m2 - 16 * phi / z) / m2**2)
  sigma = math.sqrt((kurtosis - 1) / (4 * kernel.size))
  assert abs(kernel.std() / expected_std - 1) <= 6 * sigma
  assert abs(kernel.mean()) < 4 * expected_std / math.sqrt(kernel.size)
  assert not np.any(model.layers[0].bias[...])


def test_xavier_uniform_stays_within_its_bound():
  model = MLP(FAN_IN, [], FAN_OUT, init="xavier_uniform", rngs=nnx.Rngs(0))
  bound = math.sqrt(6 / (FAN_IN + FAN_OUT))
  assert np.abs(np.asarray(model.layers[0].kernel[...])).max() <= bound


# -------------------------------------------------------------- BatchNorm

EPSILON = 1e-5  # nnx.BatchNorm's default
MOMENTUM = 0.99


def _bn_mlp():
  return MLP(IN_FEATURES, [WIDTH], CLASSES, activation="tanh", batch_norm=True, rngs=nnx.Rngs(0))


def _by_hand(model, x, mean, var):
  first, last = model.layers
  norm = model.norms[0]
  z = x @ first.kernel[...] + first.bias[...]
  z = (z - mean) / jnp.sqrt(var + EPSILON) * norm.scale[...] + norm.bias[...]
  return jnp.tanh(z) @ last.kernel[...] + last.bias[...]


def _by_hand_bound(model, x, stats=None):
  """How far a float32 evaluation of :func:`_by_hand` may lie from exact, per output, with
  its batch statistics' bounds (``stats``: given ones, exact).

  Higham-style, each sum of n terms off by n·U32 of its terms' sizes: the
  first layer's; the mean's and E[z²]'s over the batch, whose difference
  (flax's variance; the two-pass one rounds less) adds twice the mean's
  error times |mean|; the normalisation (difference, + eps, root, division:
  6·U32 relative) with the statistics' errors over σ and ½·Δvar/var; scale
  and shift; tanh (1-Lipschitz, 2 ulps); the last layer's sums.
  """
  f64 = lambda a: np.asarray(a, np.float64)  # noqa: E731
  first, last = model.layers
  k1, b1, k2, b2 = (f64(a[...]) for a in (first.kernel, first.bias, last.kernel, last.bias))
  gamma, beta = f64(model.norms[0].scale[...]), f64(model.norms[0].bias[...])
  x, n = f64(x), len(x)
  z = x @ k1 + b1
  e_z = (x.shape[1] + 1) * U32 * (np.abs(x) @ np.abs(k1) + np.abs(b1))
  if stats is None:
    m, v = z.mean(0), z.var(0)
    e_m = e_z.mean(0) + n * U32 * np.abs(z).mean(0)
    e_v = 2 * (np.abs(z) * e_z).mean(0) + 2 * np.abs(m) * e_m
    e_v = e_v + (n + 3) * U32 * ((z**2).mean(0) + m**2)
  else:
    (m, v), e_m, e_v = map(f64, stats), 0.0, 0.0
  normed = (z - m) / np.sqrt(v + EPSILON)
  e_normed = (e_z + e_m) / np.sqrt(v + EPSILON) + np.abs(normed) * (
    e_v / (2 * (v + EPSILON)) + 6 * U32
  )
  h = np.tanh(gamma * normed + beta)
  e_h = np.abs(gamma) * e_normed + 2 * U32 * (np.abs(gamma * normed) + np.abs(beta) + 2 * np.abs(h))
  e_out = e_h @ np.abs(k2) + (len(k2) + 1) * U32 * (np.abs(h) @ np.abs(k2) + np.abs(b2))
  return e_out, e_m, e_v


def _assert_within(actual, expected, bound) -> None:
  error = np.abs(np.asarray(actual, np.float64) - np.asarray(expected, np.float64))
  assert (error <= bound).all(), f"|error| up to {(error / bound).max():.3g}x the bound"


def test_batch_norm_train_mode_uses_and_records_batch_statistics():
  model = _bn_mlp()
  x = 3.0 + _normal((32, IN_FEATURES))
  z = model.layers[0](x)
  batch_mean, batch_var = z.mean(axis=0), z.var(axis=0)
  expected = _by_hand(model, x, batch_mean, batch_var)
  # Each side (flax's, the hand formula's) within its bound of exact: twice
  # that apart; the running statistics add the momentum's roundings (its
  # float32 value, the product, the sum) on either side.
  e_out, e_m, e_v = _by_hand_bound(model, x)
  _assert_within(model(x), expected, 2 * e_out)
  norm, rate = model.norms[0], 1 - MOMENTUM
  m, v = np.asarray(batch_mean, np.float64), np.asarray(batch_var, np.float64)
  _assert_within(norm.mean[...], rate * m, rate * (2 * e_m + 4 * U32 * np.abs(m)))
  _assert_within(
    norm.var[...], MOMENTUM + rate * v, 2 * rate * e_v + 6 * U32 * (MOMENTUM + rate * np.abs(v))
  )


def _check_eval_mode(model, eval_model, x):
  before = jax.tree.map(np.array, nnx.state(model, nnx.BatchStat))
  norm = model.norms[0]
  expected = _by_hand(model, x, norm.mean[...], norm.var[...])
  # Both sides use the stored statistics: twice one side's bound apart.
  bound, _, _ = _by_hand_bound(model, x, (norm.mean[...], norm.var[...]))
  _assert_within(eval_model(x), expected, 2 * bound)
  after = nnx.state(model, nnx.BatchStat)
  jax.tree.map(np.testing.assert_array_equal, after, before)


def test_batch_norm_eval_mode_uses_running_statistics_unchanged():
  model = _bn_mlp()
  x = 3.0 + _normal((32, IN_FEATURES))
  model(x)  # moves the running statistics away from their (0, 1) start
  model.eval()
  assert model.norms[0].use_running_average
  _check_eval_mode(model, model, x)
  model.train()
  assert not model.norms[0].use_running_average


def test_batch_norm_view_gives_eval_mode_and_leaves_model_training():
  model = _bn_mlp()
  x = 3.0 + _normal((32, IN_FEATURES))
  model(x)
  _check_eval_mode(model, nnx.view(model, use_running_average=True), x)
  assert not model.norms[0].use_running_average


def test_batch_norm_eval_graphdef_merges_with_training_state():
  model = _bn_mlp()
  x = 3.0 + _normal((32, IN_FEATURES))
  model(x)
  _, params, rest = nnx.split(model, nnx.Param, ...)
  eval_graphdef = nnx.graphdef(nnx.view(model, use_running_average=True))
  _check_eval_mode(model, nnx.merge(eval_graphdef, params, rest), x)


def test_cnn_batch_norm_updates_per_channel_statistics():
  model = _digits_cnn(batch_norm=True)
  model(1.0 + _normal((2, *DIGITS)))
  assert model.norms[0].mean.shape == (4,)
  assert np.all(np.asarray(model.norms[0].mean[...]) != 0)


# ------------------------------------------------------------ determinism


@pytest.mark.parametrize(
  "name, options",
  [
    ("linear", dict(in_features=IN_FEATURES)),
    ("mlp", dict(in_features=IN_FEATURES, hidden=[WIDTH], out_features=CLASSES, batch_norm=True)),
    ("cnn", dict(in_shape=DIGITS, num_classes=CLASSES, channels=(4, 8), dense=16)),
  ],
)
def test_same_seed_same_params(name, options):
  model = create_model(name, rngs=nnx.Rngs(7), **options)
  first = _flat_params(model)
  again = _flat_params(create_model(name, rngs=nnx.Rngs(7), **options))
  other = _flat_params(create_model(name, rngs=nnx.Rngs(8), **options))
  assert first.keys() == again.keys() == other.keys()
  for path in first:
    np.testing.assert_array_equal(first[path][...], again[path][...])
  kernel = layer_kernel_paths(model)[0]
  assert not np.array_equal(first[kernel][...], other[kernel][...])


# ------------------------------------------------------------ bad arguments


@pytest.mark.parametrize(
  "make, error, message",
  [
    (
      lambda r: MLP(4, [8], 2, activation="rleu", rngs=r),
      ValueError,
      r"activation must be one of 'relu', 'sigmoid', 'tanh', got 'rleu'; "
      r"did you mean 'relu'\?",
    ),
    (
      lambda r: MLP(4, [8], 2, init="xavier", rngs=r),
      ValueError,
      r"init must be one of .*did you mean 'xavier_uniform'\?",
    ),
    (
      lambda r: MLP(4, [8, 16], 2, residual=True, rngs=r),
      ValueError,
      r"residual=True needs equal hidden widths.*hidden=\[8, 8\]",
    ),
    (lambda r: MLP(4, 8, 2, rngs=r), ValueError, r"hidden must be a sequence of positive ints"),
    (lambda r: MLP(4, [8, 0], 2, rngs=r), ValueError, r"hidden must hold positive ints"),
    (lambda r: MLP(0, [8], 2, rngs=r), ValueError, r"in_features must be a positive int, got 0"),
    (
      lambda r: CNN((8, 8, 1), channels=(4, 4, 4, 4), rngs=r),
      ValueError,
      r"8x8 image allows at most 3; pass at most 3 channel counts",
    ),
    (lambda r: CNN((8, 8), rngs=r), ValueError, r"in_shape must be \(height, width, channels\)"),
    (
      lambda r: create_model("mpl", rngs=r),
      ValueError,
      r"name must be one of 'linear', 'mlp', 'cnn', got 'mpl'; "
      r"did you mean 'mlp'\?",
    ),
    (
      lambda r: create_model("mlp", in_features=2, hiden=[4], out_features=2, rngs=r),
      TypeError,
      r"unknown option 'hiden' for model 'mlp'; did you mean 'hidden'\?",
    ),
    (
      lambda r: create_model("mlp", in_features=2, rngs=r),
      TypeError,
      r"model 'mlp' needs option\(s\) hidden, out_features",
    ),
  ],
  ids=[
    "activation",
    "init",
    "residual_widths",
    "hidden_not_sequence",
    "hidden_zero",
    "in_features",
    "cnn_too_small",
    "cnn_in_shape",
    "model_name",
    "unknown_option",
    "missing_option",
  ],
)
def test_bad_arguments_say_what_to_do(make, error, message):
  with pytest.raises(error, match=message):
    make(nnx.Rngs(0))


@pytest.mark.parametrize(
  "build, input_shape, message",
  [
    (_mlp, (3, 5), r"MLP expects inputs of shape \(batch, 8\), got \(3, 5\)"),
    (_digits_cnn, (3, 8, 8), r"CNN expects inputs of shape \(batch, 8, 8, 1\), got \(3, 8, 8\)"),
    (
      lambda: LinearRegression(2, rngs=nnx.Rngs(0)),
      (3,),
      r"LinearRegression expects inputs of shape \(batch, 2\), got \(3,\)",
    ),
  ],
  ids=["mlp", "cnn", "linear"],
)
def test_wrong_input_shape_names_the_expected_one(build, input_shape, message):
  with pytest.raises(ValueError, match=message):
    _output_shape(build, input_shape)


def test_layer_kernel_paths_rejects_other_modules():
  with pytest.raises(TypeError, match="nnx.List named 'layers'"):
    layer_kernel_paths(nnx.Linear(2, 3, rngs=nnx.Rngs(0)))


def test_a_problems_abstract_model_is_traced_once_and_handed_out_fresh():
  from momentum_jax import data, problems

  built = []

  def make_model(rngs):
    built.append(1)
    return nnx.Linear(3, 2, rngs=rngs)

  toy = data.Dataset("toy", np.ones((4, 3)), np.zeros((4, 2)))
  problem = problems.Problem("toy", toy, make_model)
  first, second = problem.abstract_model(), problem.abstract_model()
  assert len(built) == 1 and first is not second
  assert first.kernel.value.shape == (3, 2) and isinstance(first.kernel.value, jax.ShapeDtypeStruct)
  first.kernel.value = None  # a caller's change stays its own
  assert problem.abstract_model().kernel.value.shape == (3, 2)
