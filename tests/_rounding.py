"""A first-order bound on the rounding error of any float32 JAX function (running error analysis).

Two programs that compute one function (vmapped and alone, fused one way and
another) differ by rounding alone. Where the function is a whole network's
initialisation and gradient, no closed form bounds that; but the standard
model of floating-point arithmetic does, operation by operation (Higham,
*Accuracy and Stability of Numerical Algorithms*, §2.2 and §3.1): each
operation's result is off by at most ``u`` (half an ulp, relative) times a
magnitude, and an error made in one operation reaches an output through the
derivative of the rest of the computation. To first order in ``u``, the
error of output ``y`` is at most ``Σ_ops Σ_elements |∂y/∂r|·bound(r)``,
summed over every rounded intermediate ``r`` (Wilkinson's running error
analysis, here done by automatic differentiation as in Langlois, *Automatic
linearization of the rounding errors*, 2001).

:func:`rounding_bound` evaluates ``fn``'s jaxpr in float64 with an error
term added to each rounded result, scaled by that operation's bound, and
differentiates the outputs with respect to those terms. Per operation:

* ``add``, ``sub``, ``mul``, ``div``, ``square``, ``sqrt`` and conversions
  to a narrower type are correctly rounded (IEEE 754): ``u·|r|``;
  ``integer_pow`` by repeated products;
* a sum of ``n`` terms in any order (``reduce_sum``, ``dot_general``'s
  contractions, ``scatter-add`` into a slot) is within ``n·u·Σ|terms|``
  (Higham §3.1; blocking, vectorizing and fusing reorder it, never beyond);
* a transcendental function (``exp``, ``log``, ``tanh``, ``logistic``,
  ``rsqrt``, ...) is a polynomial or rational approximation, not correctly
  rounded: :data:`TRANSCENDENTAL_ULPS` ``·u·|r|``; ``pow`` as
  ``exp(y·ln x)`` carries ``ln x``'s error times ``|y·ln x|`` more;
  ``erf_inv`` near ±1 is far less accurate: :data:`ERF_INV_ULPS` for
  ``|x| ≥ ½``. These are XLA's float32 CPU implementations against their
  float64 ones on the same float32 inputs, the worst relative errors in
  ``u`` under SSE4_2, AVX2 and AVX-512 (``tests/fixtures/
  measure_transcendental_ulps.py``): exp 1.4, sin 1.1, log 2.0, logistic
  2.4, rsqrt 2.6, log1p 3.6, tanh 5.7 (4.1 but under SSE4_2), erf 4.9,
  expm1 5.7; erf_inv 4.2 below ½ and 97.5 over every float32 in [½, 1).
  Each limit is at least 1.3× the worst, rounded up to a power of two.
  ``tests/test_rounding.py`` checks them on each run (``isa_sweep.sh``: on
  each instruction set), erf_inv's over every float32 in [½, 1);
* every rounded result may underflow: plus the smallest normal number
  (XLA's CPU code flushes subnormals to zero);
* the rest (comparisons, selections, ``max``, moves of data, integer and
  random-bit operations, bit casts) is exact.

An unlisted primitive with a float result raises: the bound never leaves an
operation out silently. First order: valid while the errors are small
against the values (``u`` times a modest condition number), and where no
rounding flips a comparison (a ``max`` taken between two near-equal values
stays within the bound; a branch taken the other way does not).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np

from momentum_jax.train import compiler_options

TRANSCENDENTAL_ULPS = 8
ERF_INV_ULPS = 128

_ONCE = {"add", "add_any", "sub", "mul", "div", "square", "sqrt"}
_TRANSCENDENTAL = {
  "exp",
  "exp2",
  "log",
  "log1p",
  "expm1",
  "logistic",
  "tanh",
  "erf",
  "erfc",
  "erf_inv",
  "sin",
  "cos",
  "pow",
  "cbrt",
  "atan2",
  "rsqrt",
}
_EXACT = {
  "abs",
  "neg",
  "sign",
  "max",
  "min",
  "select_n",
  "clamp",
  "floor",
  "ceil",
  "round",
  "reduce_max",
  "reduce_min",
  "argmax",
  "argmin",
  "broadcast_in_dim",
  "reshape",
  "squeeze",
  "expand_dims",
  "transpose",
  "slice",
  "dynamic_slice",
  "dynamic_update_slice",
  "concatenate",
  "pad",
  "rev",
  "gather",
  "copy",
  "copy_p",
  "stop_gradient",
  "bitcast_convert_type",
  "iota",
  "is_finite",
  "nextafter",
}
_SUBJAXPRS = {
  "jit",
  "pjit",
  "closed_call",
  "core_call",
  "custom_jvp_call",
  "custom_vjp_call",
  "remat",
}


def _is_float(dtype) -> bool:
  return jnp.issubdtype(dtype, jnp.floating)


def _unit(dtype) -> float:
  """Half an ulp of 1 in ``dtype``: one rounding's largest relative error."""
  return float(jnp.finfo(dtype).eps) / 2


