"""The strategy seam: strategies alone (plain numpy), a user's own from YAML, Optuna under halving."""

from __future__ import annotations

import dataclasses

import numpy as np
import optuna
import pytest
import yaml

from _sweep_configs import HALVING, with_changes
from momentum_jax import sweep
from momentum_jax.sweep import strategies
from momentum_jax.sweep.strategies._optuna_study import JOURNAL_FILE
from momentum_jax.sweep._search import SchedulerSpec
from momentum_jax.sweep.strategies.halving import SuccessiveHalving

WIDTH = 2
LABEL = "momentum(ema=false)"
MEDIAN = with_changes(
  HALVING,
  train={"steps": 100, "log_every": 10},
  search={
    "method": "experiments.median_stopping:MedianStopping",
    "options": {"min_steps": 20, "every": 20},
  },
)


def _context(settings=9, seeds=2, steps=90, options=None, **changes):
  return dataclasses.replace(
    strategies.Context(
      label="g",
      index=0,
      first=0,
      values={"lr": np.repeat(np.arange(settings, dtype=float), seeds)},
      seeds=np.tile(np.arange(seeds), settings),
      seeds_per_setting=seeds,
      steps=steps,
      log_every=10,
      metric="final_loss",
      maximize=False,
      ranges={},
      options=options or SchedulerSpec("successive_halving", 3, 10),
    ),
    **changes,
  )


def _scores(rows, step, loss, diverged=None):
  logs = step // 10
  logged = {"train_loss": np.repeat(np.asarray(loss, float)[:, None], logs, axis=1)}
  return strategies.Scores(
    step, rows, logged, np.zeros(len(rows), bool) if diverged is None else diverged
  )


def test_successive_halving_alone_stops_what_its_rule_says_and_resumes_from_its_state():
  context = _context()
  scheduler = strategies.scheduled(context, strategies.Rows(context))
  batch = scheduler.ask(18)
  assert batch.rows.tolist() == list(range(18)) and scheduler.boundaries(batch) == [10, 30, 90]
  loss = np.random.default_rng(0).permutation(18).astype(float)
  decision = scheduler.observe(batch, _scores(batch.rows, 10, loss))
  going = SuccessiveHalving(3, 10).survivors(loss, np.zeros(18, bool), 2)
  assert isinstance(decision, strategies.Stop)
  assert sorted(decision.rows.tolist()) == sorted(set(range(18)) - set(going.tolist()))
  state = scheduler.state()
  again = strategies.scheduled(context, strategies.Rows(context))
  again.restore(state)
  assert again.ask(18) is None and scheduler.ask(18) is None  # the one batch was asked


def test_a_diverged_row_stops_its_setting_and_nan_ranks_last():
  context = _context(settings=3)
  scheduler = strategies.scheduled(context, strategies.Rows(context))
  batch = scheduler.ask(6)
  diverged = np.array([False, True, False, False, False, False])  # setting 0's second seed
  decision = scheduler.observe(batch, _scores(batch.rows, 10, [0, 0, 5, 5, 9, 9], diverged))
  assert sorted(decision.rows.tolist()) == [0, 1, 4, 5]  # 3 // 3 = 1 setting continues: 1


def test_the_median_stopping_rule_from_yaml_stops_what_the_rule_says(tmp_path):
  path = tmp_path / "median.yaml"
  path.write_text(yaml.safe_dump(MEDIAN))
  result = sweep.run(str(path), quiet=True, width=WIDTH)
  plain = sweep.run(with_changes(MEDIAN, search={"method": "grid"}), quiet=True, width=WIDTH)
  # The rule at step 20, on the plain sweep's curves (the same program until then):
  # a setting's best loss so far against the median of the others' running averages.
  curves = plain.curves[plain.curves["step"] <= 20]
  losses = curves.pivot(index="config_id", columns="step", values="train_loss").to_numpy()
  per_setting = losses.reshape(9, 2, -1).mean(axis=1)
  best, running = per_setting.min(axis=1), per_setting.mean(axis=1)
  expected = [i for i in range(9) if best[i] > np.median(np.delete(running, i))]
  stopped = result.summary[result.summary["stopped_at_step"] == 20]["config_id"] // 2
  assert sorted(set(stopped)) == expected and 0 < len(expected) < 9
  finished = result.summary[result.summary["stopped_at_step"] == 100]
  assert len(finished) > 0 and finished["final_loss"].notna().all()
  stopped_ids = result.summary.loc[result.summary["stopped_at_step"] == 20, "config_id"]
  late = result.curves[result.curves["step"] > 20]
  assert late[late["config_id"].isin(stopped_ids)]["train_loss"].isna().all()  # logs no more
  assert set(late["config_id"]) >= set(finished["config_id"])


@pytest.mark.parametrize(
  "method, message",
  [
    (
      "experiments.median_stopping:MedianStoping",
      r"search\.method: .*did you mean '.*:MedianStopping'",
    ),
    (
      "numpy:ndarray",
      r"search\.method: numpy:ndarray is .*not a subclass of "
      r"momentum_jax\.sweep\.strategies\.Strategy",
    ),
    ("no_such_package_anywhere:Thing", r"search\.method: .*no_such_package_anywhere"),
  ],
)
def test_a_bad_strategy_path_is_refused_naming_search_method(method, message):
  with pytest.raises(sweep.ConfigError, match=message):
    sweep.load_config(with_changes(MEDIAN, search={"method": method}))


