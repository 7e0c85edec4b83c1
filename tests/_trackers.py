"""The tracker tests' sweep; reading TensorBoard's curves, the tables' and the command's output."""

from __future__ import annotations

from momentum_jax import cli


CONFIG = {
  "name": "tiny",
  "problem": {"name": "linear_regression"},
  "optimizers": [
    {"name": "momentum", "ema": False, "learning_rate": [0.01, 3.0], "beta": 0.9},
    {"name": "adam", "learning_rate": 0.1},
  ],
  "train": {"steps": 20, "log_every": 5},
  "seeds": 2,
}
METRICS = ("train_loss", "grad_norm")


def _tensorboard_curves(folder):
  from tensorboard.backend.event_processing import event_accumulator

  events = event_accumulator.EventAccumulator(
    str(folder), size_guidance={event_accumulator.SCALARS: 0}
  )
  events.Reload()
  return {m: [(e.step, e.value) for e in events.Scalars(m)] for m in events.Tags()["scalars"]}


def _curve(curves, config_id, metric):
  rows = curves[curves["config_id"] == config_id].sort_values("step")
  return rows["step"].to_numpy(), rows[metric].to_numpy()


def _main(capsys, *argv):
  code = cli.main([str(a) for a in argv])
  captured = capsys.readouterr()
  assert "Traceback" not in captured.err
  return code, captured.err
