"""A sweep in Weights & Biases: a run per configuration, grouped by the sweep.

Each configuration is a run named ``config_<id>`` in the group named after
the sweep (its optimizer as the job type), with its parameters (optimizer,
hyperparameters, seed) as config and every logged metric at its steps. Runs
are offline by default, written under ``out_dir/wandb/`` (``wandb sync
out_dir/wandb/offline-run-*`` uploads them); ``WANDB_MODE=online`` sends
them to the server W&B is set up for (``WANDB_BASE_URL``, ``wandb login``),
``WANDB_PROJECT`` names the project (default ``momentum_jax``).
"""

from __future__ import annotations

import os
from pathlib import Path

from momentum_jax.report.exports._common import Configuration, Tracker, require


class WandB(Tracker):
  """Logs each configuration as a W&B run of the sweep's group, offline under ``out_dir``.

  A live sweep keeps its batch's runs open while the batch trains (W&B runs
  side by side in one process), their history growing at each segment
  boundary."""

  label = "W&B"

  def __init__(
    self, out_dir: str | os.PathLike, sweep_name: str, uri: str | None = None, live: bool = False
  ):
    if uri is not None:
      raise ValueError(
        "--uri: W&B reads its server from WANDB_BASE_URL (with "
        "WANDB_MODE=online); give --uri for MLflow only"
      )
    super().__init__(live)
    self._wandb = require("wandb", "wandb", self.label)
    self.dir = Path(out_dir).resolve()
    self.group = sweep_name
    self.mode = os.environ.get("WANDB_MODE", "offline")

  def _start(self, config: Configuration):
    # Quiet, and without the system monitor: a run here is a few hundred logged values.
    settings = self._wandb.Settings(
      silent=True, console="off", save_code=False, x_disable_stats=True, x_disable_machine_info=True
    )
    self.dir.mkdir(parents=True, exist_ok=True)
    return self._wandb.init(
      project=os.environ.get("WANDB_PROJECT", "momentum_jax"),
      group=self.group,
      job_type=config.optimizer,
      name=config.run_name,
      dir=self.dir,
      mode=self.mode,
      config=config.params,
      reinit="create_new",
      settings=settings,
    )

  def _write(self, run, config: Configuration) -> None:
    for at, step in enumerate(config.steps):
      # Committed now: W&B would hold the last step back until a later one is logged.
      values = {name: float(values[at]) for name, values in config.metrics.items()}
      run.log(values, step=int(step), commit=True)

  def _flush(self, run) -> None:
    """Nothing to ask: W&B's service writes the logged steps to the run's file every
    ``x_transaction_log_flush_interval`` seconds (15 by default; the environment's
    ``WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL``), and sends them as they come online."""

  def _end(self, run, config: Configuration) -> None:
    run.summary["diverged"] = config.diverged
    run.finish()

  def close(self, out_dir: str | os.PathLike) -> None:
    """Nothing left to write: each run is finished once logged."""

  def where(self) -> str:
    if self.mode == "offline":
      return (
        f"W&B offline runs in {self.dir / 'wandb'}/: wandb sync {self.dir / 'wandb'}/offline-run-*"
      )
    return f"W&B runs in the group {self.group!r} ({self.mode})"
