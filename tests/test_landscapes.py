"""The 2-D landscapes: their maths (gradients, minima, windows, start grids, reach
fractions), and run_on_landscape.
"""

from __future__ import annotations

import fractions
import functools
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import _tolerances
from _landscapes import heavy_ball, hessian64
from _rounding import rounding_bound
import momentum_jax as mj
from momentum_jax.data import LANDSCAPES
from momentum_jax.data import Landscape
from momentum_jax.data import get_landscape
from momentum_jax.data import run_on_landscape


NAMES = sorted(LANDSCAPES)


# --- the landscapes themselves --------------------------------------------------


def test_registry_holds_the_five_landscapes():
  assert set(LANDSCAPES) == {
    "tilted_double_well",
    "saddle",
    "plateau",
    "narrow_valley",
    "rosenbrock",
  }
  for name, landscape in LANDSCAPES.items():
    assert get_landscape(name) is landscape
    assert landscape.name == name
    assert landscape.description


def test_get_landscape_suggests_the_closest_name():
  with pytest.raises(ValueError, match="did you mean 'rosenbrock'") as info:
    get_landscape("rosenbrok")
  for name in NAMES:
    assert name in str(info.value)
  with pytest.raises(ValueError, match="valid names") as info:
    get_landscape("xyzzy")
  assert "did you mean" not in str(info.value)


@functools.cache
def _derivatives(landscape):
  """jax's gradient of ``landscape``, its Hessian's two columns and its third derivative along
  a direction ``e``: built once, so each is compiled once (``rounding_bound`` keys on them)."""
  grad = jax.grad(landscape.fn)
  columns = tuple(
    lambda p, e=e: jax.jvp(grad, (p,), (jnp.asarray(e, p.dtype),))[1] for e in np.eye(2)
  )
  third = jax.jit(jax.grad(jax.grad(jax.grad(lambda t, p, e: landscape.fn(p + t * e)))))
  return grad, columns, third


def _in_float64(fn, point) -> np.ndarray:
  """How far a float64 evaluation of ``fn`` at ``point`` may lie from its exact value.

  ``_rounding.rounding_bound`` counts the float32 program's roundings, each
  ``U32`` times a magnitude; the float64 program rounds the same operations
  by ``U64`` (first order, as ``_tolerances.in_float64``).
  """
  _, bound = rounding_bound(fn, np.asarray(point, np.float32))
  return np.asarray(bound) * (_tolerances.U64 / _tolerances.U32)


def _central_difference_bound(landscape, point, h) -> np.ndarray:
  """How far ``(f(p + h·e) − f(p − h·e))/(2h)`` may lie from ``∂f/∂e`` in float64, per axis.

  Truncation ``h²/6·|f‴|`` along ``e`` somewhere in ``[p − h, p + h]``: the
  largest of jax's third derivative at ``p − h``, ``p`` and ``p + h`` (exact
  for our polynomials of degree ≤ 4, whose f‴ is linear; first order in h
  for the plateau's exponential). Rounding: each value within its float64
  bound (:func:`_in_float64`), so their difference within twice that,
  divided by 2h; ``p ± h·e`` rounded by ``U64·|p|``, which moves each value
  by ``|∂f/∂e|`` times that (``/h`` after the quotient); the quotient's own
  two roundings; and jax's gradient within its float64 bound.
  """
  grad_fn, _, third = _derivatives(landscape)
  grad = np.abs(np.asarray(landscape.grad(point)))
  value = _in_float64(landscape.fn, point)
  bound = []
  for axis, e in enumerate(np.eye(2)):
    f3 = max(abs(float(third(t, point, e))) for t in (-h, 0.0, h))
    rounding = value / h + grad[axis] * _tolerances.U64 * abs(float(point[axis])) / h
    bound.append(h**2 / 6 * f3 + rounding + 2 * _tolerances.U64 * grad[axis])
  return np.asarray(bound) + _in_float64(grad_fn, point)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_central_differences(name):
  landscape = LANDSCAPES[name]
  (x0, x1), (y0, y1) = landscape.window
  rng = np.random.default_rng(0)
  points = np.concatenate(
    [
      landscape.start[None],
      rng.uniform([x0, y0], [x1, y1], size=(5, 2)),
    ]
  )
  h = 1e-6
  with jax.enable_x64(True):
    for point in points:
      point = jnp.asarray(point, jnp.float64)
      grad = np.asarray(landscape.grad(point))
      numeric = np.array(
        [
          (landscape.value(point + h * e) - landscape.value(point - h * e)) / (2 * h)
          for e in jnp.eye(2, dtype=jnp.float64)
        ]
      )
      bound = _central_difference_bound(landscape, point, h)
      assert np.all(np.abs(grad - numeric) <= bound), (point, grad - numeric, bound)