def test_a_range_under_a_strategy_of_your_own_is_refused_saying_why():
  config = with_changes(MEDIAN, optimizer__learning_rate={"loguniform": [0.001, 1.0]})
  with pytest.raises(
    sweep.ConfigError,
    match=r"optimizer\.learning_rate: search\.method "
    r"experiments\.median_stopping:MedianStopping decides over the grid's rows",
  ):
    sweep.load_config(config)


def test_a_strategy_options_metric_the_problem_does_not_log_is_refused():
  config = with_changes(MEDIAN, search__options={"metric": "val_loss"})
  with pytest.raises(sweep.ConfigError, match=r"search\.options\.metric: .*logs no 'val_loss'"):
    sweep.run(config, quiet=True)


class _Confused(strategies.Rows):
  """Answers a boundary with something that is no decision."""

  def intervals(self):
    return [10]

  def boundaries(self, batch):
    return [10, self.context.steps]

  def observe(self, batch, scores):
    return "stop them all"


class _Twice(strategies.Rows):
  """Asks the first rows again once they are trained."""

  def tell(self, batch, outcome):
    self._asked[:] = False  # forgets: the next ask repeats rows
    self._batches += 1


class _Unsorted(strategies.Rows):
  def ask(self, capacity):
    batch = super().ask(capacity)
    return None if batch is None else dataclasses.replace(batch, rows=batch.rows[::-1])


class _OffSegment(strategies.Rows):
  def boundaries(self, batch):
    return [15, self.context.steps]  # segments of 20 (log_every 10, no intervals declared)


class _StrayExploit(strategies.Rows):
  def intervals(self):
    return [20]

  def boundaries(self, batch):
    return [20, self.context.steps]

  def observe(self, batch, scores):
    sources = scores.rows.copy()
    sources[0] = 10_000  # no such row
    return strategies.Exploit(sources, {n: np.ones(len(scores.rows)) for n in batch.values})


class _OpaqueState(strategies.Rows):
  def state(self):
    return {"rng": np.random.default_rng(0)}  # not JSON: a saved sweep could not resume


@pytest.mark.parametrize(
  "strategy, message",
  [
    (_OpaqueState, r"_OpaqueState\.state\(\) must be JSON-able \(saved to resume the sweep\)"),
    (_Confused, r"_Confused\.observe returned 'stop them all': a Continue, Stop or Exploit"),
    (_Twice, r"_Twice\.ask: rows \[0, 1, 2, 3, 4, 5, 6, 7, 8, 9\] were trained already"),
    (_Unsorted, r"_Unsorted\.ask: rows must be distinct, ascending"),
    (
      _OffSegment,
      r"_OffSegment\.boundaries returned \[15\], not multiples of 20 steps.*"
      r"intervals\(\)",
    ),
    (
      _StrayExploit,
      r"_StrayExploit\.observe: Exploit\.sources must give, for each of the 18 "
      r"rows still training",
    ),
  ],
)
def test_a_strategy_answering_wrong_is_told_what_it_may_answer(
  strategy, message, monkeypatch, tmp_path
):
  import sys
  import types

  module = types.ModuleType("odd_strategies")
  setattr(module, strategy.__name__, strategy)
  monkeypatch.setitem(sys.modules, "odd_strategies", module)
  config = with_changes(MEDIAN, search={"method": f"odd_strategies:{strategy.__name__}"})
  with pytest.raises(ValueError, match=message):
    sweep.run(config, tmp_path, quiet=True)


def test_successive_halving_over_optuna_reports_each_rung_and_prunes_the_stopped(tmp_path):
  config = with_changes(
    HALVING,
    optimizer__learning_rate={"loguniform": [0.001, 1.0]},
    search={
      "method": "optuna",
      "trials": 6,
      "batch": 3,
      "seed": 0,
      "scheduler": {"name": "successive_halving", "eta": 3, "min_steps": 10},
    },
  )
  result = sweep.run(config, tmp_path, quiet=True, width=WIDTH)
  storage = optuna.storages.JournalStorage(
    optuna.storages.journal.JournalFileBackend(str(tmp_path / JOURNAL_FILE))
  )
  trials = optuna.load_study(study_name=LABEL, storage=storage).trials
  summary = result.summary
  for trial in trials:
    rows = summary[summary["trial"] == trial.number]
    stopped = int(rows["stopped_at_step"].iloc[0])
    assert trial.state.name == ("COMPLETE" if stopped == 90 else "PRUNED")
    for step, value in trial.intermediate_values.items():  # the rung's mean over the seeds
      curve = result.curves[
        result.curves["config_id"].isin(rows["config_id"]) & (result.curves["step"] == step)
      ]
      assert value == pytest.approx(curve["train_loss"].mean(), rel=1e-15)
    assert sorted(trial.intermediate_values) == [r for r in (10, 30) if r <= stopped]
  assert sum(t.state.name == "COMPLETE" for t in trials) == 2  # one per batch of 3


def test_the_docs_show_the_median_stopping_rule_as_it_runs():
  from pathlib import Path

  root = Path(__file__).resolve().parent.parent
  code = (root / "experiments" / "median_stopping.py").read_text()
  page = (root / "docs" / "choosing_a_search.md").read_text()
  section = page[page.index("## Write your own search") :]
  shown = section[
    section.index("```python\n") + 10 : section.index("```\n", section.index("```python"))
  ]
  assert shown == code[code.index("import numpy") :]
