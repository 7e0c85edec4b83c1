"""The interactive views: the Optuna journal of every sweep, report.html, the dashboard command.

The journal is read back through Optuna; the page and the dashboard through a
real browser (headless Chromium driven by selenium), which reads back what it
rendered: the trial count and a plotted value, compared with the summary.
"""

import json
import logging
import math
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pandas as pd
import pytest

from momentum_jax import cli, report, results, sweep
from momentum_jax.report import _html
from momentum_jax.sweep.strategies._optuna_study import JOURNAL_FILE

from _sweep_configs import REGRESSION, with_changes
from _sweep_fixture import STEPS, make_result

# The fixture's 24 runs: per optimizer, 3 learning rates x 2 values of its
# second hyperparameter, 2 seeds each: 6 configurations a group.
CONFIGURATIONS = {"momentum": 6, "rmsprop": 6}


def _storage(out_dir):
  return optuna.storages.JournalStorage(
    optuna.storages.journal.JournalFileBackend(str(Path(out_dir) / JOURNAL_FILE))
  )


def _studies(out_dir) -> dict[str, optuna.Study]:
  storage = _storage(out_dir)
  return {
    s.study_name: optuna.load_study(study_name=s.study_name, storage=storage)
    for s in optuna.get_all_study_summaries(storage)
  }


def _with_halving(result, stopped_lr=0.001, at=30):
  """The fixture as if a scheduler had stopped every learning rate ``stopped_lr`` at step ``at``."""
  summary = result.summary.copy()
  stopped = summary["learning_rate"] == stopped_lr
  summary["stopped_at_step"] = pd.array([at if s else 50 for s in stopped], dtype="Int64")
  return results.SweepResult(summary, result.curves, result.manifest)


# --------------------------------------------------------------------------- the journal


def test_every_group_is_a_study_and_every_configuration_a_trial(tmp_path):
  result = _with_halving(make_result())
  written = report.save(result, tmp_path, figures=False)
  assert written["journal"] == tmp_path / JOURNAL_FILE
  studies = _studies(tmp_path)
  assert {name: len(s.trials) for name, s in studies.items()} == CONFIGURATIONS
  summary = result.summary
  for name, study in studies.items():
    assert study.direction == optuna.study.StudyDirection.MINIMIZE  # final_loss
    assert study.user_attrs["momentum_jax"] == "record"
    second = "beta" if name == "momentum" else "decay"
    for trial in study.trials:
      rows = summary[summary["config_id"].isin(trial.user_attrs["config_ids"])]
      assert trial.user_attrs["seeds"] == [0, 1] and (rows["optimizer"] == name).all()
      assert trial.params == {
        "learning_rate": rows["learning_rate"].iloc[0],
        second: rows[second].iloc[0],
      }
      # A list or logspace: the values the group took, as a category.
      assert trial.distributions["learning_rate"] == optuna.distributions.CategoricalDistribution(
        (0.001, 0.01, 0.1)
      )
      if rows["diverged"].any():
        expected = "FAIL"
      elif (rows["stopped_at_step"] < 50).all():
        expected = "PRUNED"
      else:
        expected = "COMPLETE"
      assert trial.state.name == expected
      if expected == "COMPLETE":
        # Two seeds' mean: one addition and a halving, within an ulp of the exact mean.
        assert math.isclose(trial.value, rows["final_loss"].mean(), rel_tol=4e-16)
      # The curve's mean over the seeds that did not diverge, where finite.
      healthy = rows[~rows["diverged"]] if not rows["diverged"].all() else rows
      curves = result.curves[result.curves["config_id"].isin(healthy["config_id"])]
      means = curves.groupby("step")["train_loss"].mean()
      expected_curve = {int(s): v for s, v in means.items() if math.isfinite(v)}
      assert trial.intermediate_values.keys() == expected_curve.keys()
      for step, value in trial.intermediate_values.items():
        assert math.isclose(value, expected_curve[step], rel_tol=4e-16)
  states = [t.state.name for s in studies.values() for t in s.trials]
  # momentum lr=0.1 β=0.9 lost a seed; rmsprop lr=0.1 decay=0.99 both; lr=0.001 stopped.
  assert states.count("FAIL") == 2 and states.count("PRUNED") == 4