# The tilted double well's critical points come from Viète's formula in float64
# (data._landscapes._double_well_critical_x): about 16 roundings (the roots
# and quotients of p and q, arccos, ⅓, 2π·k/3, the difference, cos, the
# product; arccos and cos, libm's, within an ulp: counted twice), each U64
# relative to an angle of at most π/3 + 4π/3 (moved into x by c·|sin| ≤ c =
# 2/√3) or to |cos| ≤ 1 (times c). The other landscapes' points are exact.
LISTED_POINT_ERROR = 16 * _tolerances.U64 * (2 / np.sqrt(3)) * (1 + 5 * np.pi / 3)


def _stationary_bound(landscape, point) -> float:
  """How large a float64 gradient at a listed critical point may be: its rounding
  (:func:`_in_float64`) and the Hessian times the point's error."""
  hessian = np.linalg.norm(hessian64(landscape, point), 2)
  return np.max(_in_float64(_derivatives(landscape)[0], point)) + hessian * LISTED_POINT_ERROR


def _definite_margin(landscape, point) -> float:
  """How far float64 Hessian eigenvalues may lie from the exact ones: the Hessian's
  rounding (Frobenius norm of :func:`_in_float64`) and LAPACK's symmetric
  eigensolver, backward stable within a few ``U64·‖H‖`` (Higham, §27: 16 here)."""
  columns = [_in_float64(column, point) for column in _derivatives(landscape)[1]]
  rounding = np.linalg.norm(columns)
  return rounding + 16 * _tolerances.U64 * np.linalg.norm(hessian64(landscape, point), 2)


@pytest.mark.parametrize("name", NAMES)
def test_minima_are_stationary_with_positive_definite_hessian(name):
  landscape = LANDSCAPES[name]
  with jax.enable_x64(True):
    for point in np.concatenate([landscape.minima, landscape.saddle_points]):
      grad = np.asarray(landscape.grad(jnp.asarray(point, jnp.float64)))
      assert np.abs(grad).max() <= _stationary_bound(landscape, point), (point, grad)
    for point in landscape.minima:
      eigenvalues = np.linalg.eigvalsh(hessian64(landscape, point))
      assert eigenvalues.min() > _definite_margin(landscape, point), (point, eigenvalues)
    for point in landscape.saddle_points:
      eigenvalues = np.linalg.eigvalsh(hessian64(landscape, point))
      margin = _definite_margin(landscape, point)
      assert eigenvalues.min() < -margin and margin < eigenvalues.max(), (point, eigenvalues)
    # Global minima share one value: each float64 value within its rounding, and
    # the points' own error moves a value by ½·‖H‖·error² at a minimum (below U64).
    values = [float(landscape.value(p)) for p in landscape.global_minima]
    bounds = [float(_in_float64(landscape.fn, p)) for p in landscape.global_minima]
    for value, bound in zip(values, bounds):
      assert abs(value - values[0]) <= bound + bounds[0], (values, bounds)
    for point in landscape.local_minima:
      assert float(landscape.value(point)) > values[0] + bounds[0]


@pytest.mark.parametrize("name", NAMES)
def test_window_contains_start_and_minima(name):
  landscape = LANDSCAPES[name]
  (x0, x1), (y0, y1) = landscape.window
  points = np.concatenate([landscape.start[None], landscape.minima, landscape.saddle_points])
  assert np.all((x0 < points[:, 0]) & (points[:, 0] < x1))
  assert np.all((y0 < points[:, 1]) & (points[:, 1] < y1))


def test_points_have_shape_m_by_2_and_are_read_only():
  landscape = LANDSCAPES["plateau"]
  assert landscape.global_minima.shape == (1, 2)
  assert landscape.local_minima.shape == (0, 2)
  assert landscape.start.shape == (2,)
  with pytest.raises(ValueError):
    landscape.global_minima[0, 0] = 5.0


