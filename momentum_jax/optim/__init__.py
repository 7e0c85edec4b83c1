"""The optimizer toolkit: optax transformations, ready optimizers and schedules.

Usable on its own with any optax code. Clipping is optax's own
(``optax.clip``, ``optax.clip_by_global_norm``), re-exported here for one import.
"""

from optax import clip, clip_by_global_norm

from momentum_jax.optim._adaptive import AdagradState
from momentum_jax.optim._adaptive import AdamState
from momentum_jax.optim._adaptive import RmsState
from momentum_jax.optim._adaptive import scale_by_adagrad
from momentum_jax.optim._adaptive import scale_by_adam
from momentum_jax.optim._adaptive import scale_by_rms
from momentum_jax.optim._adaptive_aliases import adagrad
from momentum_jax.optim._adaptive_aliases import adam
from momentum_jax.optim._adaptive_aliases import adamw
from momentum_jax.optim._adaptive_aliases import rmsprop
from momentum_jax.optim._aliases import momentum
from momentum_jax.optim._aliases import nesterov
from momentum_jax.optim._aliases import sgd
from momentum_jax.optim._minimize import minimize
from momentum_jax.optim._momentum import MomentumState
from momentum_jax.optim._momentum import impulse_response
from momentum_jax.optim._momentum import scale_by_momentum
from momentum_jax.optim._monitoring import GradNormState
from momentum_jax.optim._monitoring import grad_norms
from momentum_jax.optim._monitoring import named_norms
from momentum_jax.optim._monitoring import record_grad_norms
from momentum_jax.optim._schedules import Schedule
from momentum_jax.optim._schedules import cosine_annealing
from momentum_jax.optim._schedules import exponential_decay
from momentum_jax.optim._schedules import join
from momentum_jax.optim._schedules import linear_warmup
from momentum_jax.optim._schedules import per_epoch
from momentum_jax.optim._schedules import polynomial_decay
from momentum_jax.optim._schedules import step_decay
from momentum_jax.optim._weight_decay import add_decayed_weights

__all__ = [
  "AdagradState",
  "AdamState",
  "GradNormState",
  "MomentumState",
  "RmsState",
  "Schedule",
  "adagrad",
  "adam",
  "adamw",
  "add_decayed_weights",
  "clip",
  "clip_by_global_norm",
  "cosine_annealing",
  "exponential_decay",
  "grad_norms",
  "impulse_response",
  "join",
  "linear_warmup",
  "minimize",
  "momentum",
  "named_norms",
  "nesterov",
  "per_epoch",
  "polynomial_decay",
  "record_grad_norms",
  "rmsprop",
  "scale_by_adagrad",
  "scale_by_adam",
  "scale_by_momentum",
  "scale_by_rms",
  "sgd",
  "step_decay",
]
