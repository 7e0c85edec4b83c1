"""A Trainable's sweep as a stranger's YAML writes it, and the command's one-line error for it."""

from __future__ import annotations

import yaml

from momentum_jax import cli

BASE = {
  "problem": {"name": "quadratic_trainable:quadratic"},
  "hyperparameters": {"learning_rate": [0.1]},
  "train": {"steps": 10, "log_every": 5},
}


def check_fails(config, tmp_path, capsys) -> str:
  """The command's one-line error for ``config`` (written as YAML), checked to be one."""
  path = tmp_path / "sweep.yaml"
  path.write_text(yaml.safe_dump(config))
  code = cli.main(["check", str(path)])
  err = capsys.readouterr().err.strip()
  assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
  return err


# The columns the results give a meaning of their own (and the prefixes of the metrics'): a
# hyperparameter of one of these names overwrote the column, or crashed the report.
