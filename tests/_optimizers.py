"""The one registry of optimizers under test, as optax's ``alias_test.py`` keeps one.

Every optimizer test draws its list from here: the hyperparameter tests
(``test_hyperparameters.py``), the properties (``test_properties.py``), the
live optax comparison (``test_optax_equivalence.py``), the torch replay
(``test_torch_reference.py``) and the convergence test
(``test_convergence.py``). Each entry gives:

* ``factory``: the momentum_jax optimizer, static options bound;
* ``config``: a valid value for *every* numeric hyperparameter it takes
  (the new ones included), for the sweep, tracing and state-structure tests;
* ``optax_twin``: the optax optimizer it equals step by step, built from the same
  keyword arguments as ``factory`` (``None`` where optax has none);
* ``torch``: the names of the fixture's torch cases it replays, and
  ``replay``, the optimizer built from a case's recorded hyperparameters;
* ``targets``: per convergence target, the arguments it converges with.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import optax

import momentum_jax as mj

Factory = Callable[..., optax.GradientTransformation]


@dataclasses.dataclass(frozen=True)
class Optimizer:
  factory: Factory
  config: dict[str, float]
  optax_twin: Factory | None = None
  torch: tuple[str, ...] = ()
  replay: Callable[[dict], optax.GradientTransformation] | None = None
  targets: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)


def _decayed(optimizer: Factory) -> Factory:
  """optax's spelling of torch's coupled weight decay: the L2 term, then the optimizer."""

  def build(*, weight_decay=0.0, **kwargs):
    return optax.chain(optax.add_decayed_weights(weight_decay), optimizer(**kwargs))

  return build


def _knobs(h: dict, *names: str) -> dict[str, Any]:
  """The optional arguments a torch case sets: ``weight_decay``, ``maximize``, ``names``."""
  return {k: h[k] for k in ("weight_decay", "maximize", *names) if k in h}


def rmsprop_replay(h, *, learning_rate=None, eps_in_sqrt=False):
  """A torch RMSprop case as momentum_jax's rmsprop (eps outside the root, as torch)."""
  return mj.rmsprop(
    h["lr"] if learning_rate is None else learning_rate,
    h["decay"],
    h["eps"],
    eps_in_sqrt=eps_in_sqrt,
    centered=h.get("centered", False),
    momentum=h.get("momentum", 0.0),
    **_knobs(h),
  )


def _adam_replay(h):
  return mj.adam(h["lr"], h["b1"], h["b2"], h["eps"], **_knobs(h, "amsgrad"))


def _rmsprop_twin(*, learning_rate, decay, eps, momentum, initial_scale, eps_in_sqrt, centered):
  return optax.rmsprop(
    learning_rate,
    decay,
    eps,
    eps_in_sqrt=eps_in_sqrt,
    centered=centered,
    momentum=momentum,
    initial_scale=initial_scale,
  )


HEAVY_BALL = functools.partial(mj.momentum, ema=False)
RMSPROP_CENTERED = functools.partial(mj.rmsprop, centered=True, eps_in_sqrt=False)
AMSGRAD = functools.partial(mj.adam, amsgrad=True)

