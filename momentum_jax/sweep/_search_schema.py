"""The ``search:`` section's schema: one pydantic model per method, chosen by ``method``.

Each model checks its keys (a key another method takes is named as such)
and builds the :class:`~momentum_jax.sweep._search.SearchSpec` the engine
reads; ``method: package.module:Class`` is a user's own strategy.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Annotated, Any, Literal, Mapping

import pydantic

from momentum_jax.sweep._errors import ConfigError
from momentum_jax.sweep._imports import import_object
from momentum_jax.sweep._pbt import PBTSection
from momentum_jax.sweep._search import (
  DEFAULT_BATCH,
  OPTUNA_EXTRA,
  OPTUNA_SAMPLERS,
  SCHEDULERS,
  Positive,
  SchedulerSpec,
  SearchSpec,
  Seed,
)
from momentum_jax.sweep._validation import Section, choice, either


class SchedulerSection(Section):
  """``search.scheduler``: see :class:`SchedulerSpec`."""

  name: choice(*SCHEDULERS)
  eta: Annotated[int, pydantic.Field(ge=2)] = 3
  min_steps: Positive
  metric: str | None = None

  def spec(self) -> SchedulerSpec:
    return SchedulerSpec(**self.model_dump())


class _Method(Section):
  """A kind of ``search:``; a key another method takes is named as such."""

  @classmethod
  def unknown_key_message(cls, value: Mapping[str, Any], key: Any) -> str | None:
    takers = [m for m, c in _METHODS.items() if key in c.model_fields]
    method = value.get("method", "grid")
    return f"method {method} takes no {key!r} ({' and '.join(takers)} do)" if takers else None


class GridSearch(_Method):
  """``search: {method: grid}`` (the default): the product of every hyperparameter's values."""

  method: Literal["grid"] = "grid"
  scheduler: SchedulerSection | None = None

  def spec(self) -> SearchSpec:
    return SearchSpec(scheduler=self.scheduler and self.scheduler.spec())


class SampledSearch(_Method):
  """``search: {method: random | quasirandom, samples: N}``: N points of each group's ranges."""

  method: Literal["random", "quasirandom"] = "random"
  samples: Positive
  seed: Seed = 0
  scheduler: SchedulerSection | None = None

  def spec(self) -> SearchSpec:
    return SearchSpec(
      method=self.method,
      samples=self.samples,
      seed=self.seed,
      scheduler=self.scheduler and self.scheduler.spec(),
    )


class OptunaSearch(_Method):
  """``search: {method: optuna, trials: N}``: Optuna's sampler asked ``batch`` trials at a time."""

  method: Literal["optuna"] = "optuna"
  sampler: choice(*OPTUNA_SAMPLERS) = "tpe"
  trials: Positive
  batch: Positive | None = None
  seed: Seed = 0
  metric: str | None = None
  scheduler: SchedulerSection | None = None

  def spec(self) -> SearchSpec:
    """The spec; Optuna (and the sampler's own package) must be importable."""
    try:
      importlib.import_module("optuna")
    except ImportError:
      raise ConfigError(
        "search.method", f"method optuna needs Optuna, an optional extra: {OPTUNA_EXTRA}"
      ) from None
    needed = OPTUNA_SAMPLERS[self.sampler]
    if needed is not None and not _importable(needed):
      raise ConfigError(
        "search.sampler", f"Optuna's {self.sampler} sampler needs {needed}: pip install {needed}"
      )
    batch = min(DEFAULT_BATCH, self.trials) if self.batch is None else self.batch
    if batch > self.trials:
      raise ConfigError(
        "search.batch",
        f"must be at most search.trials ({self.trials}): a "
        f"batch is trials asked at once; got {batch}",
      )
    return SearchSpec(
      method="optuna",
      seed=self.seed,
      sampler=self.sampler,
      trials=self.trials,
      batch=batch,
      metric=self.metric,
      scheduler=self.scheduler and self.scheduler.spec(),
    )


class PBTSearch(_Method, PBTSection):
  """``search: {method: pbt, population: N, interval: STEPS}``: see :mod:`momentum_jax.sweep._pbt`."""

  method: Literal["pbt"] = "pbt"

  def spec(self) -> SearchSpec:
    pbt = self.pbt_spec()
    return SearchSpec(method="pbt", samples=pbt.population, seed=pbt.seed, pbt=pbt)


class CustomSearch(_Method):
  """``search: {method: package.module:Class, options: {...}}``: a user's own strategy.

  ``Class`` subclasses :class:`momentum_jax.sweep.strategies.Strategy`; it is
  built per optimizer group as ``Class(context)``, ``context.options`` being
  ``options``, and sees the grid's rows (ranges are for the built-in
  searches).
  """

  method: str
  options: dict[str, Any] = {}
  scheduler: SchedulerSection | None = None

  def spec(self) -> SearchSpec:
    from momentum_jax.sweep.strategies import Strategy

    found = import_object("search.method", self.method)
    if not (isinstance(found, type) and issubclass(found, Strategy)):
      raise ConfigError(
        "search.method",
        f"{self.method} is {found!r}, not a subclass of momentum_jax.sweep.strategies.Strategy",
      )
    return SearchSpec(
      method=self.method,
      strategy=found,
      options=dict(self.options),
      metric=self.options.get("metric"),
      scheduler=self.scheduler and self.scheduler.spec(),
    )


_METHODS = {
  "grid": GridSearch,
  "random": SampledSearch,
  "quasirandom": SampledSearch,
  "optuna": OptunaSearch,
  "pbt": PBTSearch,
}


def _method(value: Any) -> str | None:
  if not isinstance(value, Mapping):
    return None
  method = value.get("method", "grid")
  if isinstance(method, str) and ":" in method:
    return "custom"
  return method if method in _METHODS else "unknown"


class _UnknownMethod(Section):
  """A method none of the others is: refused, with the closest name, before any other key."""

  model_config = {**Section.model_config, "extra": "ignore"}
  method: choice(*_METHODS)

  @pydantic.model_validator(mode="before")
  @classmethod
  def _known_keys(cls, value: Any) -> Any:
    return value


SearchSection = either(
  "a mapping with a method ("
  + ", ".join(_METHODS)
  + ", or package.module:Class, a strategy of your own)",
  _method,
  grid=GridSearch,
  random=SampledSearch,
  quasirandom=SampledSearch,
  optuna=OptunaSearch,
  pbt=PBTSearch,
  custom=CustomSearch,
  unknown=_UnknownMethod,
)


def _importable(module: str) -> bool:
  try:
    return importlib.util.find_spec(module) is not None
  except (ImportError, ValueError):  # a module set to None in sys.modules
    return False
