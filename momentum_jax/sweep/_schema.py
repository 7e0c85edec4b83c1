"""The sweep config's schema: its sections as typed models (pydantic, strict).

:class:`SweepSchema` is the file as written; :func:`momentum_jax.sweep._config.load_config`
validates it, then types the arguments of the functions it names (the
optimizer's, the schedule's, the problem's) from their signatures, and
checks what needs the optimizer itself (its own range checks, a traced
trial step). :func:`json_schema` publishes it (``momentum-jax schema``).

To add a key: a field on its section, typed (``Annotated[int,
pydantic.Field(ge=1)]``), with a default unless required; a section: a
:class:`~momentum_jax.sweep._validation.Section` and a field of
:class:`SweepSchema`. Its errors name the key path by themselves.
"""

from __future__ import annotations

import inspect
import re
from typing import Annotated, Any, Callable, Literal

import pydantic
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from momentum_jax import optim, problems
from momentum_jax.sweep._errors import ConfigError
from momentum_jax.sweep._pbt import PBTSpec
from momentum_jax.sweep._search import SchedulerSpec, SearchSpec
from momentum_jax.sweep._search_schema import SearchSection
from momentum_jax.sweep._specs import KeepSpec, OptimizerSpec, ScheduleSpec, SweepConfig
from momentum_jax.sweep._validation import Section, choice, either, number_kind
from momentum_jax.train import TrainConfig

# Seeds a config may name: each is a full run of every configuration.
MAX_SEEDS = 10_000
SCHEDULES: dict[str, Callable[..., Any]] = {
  "step_decay": optim.step_decay,
  "cosine_annealing": optim.cosine_annealing,
  "polynomial_decay": optim.polynomial_decay,
  "exponential_decay": optim.exponential_decay,
}
_Object = SkipJsonSchema[
  pydantic.InstanceOf[problems.Problem] | pydantic.InstanceOf[problems.Trainable]
]
_Function = SkipJsonSchema[Callable[..., Any]]


def _name_kind(value: Any) -> str | None:
  if isinstance(value, str):
    return "text"
  if isinstance(value, (problems.Problem, problems.Trainable)):
    return "object"
  return "function" if callable(value) else None


class _WithArguments(Section):
  """A section that names a function and takes its arguments: typed from its signature later."""

  model_config = {
    **Section.model_config,
    "extra": "allow",
    "json_schema_extra": {
      "additionalProperties": {
        "description": "the named function's keyword arguments, typed from its "
        "signature: a bool default takes true/false, a number "
        "a number (or, for a hyperparameter, a list, linspace, "
        "logspace, uniform or loguniform)"
      }
    },
  }

  @pydantic.model_validator(mode="before")
  @classmethod
  def _known_keys(cls, value: Any) -> Any:
    return value

  @property
  def arguments(self) -> dict[str, Any]:
    """The keys beyond the section's own, as written."""
    return dict(self.model_extra or {})


class ProblemSection(_WithArguments):
  """``problem:``: a built-in name or ``package.module:function`` (in a dict, a callable), and its options.

  Attributes:
    name: A built-in problem (``linear_regression``, ``digits_mlp``,
      ``digits_cnn``, ``breast_cancer``, ``cifar10_cnn``, a 2-D landscape's
      name) or ``package.module:function``, a function returning a
      :class:`~momentum_jax.problems.Problem` or a
      :class:`~momentum_jax.problems.Trainable`; the other keys are its arguments.
  """

  name: either(
    "a problem's name: a string", _name_kind, text=str, object=_Object, function=_Function
  )


class ScheduleSection(_WithArguments):
  """``optimizer.schedule:``: a learning-rate schedule whose ``init_value`` is the learning rate."""

  name: choice(*SCHEDULES)
  unit: choice("step", "epoch") = "step"


class OptimizerSection(_WithArguments):
  """``optimizer:``, or an item of ``optimizers:``: a factory's name and its hyperparameters."""

  name: either("an optimizer's name: a string", _name_kind, text=str, function=_Function)
  schedule: ScheduleSection | None = None
  # ``(opt_state, params) -> params``: where validation is measured (schedule-free's own is
  # found by its state); resolved and checked by the config, not passed to the factory.
  eval_params: (
    either(
      "'package.module:function' naming a function (opt_state, params) -> params",
      _name_kind,
      text=str,
      function=_Function,
    )
    | None
  ) = None


_Positive = Annotated[int, pydantic.Field(ge=1)]


class TrainSection(Section):
  """``train:``: the fields of :class:`~momentum_jax.train.TrainConfig`, typed."""

  steps: _Positive
  batch_size: _Positive | None = None
  log_every: _Positive = 10
  grad_norms: bool = False
  eval_batch_size: _Positive = 1024
  divergence_factor: Annotated[float, pydantic.Field(gt=1)] = 1e3

  def config(self) -> TrainConfig:
    """The TrainConfig, whose own checks (``steps`` a multiple of ``log_every``) name the key."""
    try:
      return TrainConfig(**self.model_dump())
    except ValueError as error:  # its messages start with the field's name
      raise ConfigError(f"train.{str(error).split(' ', 1)[0]}", str(error)) from None


class KeepSection(Section):
  """``keep:``: the trained models of the ``models`` best configurations (every seed) are kept."""

  models: _Positive
  metric: str | None = None

  @pydantic.model_validator(mode="before")
  @classmethod
  def _known_keys(cls, value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):  # keep: 3, as one may write it
      raise ValueError(
        f"expected a mapping such as {{models: {value}}} (the models of the "
        f"{value} best configurations), got {value}"
      )
    return super()._known_keys(value)


