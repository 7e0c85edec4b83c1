"""A :class:`~momentum_jax.problems.Trainable` as the engine runs it: the run's protocol.

The sweep engine knows a run only through what :class:`Setup` (a Problem
with its optimizer) and :class:`TrainableRun` both provide: ``init``,
``segment`` (a few log intervals of training, with the metrics logged on
the way), ``kept`` (what ``keep:`` saves), ``stream`` (host batches, or
None) and ``problem``; and a state with ``start`` and ``diverged_at``
fields (the metrics of the initial run, and where it diverged). A Problem is
one adapter onto it, a Trainable the other.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp

from momentum_jax.problems import Trainable
from momentum_jax.problems._trainable import Traced, as_logged, named_metrics
from momentum_jax.train._config import TrainConfig
from momentum_jax.train._flops import flops
from momentum_jax.train._kept import flat_tree


class TrainableState(NamedTuple):
  """What a Trainable's run carries: its own state, where it diverged, its initial metrics.

  Attributes:
    state: The Trainable's state.
    diverged_at: The step at which its loss first was non-finite, or -1.
    start: ``evaluate`` of the initial state, as ``{"val_<name>": scalar}``.
  """

  state: Any
  diverged_at: jax.Array
  start: dict[str, jax.Array]


def _evaluated(trainable: Trainable, state: Any) -> dict[str, jax.Array]:
  if trainable.evaluate is None:
    return {}
  evaluated = named_metrics(trainable.evaluate(state))
  return {f"val_{name}": as_logged(value) for name, value in evaluated.items()}


def _interval_mean(value: jax.Array) -> jax.Array:
  # A metric per step is logged as its mean over the interval, as train_loss is for a Problem.
  return jnp.mean(value) if value.ndim else value


@dataclasses.dataclass(frozen=True, eq=False)
class TrainableRun:
  """The engine's view of a :class:`~momentum_jax.problems.Trainable` (see the module docstring).

  Attributes:
    problem: The Trainable.
    config: The training's steps and log interval (``batch_size`` and the
      evaluation settings are the Trainable's own business).
    names: The hyperparameters swept (what the planning's estimates trace
      ``init`` and ``train`` with).
  """

  problem: Trainable
  config: TrainConfig
  names: tuple[str, ...] = ()
  stream = None  # a Trainable makes its own data
  is_stream = False

  @property
  def name(self) -> str:
    return self.problem.name

  def traced(self) -> Traced:
    """The Trainable traced and checked (:meth:`~momentum_jax.problems.Trainable.traced`).

    Raises:
      ValueError: starting with the Trainable's field at fault.
    """
    return self.problem.traced(self.names, self.config.log_every)

  def metric_names(self) -> tuple[str, ...]:
    """The summary's metrics a search or ``keep`` may rank by (see
    :meth:`~momentum_jax.problems.Trainable.metric_names`)."""
    return self.problem.metric_names(self.names, self.config.log_every)

  def abstract_state(self) -> Any:
    """The Trainable's state's shapes for these hyperparameter ``names``."""
    return self.problem.abstract_state(self.names)

  def state_bytes(self) -> int:
    """Bytes of one run's state."""
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(self.abstract_state()))

  def _step(self) -> tuple[Any, ...]:
    return (
      lambda s, h, k: self.problem.train(s, h, k, 1),
      self.abstract_state(),
      {n: jax.ShapeDtypeStruct((), jnp.float32) for n in self.names},
      jax.random.key(0),
    )

  def flops_per_step(self) -> int:
    """One ``train`` step's FLOPs, counted from its jaxpr with loops by their trip counts
    (:mod:`momentum_jax.train._flops`: XLA's cost analysis counts a loop's body once)."""
    kept = self.__dict__.get("_flops")
    if kept is None:
      kept = max(1, int(flops(*self._step())))
      object.__setattr__(self, "_flops", kept)  # (frozen: a cache, not a field)
    return kept

  def bytes_per_step(self) -> int:
    """XLA's count of the bytes one ``train`` step touches, lowered, not compiled (0 where it
    counts none): a working-memory estimate."""
    function, *args = self._step()
    cost = jax.jit(function).lower(*args).cost_analysis() or {}
    return int(cost.get("bytes accessed") or 0)

  def init(self, hyperparameters: Mapping[str, jax.Array], init_key: jax.Array) -> TrainableState:
    """The Trainable's initial state from ``init_key``, and its evaluation."""
    state = self.problem.init(hyperparameters, init_key)
    return TrainableState(state, jnp.int32(-1), _evaluated(self.problem, state))

  def segment(
    self,
    hyperparameters: Mapping[str, jax.Array],
    state: TrainableState,
    data_key: jax.Array,
    first_step: jax.Array,
    num_logs: int,
    batches: Any = None,
  ) -> tuple[TrainableState, dict[str, jax.Array]]:
    """``num_logs`` log intervals from ``first_step``, and the metrics logged after each.

    Each interval is one call of the Trainable's ``train`` with ``steps =
    log_every`` and ``key = fold_in(data_key, its first step)``. A run whose
    loss is non-finite in an interval is marked diverged at that interval's
    first such step, and keeps the state it had before it.
    """
    del batches  # a Trainable has no host stream
    log_every = self.config.log_every

    def interval(state: TrainableState, step: jax.Array):
      key = jax.random.fold_in(data_key, step)
      new, metrics = self.problem.train(state.state, hyperparameters, key, log_every)
      metrics = {n: as_logged(v) for n, v in named_metrics(metrics).items()}
      loss = metrics["loss"]
      bad = ~jnp.isfinite(loss)
      first_bad = step + (jnp.argmax(bad) if loss.ndim else log_every - 1)
      # int32 as the carry holds it, also where jax_enable_x64 makes the step an int64.
      diverged_at = jnp.where(
        (state.diverged_at < 0) & jnp.any(bad), first_bad, state.diverged_at
      ).astype(jnp.int32)
      # A diverged run stays where it was: its non-finite state cannot spread to its metrics.
      frozen = diverged_at >= 0
      new = jax.tree.map(lambda old, now: jnp.where(frozen, old, now), state.state, new)
      logged = {
        "train_loss": _interval_mean(loss),
        **{f"train_{n}": _interval_mean(v) for n, v in metrics.items() if n != "loss"},
        **_evaluated(self.problem, new),
      }
      return TrainableState(new, diverged_at, state.start), logged

    steps = first_step + log_every * jnp.arange(num_logs)
    return jax.lax.scan(interval, state, steps)

  def kept(self, state: TrainableState) -> dict[str, Any]:
    """What ``keep:`` saves of a trained run: the Trainable's ``model(state)``, or its state,
    its leaves by name (:func:`~momentum_jax.train._kept.flat_tree`)."""
    model = self.problem.model
    return flat_tree(state.state if model is None else model(state.state))