def _wide(value):
  """``value`` in float64 if a float (keys, integers and bools as they are)."""
  dtype = getattr(value, "dtype", None)
  if dtype is not None and _is_float(dtype):
    return jnp.asarray(value, jnp.float64)
  if isinstance(value, float):
    return jnp.float64(value)
  return value


def _wide_params(params: dict) -> dict:
  """An equation's parameters with float32 (or narrower) dtypes widened to float64."""
  out = {}
  for name, value in params.items():
    if isinstance(value, np.dtype) and _is_float(value):
      value = np.dtype(np.float64)
    out[name] = value
  return out


def _magnitude(eqn, inputs, output):
  """The absolute rounding bound of ``eqn``'s result, in units of its dtype's ``u``; None:
  exact."""
  name = eqn.primitive.name
  if not _is_float(eqn.outvars[0].aval.dtype):
    return None  # integers, bools, keys: exact
  if name in _ONCE:
    return jnp.abs(output)
  if name == "erf_inv":
    ulps = jnp.where(jnp.abs(inputs[0]) < 0.5, TRANSCENDENTAL_ULPS, ERF_INV_ULPS)
    return ulps * jnp.abs(output)
  if name == "pow":
    amplified = 1 + jnp.abs(inputs[1] * jnp.log(jnp.abs(inputs[0])))
    return TRANSCENDENTAL_ULPS * amplified * jnp.abs(output)
  if name in _TRANSCENDENTAL:
    return TRANSCENDENTAL_ULPS * jnp.abs(output)
  if name == "integer_pow":
    y = eqn.params["y"]
    return (max(abs(y) - 1, 1) + (y < 0)) * jnp.abs(output)
  if name == "reduce_sum":
    count = math.prod(inputs[0].shape[a] for a in eqn.params["axes"])
    return count * jax.lax.reduce_sum_p.bind(jnp.abs(inputs[0]), **_wide_params(eqn.params))
  if name == "dot_general":
    (contract, _), _ = eqn.params["dimension_numbers"]
    count = math.prod(inputs[0].shape[a] for a in contract)
    params = _wide_params(eqn.params)
    return count * eqn.primitive.bind(jnp.abs(inputs[0]), jnp.abs(inputs[1]), **params)
  if name == "scatter-add":
    # Every update may land in one slot: as many terms as updates, plus the operand.
    count = inputs[2].size + 1
    return count * _scatter_add(eqn, jnp.abs(inputs[0]), inputs[1], jnp.abs(inputs[2]))
  if name == "convert_element_type":
    source, target = eqn.invars[0].aval.dtype, eqn.params["new_dtype"]
    if _is_float(source) and jnp.finfo(source).bits <= jnp.finfo(target).bits:
      return None
    return jnp.abs(output)
  if name in _EXACT:
    return None
  raise NotImplementedError(f"no rounding rule for the primitive {name!r}")


def _subjaxpr(eqn):
  """The closed jaxpr a call-like equation runs, if it is one."""
  if eqn.primitive.name not in _SUBJAXPRS:
    return None
  for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
    if key in eqn.params:
      inner = eqn.params[key]
      return inner if hasattr(inner, "consts") else jax.extend.core.ClosedJaxpr(inner, ())
  raise NotImplementedError(f"no jaxpr found in {eqn.primitive.name!r}")


def _evaluate(jaxpr, consts, args, errors):
  """``jaxpr`` in float64, each rounded result plus ``errors.pop()·u·magnitude``.

  ``errors`` is a :class:`_Errors`: zeros to differentiate at, or a recorder
  of their shapes.
  """
  env = {}

  def read(var):
    return _wide(var.val) if isinstance(var, jax.extend.core.Literal) else env[var]

  for var, value in zip(jaxpr.constvars, consts):
    env[var] = _wide(value)
  for var, value in zip(jaxpr.invars, args):
    env[var] = value
  for eqn in jaxpr.eqns:
    inputs = [read(v) for v in eqn.invars]
    inner = _subjaxpr(eqn)
    if inner is not None:
      outputs = _evaluate(inner.jaxpr, inner.consts, inputs, errors)
    else:
      outputs = _bind(eqn, inputs)
      magnitude = _magnitude(eqn, inputs, outputs[0])
      if magnitude is not None:
        dtype = eqn.outvars[0].aval.dtype
        scale = _unit(dtype) * magnitude + float(jnp.finfo(dtype).tiny)
        outputs = [outputs[0] + errors.take(magnitude.shape) * scale]
    for var, value in zip(eqn.outvars, outputs):
      env[var] = value
  return [read(v) for v in jaxpr.outvars]


def _scatter_add(eqn, operand, indices, updates):
  """``scatter-add`` rebuilt in the operands' dtype (its parameters hold a float32 adder)."""
  p = eqn.params
  return jax.lax.scatter_add(
    operand,
    indices,
    updates,
    p["dimension_numbers"],
    indices_are_sorted=p["indices_are_sorted"],
    unique_indices=p["unique_indices"],
    mode=p["mode"],
  )


