"""The median stopping rule (Golovin et al. 2017, Google Vizier) as a search strategy of our own.

A setting stops when its best value so far is worse than the median of the
other settings' running averages at the same step. Run it from YAML:
``search: {method: experiments.median_stopping:MedianStopping,
options: {min_steps: 20}}``.
"""

import numpy as np

from momentum_jax.sweep.strategies import Continue, Rows, Stop, metric_at


class MedianStopping(Rows):
  """The group's rows in one batch, looked at every ``every`` steps from ``min_steps`` on."""

  def __init__(self, context):
    super().__init__(context)
    self.min_steps = int(context.options.get("min_steps", context.log_every))
    self.every = int(context.options.get("every", context.log_every))

  def rows_at_once(self, chunk):
    return len(self.context.seeds)  # every setting is compared with all the others

  def intervals(self):
    return [self.every]

  def boundaries(self, batch):
    return [*range(self.min_steps, self.context.steps, self.every), self.context.steps]

  def observe(self, batch, scores):
    logs = np.asarray(scores.logged["train_loss"]).shape[1]
    values = np.stack(
      [metric_at(scores.logged, self.context.metric, at) for at in range(logs)], axis=1
    )  # [rows, logs]
    values = -values if self.context.maximize else values  # lower is better from here on
    seeds = self.context.seeds_per_setting
    per_setting = values.reshape(-1, seeds, logs).mean(axis=1)  # [settings, logs]
    best = np.nanmin(np.where(np.isnan(per_setting), np.inf, per_setting), axis=1)
    running = np.nanmean(per_setting, axis=1)
    worse = np.array(
      [
        best[i] > np.nanmedian(np.delete(running, i)) if len(running) > 1 else False
        for i in range(len(best))
      ]
    )
    worse |= scores.diverged.reshape(-1, seeds).any(axis=1)
    stopping = np.repeat(worse, seeds)
    return Stop(scores.rows[stopping]) if stopping.any() else Continue()