# Convergence targets' arguments (see test_convergence.py): one learning rate
# per optimizer and target that converges in float32, bfloat16 and complex64.
OPTIMIZERS: dict[str, Optimizer] = {
  "sgd": Optimizer(
    mj.sgd,
    dict(learning_rate=0.1, weight_decay=0.01),
    optax_twin=_decayed(optax.sgd),
    torch=("sgd", "sgd_weight_decay"),
    replay=lambda h: mj.sgd(h["lr"], **_knobs(h)),
    targets={"parabola": dict(learning_rate=0.1), "rosenbrock": dict(learning_rate=1e-3)},
  ),
  "momentum": Optimizer(
    mj.momentum,
    dict(learning_rate=0.1, beta=0.9, weight_decay=0.01),
    optax_twin=_decayed(
      lambda learning_rate, beta: optax.chain(
        optax.ema(beta, debias=False), optax.scale_by_learning_rate(learning_rate)
      )
    ),
    # torch: SGD(lr * (1 - beta), momentum=beta).
    torch=("momentum_ema", "momentum_ema_weight_decay"),
    replay=lambda h: mj.momentum(h["lr"], h["beta"], ema=True, **_knobs(h)),
    targets={
      "parabola": dict(learning_rate=0.1, beta=0.9),
      "rosenbrock": dict(learning_rate=1e-2, beta=0.9),
    },
  ),
  "momentum_heavy_ball": Optimizer(
    HEAVY_BALL,
    dict(learning_rate=0.05, beta=0.8, weight_decay=0.01),
    optax_twin=_decayed(lambda learning_rate, beta: optax.sgd(learning_rate, momentum=beta)),
    torch=("sgd_momentum", "sgd_momentum_weight_decay_maximize", "sgd_momentum_step_lr"),
    replay=lambda h: mj.momentum(
      mj.step_decay(h["lr"], h["gamma"], h["step_size"]) if "gamma" in h else h["lr"],
      h["beta"],
      ema=False,
      **_knobs(h),
    ),
    targets={
      "parabola": dict(learning_rate=0.05, beta=0.9),
      "rosenbrock": dict(learning_rate=1e-3, beta=0.9),
    },
  ),
  "nesterov": Optimizer(
    mj.nesterov,
    dict(learning_rate=0.05, beta=0.9, weight_decay=0.01),
    optax_twin=_decayed(
      lambda learning_rate, beta: optax.sgd(learning_rate, momentum=beta, nesterov=True)
    ),
    torch=("sgd_nesterov", "sgd_nesterov_weight_decay"),
    replay=lambda h: mj.nesterov(h["lr"], h["beta"], **_knobs(h)),
    targets={
      "parabola": dict(learning_rate=0.05, beta=0.9),
      "rosenbrock": dict(learning_rate=5e-4, beta=0.9),
    },
  ),
  "rmsprop": Optimizer(
    mj.rmsprop,
    dict(
      learning_rate=0.01, decay=0.9, eps=1e-6, momentum=0.5, initial_scale=0.1, weight_decay=0.01
    ),
    optax_twin=_decayed(functools.partial(_rmsprop_twin, eps_in_sqrt=True, centered=False)),
    torch=("rmsprop", "rmsprop_weight_decay", "rmsprop_momentum", "rmsprop_momentum_cosine"),
    replay=lambda h: rmsprop_replay(
      h,
      learning_rate=mj.cosine_annealing(h["lr"], h["t_max"], h["lr_min"]) if "t_max" in h else None,
    ),
    targets={"parabola": dict(learning_rate=0.05), "rosenbrock": dict(learning_rate=5e-3)},
  ),
  "rmsprop_centered": Optimizer(
    RMSPROP_CENTERED,
    dict(
      learning_rate=0.01, decay=0.9, eps=1e-3, momentum=0.0, initial_scale=0.0, weight_decay=0.01
    ),
    optax_twin=_decayed(functools.partial(_rmsprop_twin, eps_in_sqrt=False, centered=True)),
    torch=(
      "rmsprop_centered",
      "rmsprop_centered_momentum",
      "rmsprop_centered_momentum_weight_decay_maximize",
    ),
    replay=rmsprop_replay,
    targets={
      "parabola": dict(learning_rate=0.01, momentum=0.5),
      "rosenbrock": dict(learning_rate=5e-3, momentum=0.5),
    },
  ),
  "adagrad": Optimizer(
    mj.adagrad,
    dict(
      learning_rate=0.1, eps=1e-10, initial_accumulator_value=0.1, lr_decay=0.01, weight_decay=0.01
    ),
    torch=(
      "adagrad",
      "adagrad_initial_accumulator",
      "adagrad_lr_decay",
      "adagrad_lr_decay_weight_decay_maximize",
    ),
    replay=lambda h: mj.adagrad(
      h["lr"],
      h["eps"],
      initial_accumulator_value=h["initial_accumulator_value"],
      **_knobs(h, "lr_decay"),
    ),
    targets={"parabola": dict(learning_rate=1.0), "rosenbrock": dict(learning_rate=1.0)},
  ),
  "adam": Optimizer(
    mj.adam,
    dict(learning_rate=0.01, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, weight_decay=0.01),
    optax_twin=_decayed(optax.adam),
    torch=("adam", "adam_low_b1", "adam_weight_decay"),
    replay=_adam_replay,
    targets={"parabola": dict(learning_rate=0.1), "rosenbrock": dict(learning_rate=0.1)},
  ),
  # torch's AMSGrad; optax.amsgrad differs (see scale_by_adam), so no twin.
  "adam_amsgrad": Optimizer(
    AMSGRAD,
    dict(learning_rate=0.01, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, weight_decay=0.01),
    torch=("adam_amsgrad", "adam_amsgrad_weight_decay_maximize"),
    replay=_adam_replay,
    targets={"parabola": dict(learning_rate=0.1), "rosenbrock": dict(learning_rate=0.1)},
  ),
  "adamw": Optimizer(
    mj.adamw,
    dict(learning_rate=0.01, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.1, eps_root=0.0),
    optax_twin=optax.adamw,
    torch=("adamw", "adamw_default_betas", "adamw_amsgrad_maximize"),
    replay=lambda h: mj.adamw(h["lr"], h["b1"], h["b2"], h["eps"], **_knobs(h, "amsgrad")),
    # Without decay: AdamW's minimum is not the target's.
    targets={
      "parabola": dict(learning_rate=0.1, weight_decay=0.0),
      "rosenbrock": dict(learning_rate=0.1, weight_decay=0.0),
    },
  ),
}
NAMES = sorted(OPTIMIZERS)

# optax applies RMSProp's momentum after the learning rate, momentum_jax
# before it: equal in exact arithmetic, and compared in float64 (see
# test_optax_equivalence.py). The others are bit-identical in float32.
REORDERED = {"rmsprop"}
