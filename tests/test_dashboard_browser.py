"""report.html and the dashboard command in a real browser (headless Chromium driven by
selenium), which reads back what it rendered: the trial count and a plotted value,
compared with the summary.
"""

import json
import math
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import optuna
import pytest

from momentum_jax import report, results
from momentum_jax.report import _html

from _sweep_fixture import STEPS, make_result
from _journal import CONFIGURATIONS, _storage


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
