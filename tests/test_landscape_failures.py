"""The failure of plain GD each 2-D landscape shows, and momentum relieving it.

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

import _tolerances
from _landscapes import BETA, heavy_ball, hessian64
import momentum_jax as mj
from momentum_jax.data import LANDSCAPES
from momentum_jax.data import Landscape
from momentum_jax.data import run_on_landscape


def largest_curvature(landscape: Landscape, xy) -> float:
  return float(np.linalg.eigvalsh(hessian64(landscape, xy)).max())


def distance_to(points: np.ndarray, trajectory: np.ndarray) -> np.ndarray:
  """Distance of each iterate to the nearest of ``points``: shape (steps + 1,)."""
  gaps = trajectory[..., None, :] - points
  return np.linalg.norm(gaps, axis=-1).min(axis=-1)


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
