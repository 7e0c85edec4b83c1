"""A sweep in MLflow: a parent run for the sweep, a nested run per configuration.

The experiment is named after the sweep; each export or logged sweep is a
parent run holding the figures, ``summary.md`` and ``summary.csv`` as
artifacts, and a nested run per configuration with its parameters
(optimizer, hyperparameters, seed), every logged metric at its steps, and a
``diverged`` tag (a diverged run ends ``FAILED``). By default the store is
the SQLite file ``out_dir/mlflow.db``, artifacts under ``out_dir/mlartifacts``
(``mlflow ui --backend-store-uri sqlite:///…/mlflow.db`` shows them); any
tracking URI may be given instead.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urlparse

from momentum_jax.report.exports._common import Configuration, Tracker, require
from momentum_jax.results import REPORT_FILE, SUMMARY_FILE

_METRICS_PER_CALL = 1000  # MLflow's limit on the metrics of one log_batch


def _artifact_location(uri: str | None, out_dir: Path) -> str | None:
  """Where a new experiment keeps its artifacts: in the sweep's folder for a local store
  (MLflow's default would be the working folder), where a remote server says otherwise."""
  if uri is None or urlparse(uri).scheme in ("", "file", "sqlite"):
    return (out_dir / "mlartifacts").as_uri()
  return None


class MLflow(Tracker):
  """Logs configurations as nested runs of one parent run, at ``uri`` or ``out_dir/mlflow.db``.

  A live sweep's runs are ``RUNNING`` while their batch trains, their metric
  history growing at each segment boundary."""

  label = "MLflow"

  def __init__(
    self, out_dir: str | os.PathLike, sweep_name: str, uri: str | None = None, live: bool = False
  ):
    super().__init__(live)
    self._entities = require("mlflow.entities", "mlflow", self.label)
    out_dir = Path(out_dir).resolve()
    self.uri = uri or f"sqlite:///{out_dir / 'mlflow.db'}"
    self.client = require("mlflow", "mlflow", self.label).MlflowClient(tracking_uri=self.uri)
    experiment = self.client.get_experiment_by_name(sweep_name)
    if experiment is not None:
      self.experiment = experiment.experiment_id
    else:
      self.experiment = self.client.create_experiment(
        sweep_name, artifact_location=_artifact_location(uri, out_dir)
      )
    self.parent = self.client.create_run(
      self.experiment, run_name=sweep_name, tags={"momentum_jax.out_dir": str(out_dir)}
    ).info.run_id

  def _start(self, config: Configuration) -> str:
    run = self.client.create_run(
      self.experiment,
      run_name=config.run_name,
      tags={"mlflow.parentRunId": self.parent, "setting": config.setting},
    ).info.run_id
    params = [self._entities.Param(k, str(v)) for k, v in config.params.items()]
    self.client.log_batch(run, params=params)
    return run

  def _write(self, run: str, config: Configuration) -> None:
    now = int(time.time() * 1000)
    metrics = [
      self._entities.Metric(name, float(value), now, int(step))
      for name, values in config.metrics.items()
      for step, value in zip(config.steps, values)
    ]
    for first in range(0, len(metrics), _METRICS_PER_CALL):
      self.client.log_batch(run, metrics=metrics[first : first + _METRICS_PER_CALL])

  def _flush(self, run: str) -> None:
    """Nothing to do: each batch of metrics is in the store once logged."""

  def _end(self, run: str, config: Configuration) -> None:
    self.client.set_tag(run, "diverged", str(config.diverged).lower())
    self.client.set_terminated(run, status="FAILED" if config.diverged else "FINISHED")

  def close(self, out_dir: str | os.PathLike) -> None:
    """Attaches the sweep's figures and report to the parent run and ends it."""
    out_dir = Path(out_dir)
    files = [*sorted(out_dir.glob("*.png")), out_dir / REPORT_FILE, out_dir / SUMMARY_FILE]
    for path in files:
      if path.is_file():
        self.client.log_artifact(self.parent, str(path))
    self.client.set_terminated(self.parent)

  def where(self) -> str:
    return f"MLflow run {self.parent} at {self.uri}: mlflow ui --backend-store-uri {self.uri}"