def test_accuracies_are_maximized_and_the_best_trial_is_the_reports_best(tmp_path):
  result = make_result(classification=True)
  report.save(result, tmp_path, figures=False)
  best = report.best_table(result.summary, n=1).iloc[0]
  studies = _studies(tmp_path)
  study = studies[best["optimizer"]]
  assert study.direction == optuna.study.StudyDirection.MAXIMIZE
  assert study.best_trial.params["learning_rate"] == best["learning_rate"]
  assert math.isclose(study.best_value, best["val_accuracy_mean"], rel_tol=4e-16)
  assert max(s.best_value for s in studies.values()) == study.best_value


def test_a_searched_range_is_its_distribution_stretched_to_a_point_rounded_past_an_end(tmp_path):
  result = make_result()
  below = math.nextafter(0.1, 0.0)  # as if the sampler's exp() had rounded 0.1 up an ulp
  search = {
    "method": "random",
    "groups": {"momentum": {"ranges": {"learning_rate": {"loguniform": [0.001, below]}}}},
  }
  result = results.SweepResult(
    result.summary, result.curves, {**result.manifest.to_dict(), "search": search}
  )
  report.save(result, tmp_path, figures=False)
  studies = _studies(tmp_path)
  for trial in studies["momentum"].trials:
    assert trial.distributions["learning_rate"] == optuna.distributions.FloatDistribution(
      0.001, 0.1, log=True
    )
  # A group without a recorded range: the values it took.
  assert studies["rmsprop"].trials[0].distributions["learning_rate"] == (
    optuna.distributions.CategoricalDistribution((0.001, 0.01, 0.1))
  )


def test_a_searchs_own_studies_are_kept_and_saving_again_replaces_only_the_record(tmp_path):
  search = optuna.create_study(study_name="momentum", storage=_storage(tmp_path))
  search.add_trial(
    optuna.trial.create_trial(
      params={"learning_rate": 0.5},
      distributions={"learning_rate": optuna.distributions.FloatDistribution(0.1, 1.0)},
      value=1.0,
    )
  )
  result = make_result()
  report.save(result, tmp_path, figures=False)
  report.save(result, tmp_path, figures=False)  # a resumed or extended sweep saves again
  studies = _studies(tmp_path)
  assert sorted(studies) == ["momentum", "momentum (record)", "rmsprop"]
  assert (
    len(studies["momentum"].trials) == 1 and "momentum_jax" not in studies["momentum"].user_attrs
  )
  assert len(studies["momentum (record)"].trials) == CONFIGURATIONS["momentum"]


def test_an_optuna_search_with_halving_keeps_its_studies_and_its_record_agrees(tmp_path):
  label = "momentum(ema=false)"
  config = {
    **with_changes(
      REGRESSION,
      optimizer__learning_rate={"loguniform": [0.003, 0.3]},
      optimizer__beta=[0.0, 0.9],
      train__steps=60,
      train__log_every=20,
    ),
    "search": {
      "method": "optuna",
      "sampler": "tpe",
      "trials": 6,
      "batch": 6,
      "seed": 0,
      "metric": "final_loss",
      "scheduler": {"name": "successive_halving", "eta": 2, "min_steps": 20},
    },
  }
  result = sweep.run(config, tmp_path, quiet=True)
  report.save(result, tmp_path, figures=False)
  studies = _studies(tmp_path)
  assert sorted(studies) == [label, f"{label} (record)"]
  searched, record = studies[label].trials, studies[f"{label} (record)"].trials
  assert len(record) == len(searched) == 6
  by_number = {t.user_attrs["trial"]: t for t in record}
  for trial in searched:
    mine = by_number[trial.number]
    assert mine.params == trial.params and mine.state == trial.state
    assert mine.distributions["learning_rate"] == optuna.distributions.FloatDistribution(
      0.003, 0.3, log=True
    )
    if trial.state.name == "COMPLETE":
      # Both the mean of the same two float32 values, summed in either order.
      assert math.isclose(mine.value, trial.value, rel_tol=4e-16)
  assert any(t.state.name == "PRUNED" for t in record)


