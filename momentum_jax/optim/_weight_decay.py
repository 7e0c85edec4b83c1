"""Weight decay and the direction of the step: what happens to a gradient first."""

from __future__ import annotations

import jax
import optax

from momentum_jax.optim import _checks

_NEEDS_PARAMS = "weight_decay needs the parameters: call tx.update(grads, state, params)"


def add_decayed_weights(
  weight_decay: jax.typing.ArrayLike = 0.0,
  *,
  maximize: bool = False,
) -> optax.GradientTransformation:
  r"""Adds ``weight_decay · w`` to the updates, after negating them to maximize.

  For updates ``g`` and parameters ``w``::

    g ← g                 (or −g with maximize=True)
    g ← g + weight_decay · w

  First in a chain, before any scaling, this is the L2 penalty
  ``½ · weight_decay · |w|²`` added to the loss: torch's ``weight_decay``
  (coupled weight decay; torch too negates the gradient for ``maximize``
  first, so the penalty still pulls towards 0). After the scaling and before
  the learning rate, it is the decoupled weight decay of AdamW. Equals
  ``optax.add_decayed_weights(weight_decay)`` when ``maximize=False``.

  A concrete ``weight_decay`` of 0 (a number or an array of zeros) adds
  nothing, as in optax: ``g + 0 · w`` is ``g``, but computing it changes
  which multiplications XLA fuses, and the results would no longer be
  bit-identical to optax's. A traced value, as in a sweep, is always
  computed, so a sweep through 0 is one program; the state is empty either
  way. The parameters are needed unless ``weight_decay`` is a concrete 0.

  Args:
    weight_decay: Decay rate, >= 0: a number, an array or a tracer.
    maximize: Ascend the objective: negate the updates first (torch's
      ``maximize``).

  Returns:
    An :class:`optax.GradientTransformation` with an empty state.

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019 (coupled and decoupled).
  """
  _checks.check_non_negative("weight_decay", weight_decay)
  value = _checks.concrete_value(weight_decay)
  concrete_zero = value is not None and not value.any()

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    if maximize:
      updates = jax.tree.map(lambda g: -g, updates)
    if concrete_zero:
      return updates, state
    if params is None:
      raise ValueError(_NEEDS_PARAMS)
    # g + s·w, as optax writes it; the cast keeps bfloat16 updates bfloat16
    # when weight_decay arrives as a float32 array (as in a sweep).
    updates = jax.tree.map(lambda g, w: (g + weight_decay * w).astype(g.dtype), updates, params)
    return updates, state

  return optax.GradientTransformation(init_fn, update_fn)
