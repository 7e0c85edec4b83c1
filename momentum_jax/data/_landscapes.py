"""2-D loss landscapes, each built to show one classic failure of plain GD.

Each :class:`Landscape` is a differentiable ``f: R² → R`` with its minima known
in closed form, a plotting window, and a starting point from which plain
gradient descent (``mj.sgd``) shows the failure the landscape is named for:

=====================  ====================================================
``tilted_double_well``  GD settles in the shallow well (a local minimum).
``saddle``              GD crawls away from a saddle along a weak
                        negative-curvature direction.
``plateau``             GD crawls over a wide region of tiny gradient.
``narrow_valley``       GD zig-zags across an ill-conditioned valley.
``rosenbrock``          GD creeps along a curved, flat-bottomed valley.
=====================  ====================================================

:func:`~momentum_jax.data._landscape_runs.run_on_landscape` runs any optax
optimizer on a landscape and returns its trajectory, for contour plots and for
the tests that check that momentum relieves each failure.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

Window = tuple[tuple[float, float], tuple[float, float]]


def _points(name: str, points, field: str) -> np.ndarray:
  """``points`` as a read-only float64 array of shape (m, 2)."""
  array = np.array(points, dtype=np.float64)
  if array.size == 0:
    array = array.reshape(0, 2)
  if array.ndim != 2 or array.shape[1] != 2:
    raise ValueError(f"Landscape {name!r}: {field} must have shape (m, 2), got {array.shape}")
  array.flags.writeable = False  # The dataclass is frozen; so is its data.
  return array


@dataclasses.dataclass(frozen=True, eq=False)
class Landscape:
  r"""A 2-D loss ``fn(xy) → scalar`` with its critical points and a plotting window.

  ``fn`` takes a jax array of shape ``(2,)`` and returns a scalar; it is pure
  ``jax.numpy``, so it works under ``jax.grad``, ``jax.hessian``, ``jax.vmap``
  and ``jax.jit``, and it also maps a grid of shape ``(..., 2)`` to values of
  shape ``(...)`` for contour plots.

  Points are NumPy float64 arrays (read-only), exact to the closed form; pass
  them to ``fn`` as they are. Compared by identity (``eq=False``).

  Attributes:
    name: Registry name.
    fn: The loss.
    global_minima: Shape ``(m, 2)``: the points of lowest value.
    local_minima: Shape ``(k, 2)``, possibly ``(0, 2)``: the other minima.
    window: ``((xmin, xmax), (ymin, ymax))`` for contour plots.
    start: Shape ``(2,)``: a start from which plain GD shows the failure.
    description: What the landscape shows, and with which settings.
    saddle_points: Shape ``(s, 2)``, possibly ``(0, 2)``: the saddle points.

  Example:
    >>> import jax.numpy as jnp
    >>> from momentum_jax.data import get_landscape
    >>> rosenbrock = get_landscape("rosenbrock")
    >>> rosenbrock.value(rosenbrock.global_minima[0])
    Array(0., dtype=float32)
    >>> rosenbrock.grad(jnp.array([0.0, 0.0]))
    Array([-2.,  0.], dtype=float32)
  """

  name: str
  fn: Callable[[jax.Array], jax.Array]
  global_minima: np.ndarray
  local_minima: np.ndarray
  window: Window
  start: np.ndarray
  description: str
  saddle_points: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 2)))

  def __post_init__(self):
    for field in ("global_minima", "local_minima", "saddle_points"):
      object.__setattr__(self, field, _points(self.name, getattr(self, field), field))
    if len(self.global_minima) == 0:
      raise ValueError(f"Landscape {self.name!r}: give at least one global minimum")
    start = np.array(self.start, dtype=np.float64)
    if start.shape != (2,):
      raise ValueError(f"Landscape {self.name!r}: start must have shape (2,), got {start.shape}")
    start.flags.writeable = False
    object.__setattr__(self, "start", start)
    (x0, x1), (y0, y1) = self.window
    if not (x0 < x1 and y0 < y1):
      raise ValueError(
        f"Landscape {self.name!r}: window must be ((xmin, xmax),"
        f" (ymin, ymax)) with min < max, got {self.window}"
      )
    object.__setattr__(self, "window", ((float(x0), float(x1)), (float(y0), float(y1))))

  def value(self, xy: jax.typing.ArrayLike) -> jax.Array:
    """``fn(xy)`` for a point ``(2,)`` or a grid ``(..., 2)``."""
    return self.fn(jnp.asarray(xy, dtype=jnp.result_type(float)))

  def grad(self, xy: jax.typing.ArrayLike) -> jax.Array:
    """``∇fn(xy)``, shape ``(2,)``, by ``jax.grad``."""
    return jax.grad(self.fn)(jnp.asarray(xy, dtype=jnp.result_type(float)))

  @property
  def minima(self) -> np.ndarray:
    """All minima, global first: shape ``(m + k, 2)``."""
    return np.concatenate([self.global_minima, self.local_minima])

  def distance_to_global_minimum(self, points: jax.typing.ArrayLike) -> jax.Array:
    """The Euclidean distance of each point ``(..., 2)`` to the nearest global minimum.

    Computed in the points' dtype (float for integers); a point in a local
    minimum stays far from every global one.
    """
    points = jnp.asarray(points)
    if not jnp.issubdtype(points.dtype, jnp.floating):
      points = points.astype(jnp.result_type(float))
    minima = jnp.asarray(self.global_minima, points.dtype)
    return jnp.min(jnp.linalg.norm(points[..., None, :] - minima, axis=-1), axis=-1)

  def start_grid(self, per_side: int) -> np.ndarray:
    """``per_side`` x ``per_side`` starting points evenly inside the window, float32 ``(n, 2)``.

    Along each axis the window is cut into ``per_side + 1`` equal parts and the
    points are the inner cut points (none on the window's edge), x fastest.

    Raises:
      ValueError: If ``per_side`` is not an integer >= 1.
    """
    if isinstance(per_side, bool) or not isinstance(per_side, (int, np.integer)) or per_side < 1:
      raise ValueError(f"per_side must be an integer >= 1, got {per_side!r}")
    (x0, x1), (y0, y1) = self.window
    xs, ys = np.meshgrid(
      np.linspace(x0, x1, per_side + 2)[1:-1], np.linspace(y0, y1, per_side + 2)[1:-1]
    )
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


# --- tilted double well -------------------------------------------------------

_TILT = 0.5


def _tilted_double_well(xy):
  x, y = xy[..., 0], xy[..., 1]
  return (x**2 - 1.0) ** 2 + _TILT * x + 0.5 * y**2


def _double_well_critical_x() -> np.ndarray:
  """The roots of ∂f/∂x = 4x³ − 4x + tilt, in closed form (Viète's cosines).

  For ``t³ + p·t + q = 0`` with three real roots,
  ``t_k = 2√(−p/3)·cos(⅓·arccos(3q/(2p)·√(−3/p)) − 2πk/3)``; here ``p = −1``,
  ``q = tilt/4``. Sorted: global minimum, barrier top, local minimum.
  """
  p, q = -1.0, _TILT / 4.0
  phase = np.arccos(3.0 * q / (2.0 * p) * np.sqrt(-3.0 / p)) / 3.0
  roots = 2.0 * np.sqrt(-p / 3.0) * np.cos(phase - 2.0 * np.pi * np.arange(3) / 3.0)
  return np.sort(roots)


_DW_GLOBAL_X, _DW_BARRIER_X, _DW_LOCAL_X = _double_well_critical_x()

TILTED_DOUBLE_WELL = Landscape(
  name="tilted_double_well",
  fn=_tilted_double_well,
  global_minima=[[_DW_GLOBAL_X, 0.0]],
  local_minima=[[_DW_LOCAL_X, 0.0]],
  saddle_points=[[_DW_BARRIER_X, 0.0]],
  window=((-2.0, 2.0), (-1.5, 1.5)),
  start=(1.7, 1.0),
  description=(
    "f = (x² − 1)² + x/2 + y²/2: two wells, the right one (x ≈ 0.930, "
    "f ≈ 0.483) shallower than the left one (x ≈ −1.057, f ≈ −0.515), "
    "separated by a barrier at x ≈ 0.127 (f ≈ 1.032). From (1.7, 1) plain "
    "GD rolls into the shallow right well and stays there; heavy-ball "
    "momentum (β = 0.9) arrives with enough speed to cross the barrier."
  ),
)


# --- saddle -------------------------------------------------------------------


def _saddle(xy):
  x, y = xy[..., 0], xy[..., 1]
  # x² − y²/20 + y⁴/40 + 1/40: a saddle at the origin whose negative
  # curvature (−1/10) is weak against the steep direction's 2, which is what
  # bounds GD's learning rate.
  return x**2 + (y**2 - 1.0) ** 2 / 40.0


SADDLE = Landscape(
  name="saddle",
  fn=_saddle,
  global_minima=[[0.0, 1.0], [0.0, -1.0]],
  local_minima=[],
  saddle_points=[[0.0, 0.0]],
  window=((-2.0, 2.0), (-1.5, 1.5)),
  start=(1.5, 1e-3),
  description=(
    "f = x² + (y² − 1)²/40: a saddle at (0, 0) with Hessian diag(2, −0.1) "
    "and minima at (0, ±1). The stable manifold is y = 0; from just off "
    "it, GD at learning rate α leaves the saddle by a factor 1 + 0.1α per "
    "step, and α < 1 for stability in x: from y = 10⁻³ at α = 0.5 it "
    "needs ~130 steps to reach |y| = 0.5. Heavy-ball momentum at the same "
    "α grows by the root of z² − (1 + β + 0.1α)z + β (1.2 at α = 0.5, "
    "β = 0.9) and needs ~37. Exactly on y = 0 no first-order method "
    "leaves."
  ),
)


# --- plateau ------------------------------------------------------------------


def _plateau(xy):
  x, y = xy[..., 0], xy[..., 1]
  return 1.0 - jnp.exp(-(x**2 + y**2) / 2.0)


PLATEAU = Landscape(
  name="plateau",
  fn=_plateau,
  global_minima=[[0.0, 0.0]],
  local_minima=[],
  window=((-5.0, 5.0), (-5.0, 5.0)),
  start=(3.2, 2.4),
  description=(
    "f = 1 − exp(−(x² + y²)/2): a Gaussian well in a plain where f ≈ 1. "
    "At radius r the gradient is r·exp(−r²/2) (1.3e-3 at the start, "
    "r = 4). The largest curvature anywhere is 1 (at the minimum), so GD "
    "is stable for α < 2; at α = 1 it needs ~220 steps to reach f < 0.5 "
    "(~120 at α = 1.9). Heavy-ball momentum's velocity builds up to "
    "α/(1 − β) times the gradient there, and it arrives in ~45."
  ),
)


# --- narrow valley ------------------------------------------------------------

VALLEY_CONDITION = 100.0
"""Condition number of :data:`NARROW_VALLEY`'s Hessian, diag(1, 100)."""


def _narrow_valley(xy):
  x, y = xy[..., 0], xy[..., 1]
  return 0.5 * (x**2 + VALLEY_CONDITION * y**2)


NARROW_VALLEY = Landscape(
  name="narrow_valley",
  fn=_narrow_valley,
  global_minima=[[0.0, 0.0]],
  local_minima=[],
  window=((-11.0, 11.0), (-1.5, 1.5)),
  start=(-10.0, 1.0),
  description=(
    "f = (x² + 100·y²)/2: a valley along x, 10 times narrower than long "
    "(condition number 100). GD multiplies y by 1 − 100α each step: near "
    "the stability edge α = 2/100 it flips the sign of y every step with "
    "barely shrinking amplitude (|1 − 100α| = 0.98 at α = 0.0198) and "
    "creeps along x by 1 − α. Heavy-ball momentum at the same α shrinks "
    "both by √β ≈ 0.95 per step (complex roots). Below α·100 = 1 + √β "
    "GD damps y faster; momentum still wins along the valley. Nesterov "
    "(heavy ball) is unstable at this α: its limit is "
    "α·100 < 2(1 + β)/(1 + 2β) ≈ 1.36."
  ),
)


# --- Rosenbrock ---------------------------------------------------------------


def _rosenbrock(xy):
  x, y = xy[..., 0], xy[..., 1]
  return (1.0 - x) ** 2 + 100.0 * (y - x**2) ** 2


ROSENBROCK = Landscape(
  name="rosenbrock",
  fn=_rosenbrock,
  global_minima=[[1.0, 1.0]],
  local_minima=[],
  window=((-2.0, 2.0), (-1.0, 3.0)),
  start=(-1.2, 1.0),
  description=(
    "f = (1 − x)² + 100·(y − x²)² (a = 1, b = 100): a curved valley with a "
    "flat floor. The Hessian at the minimum (1, 1) has eigenvalues ≈ 1002 "
    "and 0.4, so α ≈ 1/1002 and GD creeps along the floor; momentum and "
    "Nesterov at the same α get much closer in the same number of steps."
  ),
)


LANDSCAPES: dict[str, Landscape] = {
  landscape.name: landscape
  for landscape in (TILTED_DOUBLE_WELL, SADDLE, PLATEAU, NARROW_VALLEY, ROSENBROCK)
}
"""All landscapes by name."""


def get_landscape(name: str) -> Landscape:
  """The landscape called ``name``; see :data:`LANDSCAPES`.

  Raises:
    ValueError: Unknown name; the message suggests the closest valid name.
  """
  try:
    return LANDSCAPES[name]
  except (KeyError, TypeError):
    close = difflib.get_close_matches(str(name), LANDSCAPES, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(
      f"unknown landscape {name!r}; {hint}valid names: {', '.join(sorted(LANDSCAPES))}"
    ) from None
