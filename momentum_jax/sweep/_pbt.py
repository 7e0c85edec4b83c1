"""Population-based training's config: ``search: {method: pbt, ...}``.

The strategy is :mod:`momentum_jax.sweep.strategies.pbt`'s; what follows describes both.

A population of hyperparameter settings trains together; every
``interval`` steps the bottom ``fraction`` of it, by the ranked metric, copy
the training state and the hyperparameters of a random member of the top
``fraction`` (*exploit*) and multiply each hyperparameter sampled from a
range by a random one of ``perturb``, clipped to the range (*explore*).
Hyperparameters given as lists or fixed values are copied unchanged. The
initial population is drawn as ``method: quasirandom`` draws its points,
``population`` of them per optimizer group (lists still cross with them).

This module sees only numbers: after a segment, each row's value of the
metric and whether it diverged; it answers which member copies which and
with what hyperparameters. It never touches a device or a compiled program
(the engine gathers the copied rows on the devices, see
:mod:`momentum_jax.sweep.strategies.pbt` and the segment loop).

Rows come as the engine lays a group out: the seeds of one hyperparameter
setting (a *member*) adjacent, the seed varying fastest. A member is ranked
by the mean of its seeds' values; one of whose seeds diverged, or whose
mean is NaN, ranks last.

Reference:
  Jaderberg, Dalibard, Osindero, Czarnecki, Donahue, Razavi, Vinyals,
  Green, Dunning, Simonyan, Fernando & Kavukcuoglu, "Population based
  training of neural networks", arXiv:1711.09846, 2017 (truncation
  selection and perturbation, as here).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import pydantic

from momentum_jax.sweep._errors import ConfigError
from momentum_jax.sweep._grid import Finite
from momentum_jax.sweep._validation import Section


@dataclasses.dataclass(frozen=True)
class PBTSpec:
  """Population-based training: ``search: {method: pbt, ...}``.

  Attributes:
    population: Members drawn per optimizer group (as ``quasirandom``'s
      ``samples``), >= 2.
    interval: Steps between two exploits: a positive multiple of
      ``train.log_every``, below ``train.steps``.
    fraction: The share of members replaced at each exploit (the bottom
      ``fraction``, copying the top ``fraction``), in ``[0, 0.5]``; 0 never
      replaces any (a quasi-random sweep).
    perturb: The factors a copied hyperparameter sampled from a range is
      multiplied by, one drawn per hyperparameter and exploit.
    seed: The seed of the initial draw and of the exploits' random choices.
    metric: The summary metric members are ranked by (as a scheduler's:
      ``final_loss``, ``best_loss``, ``val_loss``, ``val_accuracy``,
      ``val_<name>``), its direction
      :func:`momentum_jax.results.higher_is_better`; ``None``: ``val_loss``
      where the problem logs it, else ``final_loss``
      (:func:`momentum_jax.sweep._search.loss_metric`).
  """

  population: int
  interval: int
  fraction: float = 0.25
  perturb: tuple[float, ...] = (0.8, 1.25)
  seed: int = 0
  metric: str | None = None

  def record(self) -> dict[str, Any]:
    return {**dataclasses.asdict(self), "perturb": list(self.perturb)}


class PBTSection(Section):
  """The keys of ``search:`` that population-based training takes (see :class:`PBTSpec`)."""

  population: Annotated[int, pydantic.Field(ge=2)]
  interval: Annotated[int, pydantic.Field(ge=1)]
  fraction: Annotated[float, pydantic.Field(ge=0, le=0.5)] = 0.25
  perturb: Annotated[
    list[Annotated[Finite, pydantic.Field(gt=0)]],
    pydantic.Strict(False),
    pydantic.Field(min_length=1),
  ] = [0.8, 1.25]
  seed: Annotated[int, pydantic.Field(ge=0)] = 0
  metric: str | None = None

  def pbt_spec(self) -> PBTSpec:
    """The spec; a fraction that replaces no member of the population is refused."""
    if self.fraction > 0 and int(self.fraction * self.population) == 0:
      raise ConfigError(
        "search.fraction",
        f"{self.fraction} of a population of "
        f"{self.population} is no member: no exploit would ever replace one "
        "(raise it, or use 0)",
      )
    return PBTSpec(
      population=self.population,
      interval=self.interval,
      fraction=float(self.fraction),
      perturb=tuple(map(float, self.perturb)),
      seed=self.seed,
      metric=self.metric,
    )


def check_pbt(spec: PBTSpec, steps: int, log_every: int) -> None:
  """``search.interval`` against the training: a multiple of ``log_every``, below ``steps``."""
  if spec.interval % log_every:
    raise ConfigError(
      "search.interval",
      f"must be a multiple of train.log_every ({log_every}): "
      f"members are ranked at a logged step; got {spec.interval}",
    )
  if spec.interval >= steps:
    raise ConfigError(
      "search.interval", f"must be below train.steps ({steps}), got {spec.interval}"
    )
