"""Optuna's search: batches of trials asked, trained by one program, told; its study resumed."""

import sys

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

from momentum_jax import cli, report, sweep
from momentum_jax.report import plots
from momentum_jax.sweep import _plan, _search_schema
from momentum_jax.sweep.strategies import _optuna_study as _optuna
from momentum_jax.sweep.strategies._optuna_study import JOURNAL_FILE
from momentum_jax.sweep.strategies.optuna import OptunaSearch

from _sweep_configs import REGRESSION, with_changes

LABEL = "momentum(ema=false)"
LR = [0.003, 0.3]
BETAS = [0.0, 0.5, 0.9]
# 6 trials of heavy-ball momentum on the regression, asked 4 at a time (the
# last batch short), each with 2 seeds: 12 rows, chunks of 8.
OPTUNA = {
  **with_changes(REGRESSION, optimizer__learning_rate={"loguniform": LR}, optimizer__beta=BETAS),
  "search": {"method": "optuna", "sampler": "tpe", "trials": 6, "batch": 4, "seed": 0},
}
WIDTH = 8  # pinned: the plain sweep compared with it trains at the same width


def _run(config, out_dir=None, **changes):
  return sweep.run(with_changes(config, **changes), out_dir, quiet=True, width=WIDTH)


@pytest.fixture(scope="module")
def searched():
  """The uninterrupted search, in memory, and the rows of each chunk it trained."""
  chunks = []
  original = OptunaSearch.ask

  def spy(self, capacity):
    batch = original(self, capacity)
    if batch is not None:
      chunks.append(len(batch.rows))
    return batch

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(OptunaSearch, "ask", spy)
    result = _run(OPTUNA)
  return result, chunks


def _trials(result):
  return result.manifest["search"]["groups"][LABEL]["trials"]


def _by_trial(summary):
  return summary.groupby("trial")


def test_each_trial_is_told_the_mean_over_its_seeds_of_the_summary_metric(searched):
  result, _ = searched
  search = result.manifest["search"]
  assert (search["sampler"], search["metric"], search["direction"]) == (
    "tpe",
    "final_loss",
    "minimize",
  )  # the regression logs no validation loss
  trials = _trials(result)
  assert [t["state"] for t in trials] == ["COMPLETE"] * 6
  means = _by_trial(result.summary)["final_loss"].mean()
  np.testing.assert_allclose(
    [t["value"] for t in trials], means.loc[[t["number"] for t in trials]], rtol=1e-12
  )
  summary = result.summary
  assert len(summary) == 12 and summary["trial"].tolist() == np.repeat(np.arange(6), 2).tolist()
  for trial in trials:
    rows = summary[summary["trial"] == trial["number"]]
    assert rows["seed"].tolist() == [0, 1]
    for name, value in trial["params"].items():
      assert rows[name].tolist() == [value, value]
    assert trial["params"]["beta"] in BETAS and LR[0] <= trial["params"]["learning_rate"] <= LR[1]
  # The best trial is the best setting of the report.
  best = min(trials, key=lambda t: t["value"])
  assert report.best_table(summary, n=1)["trial"].tolist() == [best["number"]]
  assert "trial" in report.format_report(result)


def test_a_batch_of_trials_per_chunk_and_one_compilation_for_the_group(searched):
  result, chunks = searched
  assert chunks == [4 * 2, 2 * 2]  # a batch of 4 trials, then the short last batch of 2
  assert result.manifest["compilations"] == 1
  assert result.manifest["chunk_size"] == {LABEL: 8}
  assert [t["slot"] for t in _trials(result)] == list(range(6))
  # Each batch's sampler is seeded afresh, and from its batch: the second asks other values.
  assert len({t["params"]["learning_rate"] for t in _trials(result)}) == 6


def test_a_trials_curves_equal_a_plain_sweep_of_its_values_bit_for_bit(searched):
  result, _ = searched
  tried = sorted({t["params"]["learning_rate"] for t in _trials(result)})
  plain = _run(REGRESSION, optimizer__learning_rate=tried, optimizer__beta=BETAS)
  keys = ["learning_rate", "beta", "seed"]
  ids = result.summary[["config_id", *keys]].merge(
    plain.summary[["config_id", *keys]], on=keys, suffixes=("", "_plain")
  )
  assert len(ids) == 12
  for row in ids.itertuples():
    ours = result.curves[result.curves["config_id"] == row.config_id]
    theirs = plain.curves[plain.curves["config_id"] == row.config_id_plain]
    np.testing.assert_array_equal(ours["train_loss"].to_numpy(), theirs["train_loss"].to_numpy())


