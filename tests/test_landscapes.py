"""The 2-D landscapes: their maths, and the failure of plain GD each one shows.

The failure tests run plain gradient descent (``mj.sgd``) and momentum on the
same landscape, from the landscape's ``start``, at the same learning rate,
derived from the landscape's curvature rather than tuned:

* ``lr = 1/L``, ``L`` the largest Hessian eigenvalue at the global minimum,
  the textbook step of GD on an L-smooth function (saddle, plateau,
  Rosenbrock; on the saddle and the plateau ``L`` is also the largest
  curvature anywhere, so GD is stable everywhere for ``lr < 2/L``).
* The narrow valley uses ``lr = 0.99 · 2/L``, near GD's stability edge, where
  the zig-zag the landscape is built for appears.
* The double well uses a grid ``lr = {0.25, 0.5, 1, 1.5}/L_start`` (curvature
  at the start), to show that the outcome is not a lucky learning rate.

Momentum is the heavy-ball form, ``mj.momentum(lr, 0.9, ema=False)`` (torch's
and optax's SGD with momentum, and the NumPy code of the literature). At the
same learning rate its steady-state step is ``lr/(1 − β)`` times the gradient,
ten times GD's: the "ball gathering speed" the literature describes. The EMA
form (``ema=True``) at the same learning rate has GD's steady-state step and
does *not* relieve the plateau (measured: it leaves the plain after 263 steps,
GD after 223) and fails the double well at three of the four learning rates;
comparing it to GD at the same lr would test smoothing, not acceleration. The
tests therefore use the heavy ball, and say where the EMA form or Nesterov
differ.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import _tolerances
import momentum_jax as mj
from momentum_jax.data import LANDSCAPES
from momentum_jax.data import Landscape
from momentum_jax.data import get_landscape
from momentum_jax.data import run_on_landscape

BETA = 0.9
NAMES = sorted(LANDSCAPES)


def heavy_ball(lr):
  return mj.momentum(lr, BETA, ema=False)


def hessian64(landscape: Landscape, xy) -> np.ndarray:
  with jax.enable_x64(True):
    return np.asarray(jax.hessian(landscape.fn)(jnp.asarray(xy, jnp.float64)))


def largest_curvature(landscape: Landscape, xy) -> float:
  return float(np.linalg.eigvalsh(hessian64(landscape, xy)).max())


def distance_to(points: np.ndarray, trajectory: np.ndarray) -> np.ndarray:
  """Distance of each iterate to the nearest of ``points``: shape (steps + 1,)."""
  gaps = trajectory[..., None, :] - points
  return np.linalg.norm(gaps, axis=-1).min(axis=-1)


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


# --- the failures, and momentum relieving them ------------------------------------


def test_double_well_gd_stays_in_the_shallow_well_momentum_crosses():
  landscape = LANDSCAPES["tilted_double_well"]
  curvature = largest_curvature(landscape, landscape.start)  # 30.68
  lrs = jnp.array([0.25, 0.5, 1.0, 1.5]) / curvature  # 0.0081 … 0.0489
  steps = 500

  def final_points(make_tx):
    paths = jax.vmap(lambda lr: run_on_landscape(landscape, make_tx(lr), None, steps))(lrs)
    return np.asarray(paths[:, -1])

  gd = final_points(mj.sgd)
  momentum = final_points(heavy_ball)
  # Measured: GD ends at (0.9304, ≤0.017) for every lr, the heavy ball at
  # (−1.0575, 0.0000) for every lr. (EMA momentum at these lrs crosses only
  # at the largest; Nesterov at all but the smallest.)
  assert np.all(distance_to(landscape.local_minima, gd) < 0.05), gd
  assert np.all(distance_to(landscape.global_minima, momentum) < 0.05), momentum


def test_saddle_gd_stalls_momentum_escapes():
  landscape = LANDSCAPES["saddle"]
  saddle = landscape.saddle_points
  lr = 1.0 / largest_curvature(landscape, saddle[0])  # L = 2: lr = 0.5
  n = 50
  gd = np.asarray(run_on_landscape(landscape, mj.sgd(lr), None, 4 * n))
  gd_fast = np.asarray(run_on_landscape(landscape, mj.sgd(1.8 * lr), None, n))
  momentum = np.asarray(run_on_landscape(landscape, heavy_ball(lr), None, n))
  # Measured after n = 50 steps from (1.5, 1e-3): GD is 0.0115 from the
  # saddle, GD at 1.8·lr (0.9 of its stability limit) 0.074; the heavy ball
  # is 0.075 from the minimum (0, 1).
  assert distance_to(saddle, gd[n]) < 0.05
  assert np.linalg.norm(landscape.grad(gd[n])) < 1e-2 * np.linalg.norm(
    landscape.grad(landscape.start)
  )
  assert distance_to(saddle, gd_fast[n]) < 0.1
  assert distance_to(landscape.global_minima, momentum[n]) < 0.1
  # A stall, not a trap: the saddle is strict and GD leaves it in the end
  # (0.0011 from the minimum after 4n steps).
  assert distance_to(landscape.global_minima, gd[4 * n]) < 0.01


def test_saddle_escape_speedup_does_not_depend_on_the_offset():
  # Near the saddle y grows geometrically (GD by 1.05 per step at lr 0.5,
  # the heavy ball by ≈ 1.2), so the ratio of escape times is set by the
  # landscape and β, not by how close to the stable manifold y = 0 it starts.
  landscape = LANDSCAPES["saddle"]
  lr = 0.5
  offsets = jnp.array([1e-2, 1e-3, 1e-4, 1e-5])
  starts = jnp.stack([jnp.full_like(offsets, 1.5), offsets], axis=-1)

  def escape_steps(tx):
    paths = jax.vmap(lambda s: run_on_landscape(landscape, tx, s, 400))(starts)
    escaped = np.abs(np.asarray(paths[..., 1])) > 0.5
    assert escaped.any(axis=1).all()
    return escaped.argmax(axis=1)

  gd = escape_steps(mj.sgd(lr))  # measured: 83, 131, 178, 225
  momentum = escape_steps(heavy_ball(lr))  # measured: 24, 37, 50, 62
  assert np.all(gd > 3 * momentum), (gd, momentum)
  # Exactly on the stable manifold, neither leaves.
  on_manifold = run_on_landscape(landscape, heavy_ball(lr), [1.5, 0.0], 400)
  assert float(jnp.abs(on_manifold[:, 1]).max()) == 0.0


def test_plateau_gd_crawls_momentum_leaves():
  landscape = LANDSCAPES["plateau"]
  lr = 1.0 / largest_curvature(landscape, landscape.global_minima[0])  # 1
  n = 100

  def value_after_n(tx):
    path = run_on_landscape(landscape, tx, None, n)
    return float(landscape.value(path[n]))

  gd = value_after_n(mj.sgd(lr))  # measured: 0.99931 (radius 3.82 of 4)
  gd_fast = value_after_n(mj.sgd(1.9 * lr))  # measured: 0.9964 (r = 3.36)
  momentum = value_after_n(heavy_ball(lr))  # measured: 0.0006 (r = 0.035)
  assert gd > 0.99 and gd_fast > 0.99, (gd, gd_fast)
  assert momentum < 0.01, momentum


def test_narrow_valley_gd_zigzags_momentum_damps():
  landscape = LANDSCAPES["narrow_valley"]
  curvature = largest_curvature(landscape, landscape.global_minima[0])  # 100
  lr = 0.99 * 2.0 / curvature  # 0.0198: GD's steep factor is 1 − lr·L = −0.98
  steps = 200
  gd = np.asarray(run_on_landscape(landscape, mj.sgd(lr), None, steps))
  momentum = np.asarray(run_on_landscape(landscape, heavy_ball(lr), None, steps))
  ema = np.asarray(run_on_landscape(landscape, mj.momentum(lr, BETA), None, steps))
  y0 = landscape.start[1]

  def amplitude(path):  # largest |y| over the last 20 steps
    return np.abs(path[-20:, 1]).max()

  def total_variation(path):
    return np.abs(np.diff(path[:, 1])).sum()

  # GD: y flips sign at every step and shrinks only as 0.98^t (closed form).
  y = gd[:, 1]
  assert np.all(np.sign(y[1:]) == -np.sign(y[:-1]))
  # Each float32 step y − lr·(100·y) rounds the gradient (2), lr and the product
  # (2), each relative to lr·L·|y|, and the difference (1) relative to
  # (1 + lr·L)·|y|: against the result's |1 − lr·L|·|y|, a relative error per
  # step carried on (first order) over t steps.
  per_step = (5 * lr * curvature + 1) / abs(1 - lr * curvature) * _tolerances.U32
  closed = np.abs(1 - lr * curvature) ** np.arange(steps + 1) * abs(y0)
  np.testing.assert_array_less(
    np.abs(np.abs(y) - closed), np.arange(1, steps + 2) * per_step * closed
  )
  # Measured: amplitude GD 0.0258, heavy ball 8.6e-5; total variation of y
  # GD 97.3, heavy ball 24.9, EMA 5.7; distance to the minimum GD 0.18,
  # heavy ball 4.4e-5.
  assert amplitude(momentum) < 0.01 * amplitude(gd)
  assert total_variation(momentum) < 0.5 * total_variation(gd)
  assert total_variation(ema) < 0.1 * total_variation(gd)
  assert np.linalg.norm(momentum[-1]) < 0.01 * np.linalg.norm(gd[-1])


def test_narrow_valley_damping_claim_needs_lr_near_the_edge():
  # The honest limit of the claim above: the heavy ball's steep factor is √β
  # (complex roots) whatever the lr, GD's is |1 − lr·L|, so GD damps the steep
  # direction faster once lr·L < 1 + √β ≈ 1.95.
  landscape = LANDSCAPES["narrow_valley"]
  lr = 1.8 / largest_curvature(landscape, landscape.global_minima[0])
  gd = run_on_landscape(landscape, mj.sgd(lr), None, 100)
  momentum = run_on_landscape(landscape, heavy_ball(lr), None, 100)
  assert float(jnp.abs(gd[-1, 1])) < float(jnp.abs(momentum[-20:, 1]).max())


def test_rosenbrock_momentum_and_nesterov_get_closer_than_gd():
  landscape = LANDSCAPES["rosenbrock"]
  minimum = landscape.global_minima
  lr = 1.0 / largest_curvature(landscape, minimum[0])  # 1/1001.6
  steps = 1000

  def final_distance(tx):
    path = np.asarray(run_on_landscape(landscape, tx, None, steps))
    assert np.isfinite(path).all()
    return float(distance_to(minimum, path[-1]))

  gd = final_distance(mj.sgd(lr))  # measured: 1.122
  momentum = final_distance(heavy_ball(lr))  # measured: 0.0113
  nesterov = final_distance(mj.nesterov(lr, BETA))  # measured: 0.0132
  assert momentum < 0.1 * gd, (momentum, gd)
  assert nesterov < 0.1 * gd, (nesterov, gd)