def _bind(eqn, inputs) -> list:
  if eqn.primitive.name == "stop_gradient":
    return inputs  # a rounding before it still reaches the outputs: let it be differentiated
  if eqn.primitive.name == "nextafter":
    # Exact and without a derivative rule: its result moves with its first operand.
    x = inputs[0]
    return [
      eqn.primitive.bind(*map(jax.lax.stop_gradient, inputs)) + (x - jax.lax.stop_gradient(x))
    ]
  if eqn.primitive.name == "scatter-add":
    return [_scatter_add(eqn, *inputs)]
  if eqn.primitive.name == "bitcast_convert_type":
    # Bits to a float (a uniform draw): exact, computed at the original dtype.
    inputs = [jnp.asarray(x, v.aval.dtype) for x, v in zip(inputs, eqn.invars)]
    return [_wide(eqn.primitive.bind(*inputs, **eqn.params))]
  outputs = eqn.primitive.bind(*inputs, **_wide_params(eqn.params))
  return list(outputs) if eqn.primitive.multiple_results else [outputs]


class _Errors:
  """The error terms, handed out in the order the operations run: ``values`` to add (zeros,
  to differentiate at), or None to record the shapes they take."""

  def __init__(self, values=None):
    self.values, self.shapes = values, []

  def take(self, shape):
    self.shapes.append(shape)
    if self.values is None:
      return jnp.zeros(shape, jnp.float64)
    return self.values[len(self.shapes) - 1]


def by_path(tree, prefix: str = "") -> dict:
  """A pytree's leaves by ``prefix`` and their ``jax.tree_util.keystr`` path (None leaves left
  out): the form :func:`_tolerances.assert_within` compares."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {prefix + jax.tree_util.keystr(path): leaf for path, leaf in leaves}


def rounding_bound(fn, *args):
  """``fn(*args)`` evaluated in float64, and how far a float32 evaluation may lie from it.

  Returns two pytrees shaped like ``fn``'s output, each float leaf as a
  float64 array (other leaves None): the values, and per element the
  first-order bound ``Σ_ops Σ_elements |∂y/∂r|·u·magnitude(r)`` (the
  module's docstring). ``args`` are taken as exact (keys, integers, float32
  values as given). Two float32 programs computing ``fn`` lie within twice
  the bound of each other. The program is compiled once per ``fn`` and
  argument shapes.
  """
  flat, structure = jax.tree.flatten(args)
  flat = [jnp.asarray(a) for a in flat]  # canonical dtypes (int64 to int32), as fn sees them
  avals = tuple(jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)) for a in flat)
  program, shape = _program(fn, structure, avals)
  with jax.enable_x64(True):
    values, bounds = (np.asarray(x) for x in program([_wide(a) for a in flat]))
  leaves, offset = ([], []), 0
  for leaf in jax.tree.leaves(shape):
    if not _is_float(leaf.dtype):
      leaves[0].append(None), leaves[1].append(None)
      continue
    size = math.prod(leaf.shape)
    for out, flat_out in zip(leaves, (values, bounds)):
      out.append(flat_out[offset : offset + size].reshape(leaf.shape))
    offset += size
  structure = jax.tree.structure(shape)
  return jax.tree.unflatten(structure, leaves[0]), jax.tree.unflatten(structure, leaves[1])


@functools.cache
def _program(fn, structure, avals):
  """The jitted float64 program of :func:`rounding_bound`, and ``fn``'s output shapes.

  Each output's bound is one pullback of a one-hot cotangent, taken one
  output at a time (``lax.map``): vmapping them compiles slower, and the
  functions tests bound are small.
  """
  closed, shape = jax.make_jaxpr(fn, return_shape=True)(*jax.tree.unflatten(structure, avals))
  recorder = _Errors()
  with jax.enable_x64(True):
    wide = [jax.ShapeDtypeStruct(a.shape, _wide_dtype(a.dtype)) for a in avals]
    jax.eval_shape(lambda a: _evaluate(closed.jaxpr, closed.consts, a, recorder), wide)
  shapes = recorder.shapes

  # Compiled as the engine compiles short programs: this one runs once a test.
  @functools.partial(jax.jit, compiler_options=compiler_options(jax.default_backend()))
  def program(wide_args):
    def flat_values(errors):
      flat = _evaluate(closed.jaxpr, closed.consts, wide_args, _Errors(errors))
      return jnp.concatenate([jnp.ravel(y) for y in flat if _is_float(y.dtype)])

    values, pullback = jax.vjp(flat_values, [jnp.zeros(s, jnp.float64) for s in shapes])

    def row(i):
      (cotangents,) = pullback(jax.nn.one_hot(i, values.size, dtype=jnp.float64))
      return sum(jnp.sum(jnp.abs(c)) for c in cotangents)

    return values, jax.lax.map(row, jnp.arange(values.size))

  return program, shape


def _wide_dtype(dtype):
  return np.dtype(np.float64) if _is_float(dtype) else dtype