def _distinct(seeds: list[int]) -> list[int]:
  if len(set(seeds)) != len(seeds):
    raise ValueError(f"seeds must be distinct, got {seeds}")
  return seeds


def _seeds_kind(value: Any) -> str | None:
  return "list" if isinstance(value, (list, tuple)) else "count"


Seeds = either(
  "a count or a list of seeds",
  _seeds_kind,
  count=Annotated[int, pydantic.Field(ge=1, le=MAX_SEEDS)],
  list=Annotated[
    list[Annotated[int, pydantic.Field(ge=0)]],
    pydantic.Strict(False),
    pydantic.Field(min_length=1, max_length=MAX_SEEDS),
    pydantic.AfterValidator(_distinct),
  ],
)
ChunkSize = either(
  "a positive integer or 'auto'",
  lambda value: "auto" if value == "auto" else number_kind(value),
  auto=Literal["auto"],
  number=Annotated[int, pydantic.Field(ge=1)],
)


def _problem_kind(value: Any) -> str | None:
  return "object" if isinstance(value, (problems.Problem, problems.Trainable)) else "section"


class SweepSchema(Section):
  """A sweep config, as written: its sections, each typed.

  Attributes:
    problem: What is trained: ``{name: ..., <its options>}``.
    optimizer: One optimizer group: a factory's name and its hyperparameters
      (or ``optimizers:``, a list of them).
    optimizers: Several optimizer groups, each trained by its own compiled
      program (or ``optimizer:`` for one).
    hyperparameters: For a :class:`~momentum_jax.problems.Trainable` (in
      place of the optimizers): each hyperparameter its ``init`` and ``train``
      read, a number, list, linspace, logspace or (with a search that samples)
      range; one group, one compiled program.
    seeds: A count N (seeds 0 to N-1) or a list of distinct seeds; every
      configuration is trained once with each.
    chunk_size: Configurations trained together, from the first step to the
      last, and saved by one checkpoint; ``auto`` or left out: chosen from
      the devices' memory.
  """

  name: str | None = None
  problem: either("a mapping with a name", _problem_kind, section=ProblemSection, object=_Object)
  optimizer: OptimizerSection | None = None
  optimizers: (
    Annotated[list[OptimizerSection], pydantic.Strict(False), pydantic.Field(min_length=1)] | None
  ) = None
  # A Trainable's hyperparameters (in place of the optimizers): typed by the config.
  hyperparameters: dict[str, Any] | None = None
  train: TrainSection
  search: SearchSection | None = None
  seeds: Seeds = 1
  chunk_size: ChunkSize | None = None
  keep: KeepSection | None = None

  @pydantic.field_validator("problem", mode="before")
  @classmethod
  def _named_alone(cls, value: Any) -> Any:
    if isinstance(value, str):  # problem: linear_regression, as one may write it
      raise PydanticCustomError(
        "expected", "expected a mapping with a name: {example}", {"example": f"{{name: {value}}}"}
      )
    return value


# Where each section's keys are described: the ``Attributes:`` of its own docstring, then of
# the validated spec it becomes (the first that names a key wins), so a key is described once.
_DESCRIBED_BY = {
  "SweepSchema": (SweepSchema, SweepConfig),
  "ProblemSection": (ProblemSection,),
  "OptimizerSection": (OptimizerSpec,),
  "ScheduleSection": (ScheduleSpec,),
  "TrainSection": (TrainConfig,),
  "KeepSection": (KeepSpec,),
  "SchedulerSection": (SchedulerSpec,),
  "GridSearch": (SearchSpec,),
  "SampledSearch": (SearchSpec,),
  "OptunaSearch": (SearchSpec,),
  "PBTSearch": (PBTSpec, SearchSpec),
  "CustomSearch": (SearchSpec,),
}


def attribute_docs(cls: type) -> dict[str, str]:
  """The ``Attributes:`` section of ``cls``'s Google-style docstring: name -> its text.

  Sphinx roles become code (``:class:`~a.B``` -> ````a.B````), for readers outside Sphinx.

  >>> attribute_docs(SchedulerSpec)["eta"]
  'The reduction factor: the best ``1/eta`` continue at each rung, >= 2.'
  """
  doc = inspect.cleandoc(cls.__doc__ or "")
  found: dict[str, list[str]] = {}
  block = re.search(r"^Attributes:\n((?:(?:  .*)?\n?)+)", doc, re.M)
  for line in block.group(1).splitlines() if block else []:
    entry = re.match(r"  (\w+): (.*)", line)
    if entry:
      found[entry.group(1)] = [entry.group(2)]
    elif line.startswith("    ") and found:
      found[next(reversed(found))].append(line.strip())
  return {
    name: re.sub(r":\w+:`~?([^`]+)`", r"``\1``", " ".join(text)) for name, text in found.items()
  }


def _describe_keys(section: dict[str, Any], described_by: tuple[type, ...]) -> None:
  if "description" in section:  # the section's docstring: its keys are described one by one
    section["description"] = section["description"].split("\n\nAttributes:")[0]
  docs = [attribute_docs(cls) for cls in described_by]
  for key, field in section.get("properties", {}).items():
    text = next((doc[key] for doc in docs if key in doc), None)
    if text is not None and "description" not in field:
      field["description"] = text


def json_schema() -> dict[str, Any]:
  """The JSON Schema of a sweep config (Python objects a dict config may hold left out).

  Each key is described (:data:`_DESCRIBED_BY`), for editors and the docs' config reference.
  """
  schema = pydantic.TypeAdapter(SweepSchema).json_schema()
  for title, section in [("SweepSchema", schema), *schema["$defs"].items()]:
    _describe_keys(section, _DESCRIBED_BY.get(title, ()))
  schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
  schema["title"] = "momentum_jax sweep config"
  return schema
