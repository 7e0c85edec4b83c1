"""The sweeps the keep tests share: a BatchNorm MLP in chunks, successive halving, a width."""

from __future__ import annotations

from _sweep_configs import HALVING as _SHARED_HALVING


# Four learning rates x 3 seeds of a BatchNorm MLP (its running statistics are
# model state a kept model must carry). With chunks of 2 rows, a setting's
# 3 seeds straddle two chunks: its rank is known only after the second.
DIGITS = {
  "problem": {"name": "digits_mlp", "hidden": [16], "batch_norm": True},
  "optimizer": {"name": "momentum", "learning_rate": [0.01, 0.03, 0.1, 0.3], "beta": 0.9},
  "train": {"steps": 40, "batch_size": 32, "log_every": 20},
  "seeds": 3,
  "keep": {"models": 2},
}
WIDTH = 1  # results are bit-identical whatever the chunk size at one width


# Rungs at 10, 30, 90: 9 settings, then 3, then 1.
HALVING = {**_SHARED_HALVING, "keep": {"models": 3}}