def test_the_same_seed_asks_the_same_trials():
  """QMC's trials depend on its seed alone: a study of the same space asks them again.

  (TPE's, which depend on the values told, are asked again by the resumed
  search below.)
  """
  run = _trials(_run(OPTUNA, search__sampler="qmc", search__seed=3))
  space = _optuna.distributions(sweep.load_config(OPTUNA).optimizers[0])

  def asked(seed):
    study = optuna.create_study(sampler=_optuna.make_sampler("qmc", seed, 0))
    return [study.ask(space).params for _ in range(6)]

  assert asked(3) == [t["params"] for t in run]
  assert asked(4) != asked(3)


def test_cmaes_asks_what_a_plain_optuna_loop_of_the_same_batches_asks():
  """CMA-ES, whose trials depend on the values told: the sweep's asks and tells, replayed."""
  run = _trials(_run(OPTUNA, search__sampler="cmaes", search__seed=2))
  assert [t["state"] for t in run] == ["COMPLETE"] * 6
  space = _optuna.distributions(sweep.load_config(OPTUNA).optimizers[0])
  storage = optuna.storages.InMemoryStorage()
  name = optuna.create_study(storage=storage, direction="minimize").study_name
  told = {t["number"]: t["value"] for t in run}
  asked = []
  for first, size in ((0, 4), (4, 2)):  # the sweep's batches, each its own seeded sampler
    batch = optuna.load_study(
      study_name=name, storage=storage, sampler=_optuna.make_sampler("cmaes", 2, first)
    )
    trials = [batch.ask(space) for _ in range(size)]
    asked += [trial.params for trial in trials]
    for trial in trials:
      batch.tell(trial.number, told[trial.number])
  assert asked == [t["params"] for t in run]
  assert all(LR[0] <= p["learning_rate"] <= LR[1] and p["beta"] in BETAS for p in asked)


class _Stop(Exception):
  """Stands for the run being killed."""


def _journal_study(out_dir):
  storage = optuna.storages.JournalStorage(
    optuna.storages.journal.JournalFileBackend(str(out_dir / JOURNAL_FILE))
  )
  return optuna.load_study(study_name=LABEL, storage=storage)


def test_a_stopped_search_resumes_its_study_without_training_a_saved_batch_again(
  tmp_path, monkeypatch, searched
):
  monkeypatch.setattr(plots, "write_figures", lambda result, out_dir: None)
  asked, told = OptunaSearch.ask, OptunaSearch.tell

  def stop(*args):
    raise _Stop()

  # Stopped once the first batch was saved, before its trials were told.
  monkeypatch.setattr(OptunaSearch, "tell", lambda *args: stop())
  with pytest.raises(_Stop):
    _run(OPTUNA, tmp_path)
  assert [t.state.name for t in _journal_study(tmp_path).trials] == ["RUNNING"] * 4
  # Stopped again once the second batch was asked, before it trained.
  monkeypatch.setattr(OptunaSearch, "tell", told)
  monkeypatch.setattr(OptunaSearch, "ask", lambda *args: (asked(*args), stop()))
  with pytest.raises(_Stop):
    _run(OPTUNA, tmp_path)
  assert [t.state.name for t in _journal_study(tmp_path).trials] == (
    ["COMPLETE"] * 4 + ["RUNNING"] * 2
  )
  monkeypatch.setattr(OptunaSearch, "ask", asked)
  result = _run(OPTUNA, tmp_path)
  # The first batch was told from its saved rows, not trained again.
  checkpoint = result.manifest["checkpoint"]
  assert (checkpoint["configs_trained"], checkpoint["configs_resumed"]) == (4, 8)
  # Trials 4 and 5, asked and left running, were taken up again: same numbers, same values.
  states = {t.number: t.state.name for t in _journal_study(tmp_path).trials}
  assert states == {n: "COMPLETE" for n in range(6)}
  # As the uninterrupted search: the same trials, values and tables, bit for bit.
  assert _trials(result) == _trials(searched[0])
  pd.testing.assert_frame_equal(result.summary, searched[0].summary)
  pd.testing.assert_frame_equal(result.curves, searched[0].curves)
  again = sweep.run(OPTUNA, tmp_path, quiet=True, width=WIDTH)
  assert again.manifest["checkpoint"]["configs_trained"] == 0
  assert _trials(again) == _trials(result)


