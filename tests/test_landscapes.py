"""The 2-D landscapes: their maths (gradients, minima, windows, start grids, reach
fractions), and run_on_landscape.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import _tolerances
from _landscapes import heavy_ball, hessian64
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
      np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6 * (1 + np.abs(grad).max()))


@pytest.mark.parametrize("name", NAMES)
def test_minima_are_stationary_with_positive_definite_hessian(name):
  landscape = LANDSCAPES[name]
  with jax.enable_x64(True):
    for point in landscape.minima:
      grad = np.asarray(landscape.grad(jnp.asarray(point, jnp.float64)))
      assert np.abs(grad).max() < 1e-9, (point, grad)
      eigenvalues = np.linalg.eigvalsh(hessian64(landscape, point))
      assert eigenvalues.min() > 1e-3, (point, eigenvalues)
    for point in landscape.saddle_points:
      grad = np.asarray(landscape.grad(jnp.asarray(point, jnp.float64)))
      assert np.abs(grad).max() < 1e-9, (point, grad)
      eigenvalues = np.linalg.eigvalsh(hessian64(landscape, point))
      assert eigenvalues.min() < 0 < eigenvalues.max(), (point, eigenvalues)
    global_values = [float(landscape.value(p)) for p in landscape.global_minima]
    np.testing.assert_allclose(global_values, global_values[0], atol=1e-12)
    for point in landscape.local_minima:
      assert float(landscape.value(point)) > global_values[0]


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
  # ∂f/∂x = 4x³ − 4x + 1/2: the listed points are its outer roots.
  landscape = LANDSCAPES["tilted_double_well"]
  roots = np.sort(np.roots([4.0, 0.0, -4.0, 0.5]).real)
  np.testing.assert_allclose(landscape.global_minima[0], [roots[0], 0.0], atol=1e-12)
  np.testing.assert_allclose(landscape.local_minima[0], [roots[2], 0.0], atol=1e-12)
  np.testing.assert_allclose(landscape.saddle_points[0], [roots[1], 0.0], atol=1e-12)


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
  np.testing.assert_allclose(grid[:3], [[1.0, -1.5], [2.0, -1.5], [3.0, -1.5]])
  np.testing.assert_allclose(grid[::3, 1], [-1.5, 0.0, 1.5])
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