def test_without_plotly_or_optuna_the_other_files_are_written_and_the_log_says_why(
  tmp_path, monkeypatch, caplog
):
  monkeypatch.setitem(sys.modules, "plotly", None)
  monkeypatch.setitem(sys.modules, "optuna", None)
  with caplog.at_level(logging.INFO, logger="momentum_jax.report._save"):
    written = report.save(make_result(), tmp_path, figures=False)
  assert written["html"] is None and written["journal"] is None
  assert (tmp_path / "summary.md").is_file() and not (tmp_path / "report.html").exists()
  assert caplog.text.count("pip install 'momentum_jax[dashboard]'") == 2


def test_the_dashboard_command_names_the_extra_it_needs(tmp_path, monkeypatch, capsys):
  monkeypatch.setitem(sys.modules, "optuna_dashboard", None)
  assert cli.main(["dashboard", str(tmp_path)]) == 2
  assert "pip install 'momentum_jax[dashboard]'" in capsys.readouterr().err


def test_the_dashboard_command_says_what_a_folder_lacks(tmp_path, capsys):
  assert cli.main(["dashboard", str(tmp_path / "nowhere")]) == 2
  assert "no sweep result folder" in capsys.readouterr().err


# --------------------------------------------------------------------------- report.html


def test_the_page_loads_nothing_from_the_network(tmp_path):
  report.save(make_result(), tmp_path, figures=False)
  page = (tmp_path / _html.HTML_FILE).read_text()
  # The browser test checks the requests the page makes; here, what it names.
  assert not re.search(r"<script[^>]+src=", page) and "<link" not in page
  assert len(page) > 1_000_000  # plotly.js itself, inlined
  for section in ("ranking-table", "parallel-0", "parallel-1", "heatmap-0", "heatmap-1", "curves"):
    assert f'id="{section}"' in page


# --------------------------------------------------------------------------- in a browser


def _chromium() -> tuple[str, str] | None:
  browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
  driver = shutil.which("chromedriver")
  return (browser, driver) if browser and driver else None


@pytest.fixture(scope="module")
def browser():
  """Headless Chromium through selenium (its chromedriver found on PATH, never downloaded)."""
  found = _chromium()
  if found is None:
    pytest.skip(
      "no Chromium with its chromedriver on PATH (Debian: apt-get install chromium "
      "chromium-driver; .ci/run installs them)"
    )
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service

  options = webdriver.ChromeOptions()
  options.binary_location = found[0]
  for argument in (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--window-size=1280,2400",
    "--enable-unsafe-swiftshader",
  ):
    options.add_argument(argument)
  options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # the requests made
  driver = webdriver.Chrome(service=Service(found[1]), options=options)
  yield driver
  driver.quit()


def _requested(driver) -> set[str]:
  """The URLs the browser requested since the last call (Chrome's network log)."""
  events = [json.loads(entry["message"])["message"] for entry in driver.get_log("performance")]
  return {
    e["params"]["request"]["url"]
    for e in events
    if e["method"] == "Network.requestWillBeSent"
    and not e["params"]["request"]["url"].startswith("data:")
  }


def _wait(driver, condition, timeout=60):
  from selenium.webdriver.support.ui import WebDriverWait

  return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)


# Plotly's hover on a trace's last point (the event handler a mouse would
# trigger), then the label it drew.
_HOVER_LAST_POINT = """
const gd = document.getElementById(arguments[0]);
Plotly.Fx.hover(gd, [{curveNumber: arguments[1], pointNumber: gd.data[arguments[1]].x.length - 1}]);
const label = gd.querySelector('.hoverlayer .hovertext');
return label ? label.textContent : null;
"""


