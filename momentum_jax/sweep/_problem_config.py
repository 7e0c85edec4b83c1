"""A sweep's problem: a built-in name, an import path, or a Problem object, and how it is built."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from momentum_jax import problems
from momentum_jax.train import TrainableRun
from momentum_jax.train._config import batch_size_error
from momentum_jax.sweep._checks import check_keys, check_name
from momentum_jax.sweep._errors import ConfigError
from momentum_jax.sweep._imports import import_object, python_name
from momentum_jax.sweep._optimizers import check_arguments, keyword_parameters
from momentum_jax.sweep._schema import ProblemSection
from momentum_jax.sweep._specs import trainable_hyperparameters
from momentum_jax.sweep._validation import arguments_adapter, validate

# What a config may give as its problem, built: a Problem or a Trainable.
_OBJECTS = (problems.Problem, problems.Trainable)

if TYPE_CHECKING:
  from momentum_jax.sweep._config import SweepConfig


def parse_problem(section: Any):
  """``(name, options, source)``: see :class:`SweepConfig`'s ``problem``, ``problem_options``, ``problem_source``.

  The options are typed from the signature of the function that builds the
  problem (a bool default takes true or false, a tuple default a list).
  """
  if isinstance(section, _OBJECTS):
    return section.name, {}, section
  if not isinstance(section, ProblemSection):  # as written (a study's setting)
    section = validate(ProblemSection, section, "problem")
  name, options = section.name, section.arguments
  if isinstance(name, _OBJECTS):
    if options:
      raise ConfigError(
        f"problem.{next(iter(options))}",
        f"a {type(name).__name__} object takes no options: build it with them",
      )
    return name.name, {}, name
  if callable(name):
    source, name = name, python_name(name)
  elif ":" in name:
    source = import_object("problem.name", name)
    if not callable(source):
      raise ConfigError(
        "problem.name",
        f"{name} is not callable (it is a "
        f"{type(source).__name__}); name a function that returns a Problem or a Trainable",
      )
  else:
    name = check_name(
      "problem.name", name, problems.PROBLEMS, "'package.module:function' returning a Problem"
    )
    parameters = dict(inspect.signature(problems.PROBLEMS[name]).parameters)
    check_keys("problem", options, tuple(parameters))
    return name, _typed_options(parameters, options), None
  parameters, takes_any = keyword_parameters(source)
  if not takes_any:
    check_arguments("problem", name, options, parameters)
  return name, _typed_options(parameters, options), source


def _typed_options(parameters, options):
  typed = validate(arguments_adapter(parameters, None), options, "problem")
  return {**options, **typed}


def build_problem(config: "SweepConfig") -> problems.Problem:
  """The problem of ``config``: built by its name or import path with its options, or the one given.

  Raises:
    ConfigError: at ``problem`` for the builder's own ``TypeError``,
      ``ValueError`` or ``FileNotFoundError`` (a bad option, data with NaN,
      CIFAR-10 not found), at ``problem.name`` if it returns no Problem.
  """
  return make_problem(config.problem, config.problem_options, config.problem_source)


def make_problem(name: str, options, source) -> problems.Problem | problems.Trainable:
  """The problem :func:`parse_problem` described as ``(name, options, source)``; see :func:`build_problem`."""
  if isinstance(source, _OBJECTS):
    return source
  try:
    if source is None:
      problem = problems.get_problem(name, **options)
    else:
      problem = source(**options)
  except (TypeError, ValueError, FileNotFoundError) as error:
    # The builders' messages start with the option's name where one is at fault.
    option = str(error).split(" ", 1)[0]
    raise ConfigError(f"problem.{option}" if option in options else "problem", str(error)) from None
  if not isinstance(problem, _OBJECTS):
    raise ConfigError(
      "problem.name",
      f"{name} returned a value of type "
      f"{type(problem).__name__}, not a momentum_jax.problems.Problem or Trainable",
    )
  return problem


def problem_builder(config: "SweepConfig") -> dict[str, Any] | None:
  """How the problem was built, for the manifest: ``{"name", "options"}`` (typed); None for an object.

  :func:`momentum_jax.problems.rebuild` builds it again from this record
  (``load_model`` does), without parsing the config again.
  """
  if isinstance(config.problem_source, _OBJECTS):
    return None
  return {"name": config.problem, "options": dict(config.problem_options)}


def checked_problem(config: "SweepConfig") -> problems.Problem | TrainableRun:
  """The config's problem, its batch size, loss and metrics checked before anything compiles.

  A Trainable comes back as the :class:`~momentum_jax.train.TrainableRun` the
  engine plans and trains it by, its functions traced and checked.
  """
  problem = build_problem(config)
  trainable = isinstance(problem, problems.Trainable)
  if trainable != any(o.factory is trainable_hyperparameters for o in config.optimizers):
    raise ConfigError(
      "hyperparameters" if not trainable else "optimizer",
      f"{problem.name} is a {type(problem).__name__}: "
      + (
        "give its hyperparameters under 'hyperparameters:', not optimizers (it builds its own)"
        if trainable
        else "sweep its optimizers under 'optimizer:' or 'optimizers:' ('hyperparameters:' "
        "is for a Trainable)"
      ),
    )
  if trainable:
    return _checked_trainable(problem, config)
  if (error := batch_size_error(problem, config.train.batch_size)) is not None:
    raise ConfigError("train.batch_size", error)
  if problem.is_stream:
    try:
      _ = problem.data.example  # the first batch, read once: it fixes every batch's shape
    except ValueError as error:
      raise ConfigError("problem.data", str(error)) from None
  try:
    problem.metric_names()
  except ValueError as error:  # "loss: …" or "metrics: …"
    field, message = str(error).split(": ", 1)
    raise ConfigError(f"problem.{field}", message) from None
  return problem


# The training settings of a Problem's step, which a Trainable's own train decides.
_NOT_FOR_A_TRAINABLE = {
  "batch_size": "a Trainable draws its own batches",
  "grad_norms": "a Trainable logs its own metrics (no gradient norms of ours)",
  "eval_batch_size": "a Trainable's evaluate measures as it chooses",
  "divergence_factor": "a Trainable diverges where its loss is not finite",
}


def _checked_trainable(trainable: problems.Trainable, config: "SweepConfig") -> TrainableRun:
  spec = config.optimizers[0]
  run = TrainableRun(trainable, config.train, (*spec.grid, *spec.ranges))
  written = config.raw.get("train", {})
  for key, why in _NOT_FOR_A_TRAINABLE.items():
    if key in written:
      raise ConfigError(f"train.{key}", f"{why}: leave it out for a Trainable")
  try:
    unread = run.traced().unread
  except ValueError as error:  # "init: …", "train: …", "evaluate: …" or "model: …"
    field, message = str(error).split(": ", 1)
    raise ConfigError(f"problem.{field}", message) from None
  if unread:  # a misspelt name (read with a default), or one the code no longer uses
    raise ConfigError(
      f"hyperparameters.{unread[0]}",
      "neither problem.init nor problem.train reads it: every value would train the same run; "
      "spell it as they read it, or leave it out",
    )
  return run
