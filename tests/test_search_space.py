"""Search spaces: ranges, the search: key, the sampled points and their errors."""

import json

import numpy as np
import pytest
from scipy.stats import qmc

from momentum_jax import cli, sweep
from momentum_jax.sweep import _plan
from momentum_jax.sweep._config import search_record

LR, BETA = (1e-3, 0.3), (0.5, 0.95)


def _config(search=None, seeds=1, **optimizer):
  raw = {
    "problem": {"name": "linear_regression"},
    "optimizer": {
      "name": "momentum",
      "ema": False,
      "learning_rate": {"loguniform": list(LR)},
      "beta": {"uniform": list(BETA)},
      **optimizer,
    },
    "train": {"steps": 4, "log_every": 2},
    "seeds": seeds,
  }
  if search is not None:
    raw["search"] = search
  return raw


def _points(method="quasirandom", samples=8, seed=0, **optimizer):
  config = sweep.load_config(
    _config({"method": method, "samples": samples, "seed": seed}, **optimizer)
  )
  return config.optimizers[0].samples


def test_quasirandom_points_are_scipys_scrambled_halton_scaled_to_the_ranges():
  points = _points(samples=8, seed=3)
  unit = qmc.Halton(2, scramble=True, seed=3).random(8)
  # By hand: loguniform is uniform in log(lr), uniform is affine.
  np.testing.assert_allclose(
    points["learning_rate"], np.exp(np.log(LR[0]) + unit[:, 0] * np.log(LR[1] / LR[0])), rtol=1e-12
  )
  np.testing.assert_allclose(points["beta"], BETA[0] + unit[:, 1] * (BETA[1] - BETA[0]), rtol=1e-12)


def test_loguniform_points_are_in_the_range_and_uniform_in_log_scale():
  points = _points(method="random", samples=400, seed=1)["learning_rate"]
  assert np.all((points >= LR[0]) & (points <= LR[1]))
  position = np.log(points / LR[0]) / np.log(LR[1] / LR[0])
  # Uniform in log scale: a tenth of the points in each tenth of the log range.
  counts, _ = np.histogram(position, bins=10, range=(0, 1))
  assert counts.min() > 20 and counts.max() < 60
  # ... and not uniform in the value itself: most points are below the middle value.
  assert np.mean(points < (LR[0] + LR[1]) / 2) > 0.7


def test_random_points_are_numpys_and_the_same_seed_draws_the_same_points():
  unit = np.random.default_rng(5).random((6, 2))
  np.testing.assert_allclose(
    _points("random", 6, 5)["beta"], BETA[0] + unit[:, 1] * (BETA[1] - BETA[0]), rtol=1e-12
  )
  for method in ("random", "quasirandom"):
    same, again, other = (_points(method, 6, s)["learning_rate"] for s in (5, 5, 6))
    np.testing.assert_array_equal(same, again)
    assert not np.any(np.isclose(same, other))


def test_lists_cross_with_the_samples_and_seeds_vary_fastest():
  config = sweep.load_config(
    _config(
      {"method": "quasirandom", "samples": 4, "seed": 0},
      seeds=3,
      schedule={"name": "step_decay", "decay_rate": [0.5, 0.9], "step_size": 2},
    )
  )
  assert config.num_configs == 4 * 2 * 3
  (group,) = _plan.groups(config)
  assert len(group.seeds) == 24
  np.testing.assert_array_equal(group.seeds, np.tile([0, 1, 2], 8))
  drawn = config.optimizers[0].samples
  # Each point of the samples meets each value of the list.
  pairs = set(zip(group.values["schedule.decay_rate"], group.values["learning_rate"]))
  assert len(pairs) == 8
  assert pairs == {(r, lr) for r in (0.5, 0.9) for lr in drawn["learning_rate"]}
  # A point's values stay together.
  index = {lr: i for i, lr in enumerate(drawn["learning_rate"])}
  np.testing.assert_array_equal(
    group.values["beta"], drawn["beta"][[index[lr] for lr in group.values["learning_rate"]]]
  )