def test_report_html_in_chromium_shows_every_configuration_and_the_ranked_values(tmp_path, browser):
  result = make_result()
  report.save(result, tmp_path, figures=False)
  ranked = results.rank_configurations(result.summary)
  browser.get_log("performance")  # what earlier pages asked for
  browser.get((tmp_path / _html.HTML_FILE).as_uri())
  _wait(
    browser,
    lambda d: d.execute_script(
      "return document.querySelectorAll('.js-plotly-plot .main-svg').length > 0 && "
      "document.querySelectorAll('#curves .scatterlayer .trace').length"
    ),
  )
  shown = browser.execute_script("""return {
      configurations: document.getElementById('configurations').textContent,
      rows: document.querySelectorAll('#ranking-table tbody tr').length,
      traces: document.querySelectorAll('#curves .scatterlayer .trace').length,
      axes: document.querySelectorAll('#parallel-0 .y-axis').length,
      heatmaps: document.querySelectorAll('[id^=heatmap-] .hm, [id^=heatmap-] image').length,
      first: document.querySelector('#ranking-table tbody tr').innerText};""")
  browser.save_screenshot(str(tmp_path / "report.png"))
  assert _requested(browser) == {(tmp_path / _html.HTML_FILE).as_uri()}  # nothing from a network
  assert int(shown["configurations"]) == sum(CONFIGURATIONS.values())
  # Ranked: every configuration with a seed that did not diverge (the whole cell is out).
  assert shown["rows"] == shown["traces"] == len(ranked) == 11
  assert shown["axes"] == 3  # learning_rate, beta, final_loss_mean
  assert shown["heatmaps"] >= 2
  best = ranked.iloc[0]
  assert shown["first"].split("\t")[:3] == ["momentum", "0.01", "0"]
  browser.execute_script("document.getElementById('curves').scrollIntoView()")
  hover = browser.execute_script(_HOVER_LAST_POINT, "curves", 0)
  browser.save_screenshot(str(tmp_path / "report_hover.png"))
  assert hover.startswith("momentum lr=0.01 β=0") and f"step {STEPS[-1]}" in hover
  plotted = float(re.search(r"train_loss=([-+0-9.e]+)", hover).group(1))
  # Written with 6 significant digits: within half a unit of the sixth.
  assert math.isclose(plotted, best["final_loss_mean"], rel_tol=5e-6)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture
def dashboard(tmp_path):
  """``momentum-jax dashboard DIR --port N`` on the fixture's saved result: its URL."""
  report.save(make_result(), tmp_path, figures=False)
  port = _free_port()
  server = subprocess.Popen(
    [sys.executable, "-m", "momentum_jax", "dashboard", str(tmp_path), "--port", str(port)],
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
  )
  url = f"http://127.0.0.1:{port}"
  deadline = time.monotonic() + 120  # imports jax first: seconds on a loaded machine
  while True:
    try:
      urllib.request.urlopen(f"{url}/api/studies", timeout=2).close()
      break
    except OSError:
      if server.poll() is not None or time.monotonic() > deadline:
        server.kill()
        pytest.fail(f"the dashboard did not start: {server.communicate()[0]}")
      time.sleep(0.3)
  yield url
  server.terminate()
  server.wait(timeout=30)


def test_the_dashboard_in_chromium_shows_the_studies_trials_and_best_value(
  tmp_path, browser, dashboard
):
  result = make_result()
  storage = _storage(tmp_path)
  for name, count in CONFIGURATIONS.items():
    study_id = storage.get_study_id_from_name(name)
    browser.get(f"{dashboard}/dashboard/studies/{study_id}/trials")
    # "0 Trials" is the page loading the study (it had the previous one's page before).
    text = _wait(
      browser,
      lambda d: (
        (m := re.search(r"(\d+) Trials", d.find_element("tag name", "body").text))
        and int(m.group(1)) > 0
        and m
      ),
    )
    browser.save_screenshot(str(tmp_path / f"dashboard_{name}_trials.png"))
    assert int(text.group(1)) == count
    browser.get(f"{dashboard}/dashboard/studies/{study_id}")
    best = _wait(
      browser,
      lambda d: re.search(
        r"Best Trial \(number=(\d+)\)\s+([-+0-9.e]+)", d.find_element("tag name", "body").text
      ),
    )
    browser.save_screenshot(str(tmp_path / f"dashboard_{name}.png"))
    ranked = report.best_table(result.summary[result.summary["optimizer"] == name], n=1)
    # The dashboard prints the stored double in full: the report's mean, to the last ulp.
    assert math.isclose(float(best.group(2)), ranked["final_loss_mean"].iloc[0], rel_tol=4e-16)
    trial = optuna.load_study(study_name=name, storage=storage).trials[int(best.group(1))]
    assert trial.params["learning_rate"] == ranked["learning_rate"].iloc[0]
