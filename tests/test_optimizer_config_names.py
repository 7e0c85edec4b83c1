"""An optimizer's arguments that the results could not hold, refused by ``check`` as by
``sweep``: one line naming the key, exit status 2, no traceback."""

from __future__ import annotations

import textwrap

import pytest

from _trainable_yaml import BASE, check_fails
from momentum_jax import cli, sweep

# optax.noisy_sgd's `seed` is the name under test; optax deprecates it for `key`.
pytestmark = pytest.mark.filterwarnings('ignore:"seed" is deprecated:DeprecationWarning')

TRAIN = "train: {steps: 10, log_every: 5}\nseeds: 1\n"


def _check(tmp_path, capsys, optimizer: str) -> tuple[int, str]:
  path = tmp_path / "sweep.yaml"
  path.write_text(f"problem: {{name: linear_regression}}\noptimizer: {optimizer}\n{TRAIN}")
  code = cli.main(["check", str(path)])
  out, err = capsys.readouterr()
  assert "Traceback" not in out + err
  return code, (out + err).strip()


def _refused(tmp_path, capsys, optimizer: str, says: str) -> str:
  code, line = _check(tmp_path, capsys, optimizer)
  assert code == 2, line
  assert len(line.splitlines()) == 1 and says in line, line
  return line


# Each a column the summary or the curves already give a meaning: run, the argument's
# values were written over it (config_id, optimizer, val_loss) or lost under it (final_loss).
@pytest.mark.parametrize(
  "argument, written",
  [
    ("config_id", "[0.0, 1.0]"),
    ("optimizer", "[0.0, 1.0]"),
    ("seed", "[2.0, 3.0]"),
    ("step", "[0.0, 1.0]"),
    ("final_loss", "0.5"),
    ("val_loss", "[0, 1]"),
    ("train_loss", "[0, 1]"),
    ("diverged_at_step", "1e-3"),
  ],
)
def test_an_argument_named_as_a_column_is_refused_at_its_key(tmp_path, capsys, argument, written):
  optimizer = (
    f"{{name: '_user_optimizers:sgd_with_options', learning_rate: 0.1, {argument}: {written}}}"
  )
  line = _refused(tmp_path, capsys, optimizer, f"optimizer.{argument}: ")
  assert "a column of the results" in line and "wrap _user_optimizers:sgd_with_options" in line


def test_an_argument_of_another_name_is_swept(tmp_path, capsys):
  optimizer = "{name: '_user_optimizers:sgd_with_options', learning_rate: 0.1, seeds_of: [0, 1]}"
  code, line = _check(tmp_path, capsys, optimizer)
  assert code == 0 and "2 configurations" in line, line


def test_the_refusal_names_the_group_of_a_list(tmp_path, capsys):
  optimizers = textwrap.dedent("""\
    [{name: sgd, learning_rate: 0.1},
     {name: '_user_optimizers:sgd_with_options', learning_rate: 0.1, step: [0.0, 1.0]}]""")
  path = tmp_path / "sweep.yaml"
  path.write_text(f"problem: {{name: linear_regression}}\noptimizers: {optimizers}\n{TRAIN}")
  with pytest.raises(sweep.ConfigError, match=r"^optimizers\[1\]\.step: "):
    sweep.load_config(path)


@pytest.mark.parametrize(
  "argument, values", [("seed", "[0, 1]"), ("seed", "[0, 1, 2]"), ("key", "[0, 1]")]
)
def test_noisy_sgds_seed_swept_is_refused_as_a_concrete_integer(tmp_path, capsys, argument, values):
  # optax.noisy_sgd makes its PRNG key of the seed (or key) in Python: a value per program,
  # as every integer argument a factory computes with (lookahead's sync_period, say).
  optimizer = f"{{name: optax.noisy_sgd, learning_rate: 0.1, {argument}: {values}}}"
  line = _refused(tmp_path, capsys, optimizer, f"optimizer.{argument}: optax.noisy_sgd cannot take")
  assert "give it one value" in line and "one group per value under optimizers:" in line


def test_noisy_sgds_seed_given_once_is_its_option():
  config = {
    "problem": {"name": "linear_regression"},
    "optimizer": {"name": "optax.noisy_sgd", "learning_rate": 0.1, "seed": 3},
    "train": {"steps": 10, "log_every": 5},
    "seeds": [0, 1],
  }
  summary = sweep.run(config, quiet=True).summary
  # The runs' seeds in the seed column; the optimizer's in its label.
  assert summary.seed.tolist() == [0, 1]
  assert set(summary.optimizer) == {"optax.noisy_sgd(seed=3)"}


@pytest.mark.parametrize(
  "section, path",
  [
    ("keep: {models: 1, metric: train_loss}", "keep.metric"),
    ("keep: {models: 1, metric: grad_norm}", "keep.metric"),
    ("search: {method: optuna, trials: 2, metric: train_loss}", "search.metric"),
  ],
)
def test_a_curve_named_as_the_metric_is_refused_as_a_curve(tmp_path, capsys, section, path):
  path_file = tmp_path / "sweep.yaml"
  path_file.write_text(
    "problem: {name: linear_regression}\noptimizer: {name: sgd, learning_rate: [0.1, 0.2]}\n"
    f"{TRAIN}{section}\n"
  )
  code = cli.main(["check", str(path_file)])
  out, err = capsys.readouterr()
  line = (out + err).strip()
  assert code == 2 and len(line.splitlines()) == 1 and "Traceback" not in line, line
  # It is logged, but as a curve: not "logs no", and the metrics that rank are named.
  assert f"{path}: " in line and "logs no" not in line, line
  assert "as a curve" in line and "rank by one of final_loss, best_loss" in line, line


def test_a_trainables_train_curve_named_as_the_metric_is_refused_as_a_curve(tmp_path, capsys):
  # quadratic_trainable's train returns a norm besides the loss: the curve train_norm.
  config = {**BASE, "keep": {"models": 1, "metric": "train_norm"}}
  line = check_fails(config, tmp_path, capsys)
  assert "keep.metric: quadratic logs 'train_norm' as a curve" in line, line
  assert "rank by one of final_loss, best_loss, val_distance" in line, line
