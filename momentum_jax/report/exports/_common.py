"""What every tracker logs of a configuration, read once from a result's tables.

A configuration is one summary row and its curve: its settings (the
optimizer, the hyperparameters it has, its seed) and every logged metric
(each curves column but ``config_id``, ``optimizer`` and ``step``) at its
steps. The seeds of one setting share a :attr:`Configuration.setting`, the
name trackers group them by.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType
from typing import Iterator

import numpy as np

from momentum_jax.results import SweepResult, hyperparameter_columns

_NOT_LOGGED = ("config_id", "optimizer", "step")


class MissingExtraError(ValueError):
  """A tracker's package is not installed; the message names the extra that installs it."""


def require(module: str, extra: str, tracker: str) -> ModuleType:
  """``module`` imported, or a :class:`MissingExtraError` naming ``extra``."""
  try:
    return importlib.import_module(module)
  except ModuleNotFoundError as error:
    if error.name is None or error.name.split(".")[0] != module.split(".")[0]:
      raise  # the package is there but something it needs is not: its own error says what
    raise MissingExtraError(
      f"exporting to {tracker} needs the {module.split('.')[0]} package, which is not "
      f"installed: pip install 'momentum_jax[{extra}]'"
    ) from None


@dataclasses.dataclass
class Configuration:
  """One configuration as trackers log it.

  Attributes:
    config_id: Its id in the sweep (``config_id``).
    optimizer: Its optimizer group's label.
    hyperparameters: Its hyperparameters, those it has (no NaN), in table order.
    seed: Its seed.
    diverged: Whether it diverged.
    steps: The logged steps, ascending.
    metrics: Logged metric -> its value at each of ``steps`` (float64).
  """

  config_id: int
  optimizer: str
  hyperparameters: dict[str, float]
  seed: int
  diverged: bool
  steps: np.ndarray
  metrics: dict[str, np.ndarray]

  @property
  def run_name(self) -> str:
    """The name of its run: ``config_<id>``."""
    return f"config_{self.config_id:04d}"

  @property
  def setting(self) -> str:
    """Its optimizer and hyperparameters without the seed: what its seeds share."""
    return " ".join(
      [self.optimizer, *(f"{name}={value!r}" for name, value in self.hyperparameters.items())]
    )

  @property
  def params(self) -> dict[str, str | float | int]:
    """What a tracker records as its parameters: optimizer, hyperparameters, seed."""
    return {"optimizer": self.optimizer, **self.hyperparameters, "seed": self.seed}


class Tracker:
  """What every tracker shares: its runs logged step by step, each step once.

  :meth:`log` starts a configuration's run the first time it sees it, writes
  the steps it has not written yet, and ends the run once its rows have
  ended; a live sweep calls it at each segment boundary with ``ended=False``
  (the curves so far) and once more as the batch ends. A tracker defines
  ``_start(config)`` (its run, returned), ``_write(run, config)`` (the given
  steps), ``_flush(run)`` (what a reader should see now) and ``_end(run,
  config)``.

  Args:
    live: Whether a running sweep logs to it: a resumed sweep's unfinished
      batch then logs again runs the killed sweep began.
  """

  def __init__(self, live: bool = False):
    self.live = live
    self._runs: dict[int, object] = {}  # the configurations' runs still open
    self._logged: dict[int, int] = {}  # each configuration's last step written

  def log(self, result: SweepResult, ended: bool = True) -> None:
    """Writes each configuration's steps of ``result`` that are new; ends its run if ``ended``."""
    for config in configurations(result):
      run = self._runs.pop(config.config_id, None)
      if run is None:
        run = self._start(config)
      new = config.steps > self._logged.get(config.config_id, -1)
      if new.any():
        steps = config.steps[new]
        self._write(run, dataclasses.replace(config, steps=steps, metrics=_cut(config, new)))
        self._logged[config.config_id] = int(steps[-1])
      if ended:
        self._end(run, config)
      else:
        self._flush(run)
        self._runs[config.config_id] = run


def _cut(config: Configuration, kept: np.ndarray) -> dict[str, np.ndarray]:
  return {name: values[kept] for name, values in config.metrics.items()}


def configurations(result: SweepResult) -> Iterator[Configuration]:
  """Each configuration of ``result``, in ``config_id`` order, with its curve."""
  summary, curves = result.summary, result.curves
  hyper = hyperparameter_columns(summary)
  logged = [column for column in curves.columns if column not in _NOT_LOGGED]
  by_config = dict(tuple(curves.sort_values(["config_id", "step"]).groupby("config_id")))
  for row in summary.sort_values("config_id").to_dict("records"):
    curve = by_config.get(row["config_id"], curves.iloc[:0])
    yield Configuration(
      int(row["config_id"]),
      str(row["optimizer"]),
      {name: float(row[name]) for name in hyper if not np.isnan(row[name])},
      int(row["seed"]),
      bool(row["diverged"]),
      curve["step"].to_numpy(np.int64),
      {name: curve[name].to_numpy(np.float64) for name in logged},
    )
