"""The state of one training run, its result, and the setup it is compiled for."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple

import jax
import optax
from flax import nnx

from momentum_jax import optim
from momentum_jax.problems import Problem
from momentum_jax.train._config import TrainConfig, batch_size_error, steps_per_epoch
from momentum_jax.train._flops import model_flops_per_step
from momentum_jax.train._kept import flat_arrays

OptimizerFactory = Callable[..., optax.GradientTransformation]
# (opt_state, params) -> the parameters the model is evaluated at.
EvalParams = Callable[[Any, Any], Any]


def _split(model: nnx.Module):
  return nnx.split(model, nnx.Param, ...)


def _eval_mode(model: nnx.Module) -> nnx.Module:
  """A view of ``model`` whose BatchNorms use their running statistics."""
  has_batch_norm = any(isinstance(node, nnx.BatchNorm) for _, node in nnx.iter_graph(model))
  return nnx.view(model, use_running_average=True) if has_batch_norm else model


class TrainState(NamedTuple):
  """What a training run carries from step to step, and the engine from segment to segment.

  Attributes:
    params: The model's parameters (``nnx.State``).
    rest: Its other state (BatchNorm statistics, …).
    opt_state: The optimizer's state.
    first_loss: The first step's training loss (divergence is measured from it).
    diverged_at: The number of updates taken when the run diverged, or -1.
    start: The problem's metrics of the initial model (``{name: scalar}``).
  """

  params: Any
  rest: Any
  opt_state: Any
  first_loss: jax.Array
  diverged_at: jax.Array
  start: dict[str, jax.Array]


class TrainResult(NamedTuple):
  """What a whole training run returns.

  Attributes:
    metrics: Arrays with one entry per log step (see :func:`train_segment`),
      and the problem's metrics of the initial model as ``start_<name>``.
    params: The final parameters (``nnx.State``).
    rest: The final non-parameter state (BatchNorm statistics, …).
    diverged_at_step: The number of updates taken when the loss first became
      non-finite or too large (see ``TrainConfig.divergence_factor``), or -1.
  """

  metrics: dict[str, Any]
  params: Any
  rest: Any
  diverged_at_step: jax.Array


@dataclasses.dataclass(frozen=True, eq=False)
class Setup:
  """What the step functions share: the problem, the config and the model's structure.

  Build it with :func:`setup`; it holds no array that varies by configuration.
  """

  problem: Problem
  config: TrainConfig
  make_optimizer: OptimizerFactory
  graphdef: Any
  eval_graphdef: Any
  per_epoch: int
  eval_params: EvalParams | None = None

  # The run's protocol, shared with TrainableRun (see momentum_jax.train._trainable): what the
  # sweep engine calls. Imported in the methods: the step and loop modules import this one.
  @property
  def stream(self) -> Any:
    """The problem's :class:`~momentum_jax.data.Stream` (batches from the host), or None."""
    return self.problem.data if self.problem.is_stream else None

  def init(self, hyperparameters: Mapping[str, Any], init_key: jax.Array) -> "TrainState":
    """:func:`~momentum_jax.train.init_state`."""
    from momentum_jax.train._step import init_state

    return init_state(self, hyperparameters, init_key)

  def segment(self, hyperparameters, state, data_key, first_step, num_logs, batches=None):
    """:func:`~momentum_jax.train.train_segment`: ``(state, metrics per log)``."""
    from momentum_jax.train._loop import train_segment

    return train_segment(self, hyperparameters, state, data_key, first_step, num_logs, batches)

  def kept(self, state: "TrainState") -> dict[str, Any]:
    """What ``keep:`` saves (:func:`~momentum_jax.train.kept_state`), its arrays by name
    (:func:`~momentum_jax.train._kept.flat_arrays`)."""
    from momentum_jax.train._evaluate import kept_state

    return flat_arrays(*kept_state(self, state))

  def flops_per_step(self) -> int:
    """One training step's estimated FLOPs (:func:`~momentum_jax.train._flops.model_flops_per_step`;
    a :class:`~momentum_jax.train.TrainableRun` counts its own)."""
    return model_flops_per_step(self.problem, self.config)

  def optimizer(self, hyperparameters: Mapping[str, Any]) -> optax.GradientTransformationExtraArgs:
    """The run's optimizer, prefixed with :func:`momentum_jax.record_grad_norms` (for logging).

    ``optax.chain`` passes optax's extra arguments (``value``, ``grad``,
    ``value_fn``) on to the transforms that take them.
    """
    return optax.chain(optim.record_grad_norms(), self.make_optimizer(**hyperparameters))


def setup(
  problem: Problem,
  make_optimizer: OptimizerFactory,
  config: TrainConfig,
  eval_params: EvalParams | None = None,
) -> Setup:
  """Checks the batch size and reads the model's structure (no weights computed).

  ``eval_params``: see :func:`evaluation_params`.

  Raises:
    ValueError: if the batch size exceeds the training set, or is given for
      a stream.
  """
  if (error := batch_size_error(problem, config.batch_size)) is not None:
    raise ValueError(f"batch_size {error}")
  template = problem.abstract_model()
  return Setup(
    problem,
    config,
    make_optimizer,
    nnx.graphdef(template),
    nnx.graphdef(_eval_mode(template)),
    steps_per_epoch(problem, config.batch_size),
    eval_params,
  )