def test_fn_works_on_grids_and_under_vmap_and_jit():
  landscape = LANDSCAPES["tilted_double_well"]
  (x0, x1), (y0, y1) = landscape.window
  grid = jnp.stack(jnp.meshgrid(jnp.linspace(x0, x1, 7), jnp.linspace(y0, y1, 5)), axis=-1)
  values = landscape.value(grid)
  assert values.shape == (5, 7)
  flat = grid.reshape(-1, 2)
  # (x² − 1)² + 0.5·x + y²/2 in float32 by two programs: 10 roundings (x², − 1
  # and its square, 0.5·x, y², ×0.5, two sums, the constants), each within U32
  # of (x² + 1)² + |x| + y² (a rounding of x² − 1 is doubled by the square).
  x, y = np.asarray(flat, np.float64).T
  bound = 2 * 10 * _tolerances.U32 * ((x**2 + 1) ** 2 + np.abs(x) + y**2)
  _tolerances.assert_within({"": jax.vmap(landscape.fn)(flat)}, {"": values.ravel()}, {"": bound})
  _tolerances.assert_within(
    {"": jax.jit(landscape.fn)(flat[3])}, {"": values.ravel()[3]}, {"": bound[3]}
  )


def test_double_well_minima_solve_the_cubic():
  # ∂f/∂x = 4x³ − 4x + 1/2: the listed points are its three roots, in order
  # (global minimum, barrier, local minimum), on y = 0. The cubic and its
  # derivative evaluated exactly (fractions) at each listed x put the root
  # −p(x)/p'(x) away (Newton's step; its own error is of the order of that
  # squared): within Viète's rounding (LISTED_POINT_ERROR) of the listed x.
  landscape = LANDSCAPES["tilted_double_well"]
  points = [landscape.global_minima[0], landscape.saddle_points[0], landscape.local_minima[0]]
  assert [y for _, y in points] == [0.0, 0.0, 0.0]
  xs = [x for x, _ in points]
  assert xs == sorted(xs)
  for x in map(fractions.Fraction, xs):
    step = (4 * x**3 - 4 * x + fractions.Fraction(1, 2)) / (12 * x**2 - 4)
    assert abs(float(step)) <= LISTED_POINT_ERROR, (float(x), float(step))


def test_landscape_validates_its_points():
  fn = lambda xy: xy[0] ** 2
  window = ((0.0, 1.0), (0.0, 1.0))
  with pytest.raises(ValueError, match="global_minima must have shape"):
    Landscape("bad", fn, [1.0, 2.0, 3.0], [], window, (0.5, 0.5), "")
  with pytest.raises(ValueError, match="start must have shape"):
    Landscape("bad", fn, [[0.0, 0.0]], [], window, (0.5, 0.5, 0.5), "")
  with pytest.raises(ValueError, match="min < max"):
    Landscape("bad", fn, [[0.0, 0.0]], [], ((1.0, 0.0), (0.0, 1.0)), (0.5, 0.5), "")


def test_distance_to_global_minimum_is_to_the_nearest_one():
  saddle = get_landscape("saddle")  # global minima (0, ±1)
  points = np.array([[3.0, 1.0], [0.0, 0.0], [0.0, -4.0], [4.0, 4.0]])
  # Integer differences, squares and sums are exact, and so is √ of 1, 9 and 25.
  np.testing.assert_array_equal(saddle.distance_to_global_minimum(points), [3.0, 1.0, 3.0, 5.0])
  assert saddle.distance_to_global_minimum(points[0]).shape == ()
  assert saddle.distance_to_global_minimum([0, 1]) == 0.0  # integers are made floats
  well = get_landscape("tilted_double_well")  # a local minimum is far from the global one
  (local,) = well.local_minima
  # float32: the two minima rounded (U32 each, magnified by the difference), the
  # difference, its square and the root (half a rounding: ≤ 3 more).
  rounding = _tolerances.cancellation(local[0], well.global_minima[0][0]) + 3 * _tolerances.U32
  assert float(well.distance_to_global_minimum(local)) == pytest.approx(
    np.linalg.norm(local - well.global_minima[0]), rel=rounding
  )