def test_schedule_ranges_are_sampled_jointly_with_the_optimizers():
  config = sweep.load_config(
    _config(
      {"method": "quasirandom", "samples": 5, "seed": 2},
      schedule={"name": "cosine_annealing", "t_max": {"uniform": [2, 10]}},
    )
  )
  spec = config.optimizers[0]
  assert list(spec.samples) == ["learning_rate", "beta", "schedule.t_max"]
  unit = qmc.Halton(3, scramble=True, seed=2).random(5)
  np.testing.assert_allclose(spec.samples["schedule.t_max"], 2 + 8 * unit[:, 2], rtol=1e-12)
  record = search_record(config)
  assert record["method"] == "quasirandom" and record["seed"] == 2
  assert record["groups"][spec.label]["ranges"]["beta"] == {"uniform": list(BETA)}
  assert len(record["groups"][spec.label]["points"]["schedule.t_max"]) == 5
  json.dumps(record)


def test_a_grid_is_the_default_search():
  config = sweep.load_config(_config(None, learning_rate=[0.1, 0.2], beta=0.9))
  assert config.search == sweep.SearchSpec("grid") and config.num_configs == 2


@pytest.mark.parametrize(
  "search, optimizer, path, message",
  [
    (None, {}, "optimizer.learning_rate", "add 'search: {method: quasirandom"),
    ({"method": "grid"}, {}, "optimizer.learning_rate", "the sweep's search is a grid"),
    (
      {"method": "random", "samples": 4},
      {"learning_rate": {"uniform": [0.3, 0.1]}},
      "optimizer.learning_rate.uniform",
      "low must be < high",
    ),
    (
      {"method": "random", "samples": 4},
      {"learning_rate": {"loguniform": [0.0, 0.1]}},
      "optimizer.learning_rate.loguniform",
      "low must be > 0",
    ),
    (
      {"method": "random", "samples": 4},
      {"learning_rate": {"uniform": [0.0, 0.1]}},
      "optimizer.learning_rate",
      "must be > 0",
    ),
    (
      {"method": "random", "samples": 4},
      {"beta": {"uniform": [0.5, 1.0]}},
      "optimizer.beta",
      "beta must be in [0, 1), got [0.5, 1.0]",
    ),
    (
      {"method": "random", "samples": 4},
      {"beta": {"unifrom": [0.5, 0.9]}},
      "optimizer.beta.unifrom",
      "did you mean 'uniform'?",
    ),
    (
      {"method": "random", "samples": 4},
      {"beta": {"uniform": [0.5]}},
      "optimizer.beta.uniform",
      "expected [low, high]",
    ),
    ({"method": "random", "samples": 0}, {}, "search.samples", "must be >= 1, got 0"),
    ({"method": "random"}, {}, "search.samples", "required"),
    ({"method": "quasirandom", "samples": 2, "seed": -1}, {}, "search.seed", ">= 0"),
    ({"method": "quasi"}, {}, "search.method", "did you mean 'quasirandom'?"),
    ({"method": "random", "samples": 2, "sed": 1}, {}, "search.sed", "did you mean 'seed'?"),
    (
      {"method": "grid", "samples": 2},
      {"learning_rate": 0.1, "beta": 0.9},
      "search.samples",
      "method grid takes no 'samples'",
    ),
    (
      {"method": "random", "samples": 2},
      {"learning_rate": 0.1, "beta": 0.9},
      "search.method",
      "no hyperparameter is one",
    ),
  ],
)
def test_errors_name_their_path(search, optimizer, path, message):
  with pytest.raises(sweep.ConfigError) as error:
    sweep.load_config(_config(search, **optimizer))
  assert error.value.path == path
  assert message in str(error.value)


def test_cli_reports_a_bad_range_in_one_line_with_status_2(tmp_path, capsys):
  config = tmp_path / "bad.yaml"
  config.write_text(
    json.dumps(_config({"method": "random", "samples": 2}, beta={"uniform": [0.9, 0.5]}))
  )
  assert cli.main(["sweep", str(config), "--quiet"]) == 2
  err = capsys.readouterr().err
  assert err == (
    "momentum-jax sweep: error: optimizer.beta.uniform: low must be < high, got [0.9, 0.5]\n"
  )
