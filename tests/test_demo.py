"""The demo (docs/getting_started.md) runs and tells the truth about the regression."""

from __future__ import annotations

import numpy as np
import pytest

from momentum_jax import cli, demo


def test_demo_fits_the_regression_with_every_optimizer():
  rows = demo.run(steps=1000)
  optimum = rows[-1]
  assert optimum["optimizer"].startswith("least squares")
  np.testing.assert_allclose([optimum["w"], optimum["b"]], [3.0, 2.0], atol=0.05)
  by_name = {row["optimizer"].split(" (")[0]: row for row in rows[:-1]}
  assert len(by_name) == len(demo.contenders())
  for row in rows[:-1]:
    assert row["steps_to_1pct"] is not None, row
    np.testing.assert_allclose(row["final_loss"], optimum["final_loss"], rtol=1e-2)
  # The textbook claim, measured: heavy-ball momentum reaches the optimum in
  # far fewer steps than plain GD at the same learning rate.
  assert by_name["momentum heavy-ball"]["steps_to_1pct"] * 3 < by_name["gd"]["steps_to_1pct"]


def test_cli_demo_prints_the_table(capsys):
  assert cli.main(["demo", "--steps", "300"]) == 0
  out = capsys.readouterr().out
  for name in ("gd", "momentum ema", "nesterov", "rmsprop", "adagrad", "adam", "least squares"):
    assert name in out


def test_cli_refuses_bad_steps(capsys):
  with pytest.raises(SystemExit) as exit_:
    cli.main(["demo", "--steps", "0"])
  assert exit_.value.code == 2
  assert "must be a positive integer" in capsys.readouterr().err