def test_start_grid_cuts_the_window_evenly():
  landscape = Landscape(
    "box",
    lambda xy: xy[0] ** 2 + xy[1] ** 2,
    [[0.0, 0.0]],
    [],
    ((0.0, 4.0), (-3.0, 3.0)),
    (1.0, 1.0),
    "",
  )
  np.testing.assert_array_equal(landscape.start_grid(1), [[2.0, 0.0]])  # the centre
  grid = landscape.start_grid(3)  # x at 1, 2, 3; y at -1.5, 0, 1.5; x fastest
  assert grid.dtype == np.float32 and grid.shape == (9, 2)
  # linspace's start + i·step with steps 1 and 1.5: exact, as is float32 of them.
  np.testing.assert_array_equal(grid[:3], [[1.0, -1.5], [2.0, -1.5], [3.0, -1.5]])
  np.testing.assert_array_equal(grid[::3, 1], [-1.5, 0.0, 1.5])
  for bad in (0, 2.0, True):
    with pytest.raises(ValueError, match="per_side"):
      landscape.start_grid(bad)


def test_reach_fraction_matches_gradient_descent_on_a_bowl():
  # f = |xy|²: GD multiplies the point by (1 − 2·lr) each step, so a start at
  # radius r ends at r·|1 − 2·lr|**steps.
  bowl = Landscape(
    "bowl", lambda xy: jnp.sum(xy**2), [[0.0, 0.0]], [], ((-5.0, 5.0), (-5.0, 5.0)), (1.0, 1.0), ""
  )
  starts = np.array([[r, 0.0] for r in np.arange(1.0, 11.0)])
  lr, steps, tolerance = 0.1, 10, 0.5
  expected = np.mean(np.arange(1.0, 11.0) * (1 - 2 * lr) ** steps < tolerance)
  assert 0 < expected < 1
  # A count over 10 starts, divided once in float32.
  assert float(mj.data.reach_fraction(bowl, mj.sgd(lr), starts, steps, tolerance)) == (
    pytest.approx(expected, rel=_tolerances.U32)
  )
  fractions = jax.vmap(
    lambda rate: mj.data.reach_fraction(bowl, mj.sgd(rate), starts, steps, tolerance)
  )(jnp.array([0.0, 0.5]))
  # No step; one step to the minimum. 0/10 and 10/10 are exact.
  np.testing.assert_array_equal(fractions, [0.0, 1.0])


# --- run_on_landscape -----------------------------------------------------------


def test_run_on_landscape_equals_a_python_loop():
  landscape = LANDSCAPES["rosenbrock"]
  tx = mj.nesterov(1e-3, 0.9)
  trajectory = run_on_landscape(landscape, tx, landscape.start, 7)
  assert trajectory.shape == (8, 2)
  xy = jnp.asarray(landscape.start, jnp.float32)
  state = tx.init(xy)
  expected = [xy]
  for _ in range(7):
    updates, state = tx.update(landscape.grad(xy), state, xy)
    xy = xy + updates
    expected.append(xy)
  # One scanned program against steps run one by one: each within float32
  # rounding of the exact path (``_tolerances.float32_drift_bound``), so twice
  # that apart. (Seen: 0.07 of it.)
  path = np.asarray(trajectory, np.float64)
  np.testing.assert_array_equal(path[0], expected[0])  # the start, as given
  _tolerances.assert_within(
    {"xy": np.stack(expected[1:])},
    {"xy": path[1:]},
    {"xy": 2 * _tolerances.float32_drift_bound(path[0], path[1:])},
  )


def test_run_on_landscape_vmaps_over_hyperparameters():
  lrs = jnp.array([0.1, 0.5])
  batched = jax.vmap(lambda lr: run_on_landscape("saddle", heavy_ball(lr), None, 20))(lrs)
  assert batched.shape == (2, 21, 2)
  for k, lr in enumerate([0.1, 0.5]):
    single = run_on_landscape("saddle", heavy_ball(lr), None, 20)
    # Vmapped and alone: two float32 programs, each within its rounding bound
    # of the exact path. Leaving the saddle grows an early error as it grows y;
    # in 20 steps that stays inside the bound (0.44 of it, against float64).
    path = np.asarray(single, np.float64)
    _tolerances.assert_within(
      {"xy": batched[k][1:]},
      {"xy": path[1:]},
      {"xy": 2 * _tolerances.float32_drift_bound(path[0], path[1:])},
    )


def test_run_on_landscape_rejects_bad_arguments():
  with pytest.raises(ValueError, match="steps must be an integer >= 0"):
    run_on_landscape("saddle", mj.sgd(0.1), None, -1)
  with pytest.raises(ValueError, match=r"start must have shape \(2,\)"):
    run_on_landscape("saddle", mj.sgd(0.1), [1.0, 2.0, 3.0], 5)
  with pytest.raises(ValueError, match="did you mean 'saddle'"):
    run_on_landscape("sadle", mj.sgd(0.1), None, 5)