def test_a_trial_whose_seeds_diverge_is_told_failed():
  result = _run(
    OPTUNA,
    optimizer__learning_rate={"loguniform": [50.0, 100.0]},
    search__trials=2,
    search__batch=2,
  )
  assert result.summary["diverged"].all()
  assert [(t["state"], t["value"]) for t in _trials(result)] == [("FAIL", None)] * 2


def test_ranges_and_lists_are_optunas_distributions_and_single_values_stay_fixed():
  config = sweep.load_config(
    with_changes(
      OPTUNA,
      optimizer__beta=0.9,
      optimizer__schedule={
        "name": "step_decay",
        "decay_rate": {"uniform": [0.5, 0.9]},
        "step_size": [10, 20],
      },
    )
  )
  (spec,) = config.optimizers
  assert config.num_configs == 6 * 2
  assert _optuna.distributions(spec) == {
    "schedule.step_size": optuna.distributions.CategoricalDistribution((10.0, 20.0)),
    "learning_rate": optuna.distributions.FloatDistribution(*LR, log=True),
    "schedule.decay_rate": optuna.distributions.FloatDistribution(0.5, 0.9),
  }
  (group,) = _plan.groups(config)
  assert group.values["beta"].tolist() == [0.9] * 12


def test_without_optuna_the_method_is_a_config_error_naming_the_extra(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "optuna", None)
  with pytest.raises(sweep.ConfigError, match=r"momentum_jax\[optuna\]") as error:
    sweep.load_config(OPTUNA)
  assert error.value.path == "search.method"
  path = tmp_path / "optuna.yaml"
  path.write_text(yaml.safe_dump(OPTUNA))
  assert cli.main(["sweep", str(path), "--quiet"]) == 2


@pytest.mark.parametrize(
  "changes, path, fragment",
  [
    ({"search__trials": 0}, "search.trials", ">= 1"),
    ({"search__batch": 0}, "search.batch", ">= 1"),
    ({"search__batch": 7}, "search.batch", "at most search.trials (6)"),
    ({"search__sampler": "bayes"}, "search.sampler", "tpe, gp, cmaes, qmc"),
    ({"search__trails": 6}, "search.trails", "did you mean 'trials'"),
    ({"search__samples": 6}, "search.samples", "optuna takes no 'samples'"),
    (
      {"search__scheduler": {"name": "hyperband", "min_steps": 25}},
      "search.scheduler.min_steps",
      "multiple of train.log_every",
    ),
    ({"search__seed": -1}, "search.seed", ">= 0"),
    ({"optimizer__learning_rate": 0.1, "optimizer__beta": 0.9}, "optimizer", "nothing to search"),
  ],
)
def test_bad_optuna_searches_name_their_path(changes, path, fragment):
  with pytest.raises(sweep.ConfigError) as error:
    sweep.load_config(with_changes(OPTUNA, **changes))
  assert error.value.path == path and fragment in str(error.value)


def test_trials_are_required():
  config = with_changes(OPTUNA)
  del config["search"]["trials"]
  with pytest.raises(sweep.ConfigError, match="required") as error:
    sweep.load_config(config)
  assert error.value.path == "search.trials"


@pytest.mark.parametrize("sampler, needed", [("gp", "torch"), ("cmaes", "cmaes")])
def test_a_sampler_whose_package_is_missing_names_it(monkeypatch, sampler, needed):
  monkeypatch.setattr(_search_schema, "_importable", lambda module: module != needed)
  with pytest.raises(sweep.ConfigError, match=f"pip install {needed}") as error:
    sweep.load_config(with_changes(OPTUNA, search__sampler=sampler))
  assert error.value.path == "search.sampler"


def test_a_metric_the_problem_does_not_log_is_refused_before_training():
  with pytest.raises(sweep.ConfigError, match="logs no 'val_accuracy'") as error:
    sweep.run(with_changes(OPTUNA, search__metric="val_accuracy"), quiet=True)
  assert error.value.path == "search.metric"
