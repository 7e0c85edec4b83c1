"""Every search method's results equal those the engine gave before its rebuild.

``fixtures/make_engine_reference.py`` ran one small sweep per method (grid,
on-device minibatches, random, quasi-random, successive halving, Hyperband,
halving over random points, PBT, Optuna's TPE, a host stream) at a pinned
width on one CPU device, and kept its tables and the manifest's search and
scheduler sections in ``fixtures/engine_reference/``. Here each case runs
again and is compared:

- on the machine that made the reference (its ``machine.json`` equal to this
  one's: versions, CPU, ``XLA_FLAGS``, device count), bit for bit: every
  column, dtype, row and number of the summary and the curves (so
  ``stopped_at_step`` and ``lineage`` too), and the whole search record
  (Hyperband's brackets, PBT's exploits, Optuna's trials, their parameters
  and values);
- elsewhere, only what no rounding decides: the tables' columns and dtypes,
  the summary's rows and settings, the curves' rows where no scheduler cut
  them, the search record less what follows from training (PBT's exploits,
  Optuna's trials after the first batch). Training curves get no
  cross-machine tolerance: after tens of steps none can be derived.

To make the reference anew on another machine, run the script with the
engine it stands for (the commit that last wrote the folder:
``git log -1 -- tests/fixtures/engine_reference``), never with a changed one.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys

import numpy as np
import pandas as pd
import pytest
from _tolerances import U64

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fixtures"))
import make_engine_reference as reference  # noqa: E402

REGENERATE = (
  "to compare bit for bit here, make the reference on this machine with the engine "
  "it stands for: in a worktree of `git log -1 --format=%h -- "
  "tests/fixtures/engine_reference`, run `PYTHONPATH=. python "
  "tests/fixtures/make_engine_reference.py` and copy its engine_reference/ here"
)
# Summary columns that training decides; every other one is a key or a setting.
OUTCOME_PREFIXES = ("final_", "best_", "val_", "start_")
OUTCOMES = ("diverged", "diverged_at_step", "stopped_at_step", "lineage")
CURVE_KEYS = ["config_id", "optimizer", "step"]
# Settings on another machine. A drawn or spaced value is exp(l) or 10**l of
# l = a + u·(b − a), a and b the logs of a range's ends, |a|, |b| <= 10 here
# (ranges within [1e-4, 10]). On another CPU numpy may evaluate log, exp and
# power with other vector code: allowing each 16 ulp (32·U64 relative; libm
# and numpy's loops promise a few ulp), a and b are off by 320·U64 absolute,
# l by at most 3·320·U64 and its 3 roundings (30·U64): under 1000·U64. exp
# makes that a relative error as it is, 10**l times ln 10 < 2.31, and adds
# its own 32·U64: under 2400·U64 (2.7e-13). Linear ranges are off by less.
SETTINGS_RTOL = 2400 * U64


def _read(name: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
  folder = reference.OUTPUT / name
  record = json.loads((folder / "search.json").read_text(encoding="utf-8"))
  return (
    pd.read_parquet(folder / "summary.parquet"),
    pd.read_parquet(folder / "curves.parquet"),
    record,
  )


def _signature_differences() -> list[str]:
  """Where this machine's signature differs from the reference's (``a.b: theirs -> ours``)."""
  ours = reference.machine()
  theirs = json.loads((reference.OUTPUT / "machine.json").read_text(encoding="utf-8"))

  def flat(tree, prefix=""):
    if not isinstance(tree, dict):
      return {prefix: tree}
    return {k: v for key, value in tree.items() for k, v in flat(value, f"{prefix}{key}.").items()}

  ours, theirs = flat(ours), flat(theirs)
  return [
    f"{key.rstrip('.')}: {theirs.get(key)!r} -> {ours.get(key)!r}"
    for key in sorted(set(ours) | set(theirs))
    if ours.get(key) != theirs.get(key)
  ]


def _live(name: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
  """Case ``name`` run as its reference was: ``(summary, curves, search record)``."""
  result = reference.run_case(name)
  return result.summary, result.curves, reference.search_record(result)


def assert_identical(live_table: pd.DataFrame, reference_table: pd.DataFrame) -> None:
  """Same columns, dtypes, rows and bits (NaN where the other has NaN; 0.0 is not -0.0)."""
  difference = _first_difference(live_table, reference_table)
  try:
    pd.testing.assert_frame_equal(live_table, reference_table, check_exact=True)
  except AssertionError as error:
    raise AssertionError(f"{error}\n{difference or ''}") from None
  assert difference is None, difference


def _first_difference(live_table: pd.DataFrame, reference_table: pd.DataFrame) -> str | None:
  """The first cell whose value differs, shown in full; ``None`` if none.

  Compared as ``repr``: a float's shortest repr reads back to its bits (pandas
  shows 6 digits, hiding a one-ulp change), and tells -0.0 from 0.0.
  """
  for column in reference_table.columns.intersection(live_table.columns, sort=False):
    live_values = [repr(v) for v in live_table[column].tolist()]
    reference_values = [repr(v) for v in reference_table[column].tolist()]
    for row, (ours, theirs) in enumerate(zip(live_values, reference_values, strict=False)):
      if ours != theirs:
        return f"row {row}, {column}: {ours} (live) != {theirs} (reference)"
  return None


def assert_records_identical(live_record: dict, reference_record: dict) -> None:
  """Equal as JSON text: every float's shortest repr, so every bit (NaN equal to NaN)."""
  assert json.dumps(live_record, indent=1, sort_keys=True) == json.dumps(
    reference_record, indent=1, sort_keys=True
  )


def _is_outcome(column: str) -> bool:
  return column in OUTCOMES or column.startswith(OUTCOME_PREFIXES)


def settings(summary: pd.DataFrame, record: dict) -> pd.DataFrame:
  """The summary's keys and settings: its columns less the outcomes of training.

  Optuna's trials after the first batch were asked knowing the earlier
  trials' values: their settings are outcomes too (NaN here).
  """
  table = summary[[c for c in summary.columns if not _is_outcome(c)]].copy()
  if "trial" in table.columns:
    later = table["trial"].to_numpy() >= record["search"]["batch"]
    keys = ("config_id", "optimizer", "trial", "seed")
    table.loc[later, [c for c in table.columns if c not in keys]] = np.nan
  return table


def planned(record: dict) -> dict:
  """The search record less what follows from training: PBT's exploits, Optuna's later trials."""
  record = copy.deepcopy(record)
  search = record["search"]
  search.pop("exploits", None)
  for group in search["groups"].values():
    if "trials" in group:
      group["trials"] = [
        {
          "number": t["number"],
          "slot": t["slot"],
          **({"params": t["params"]} if t["number"] < search["batch"] else {}),
        }
        for t in group["trials"]
      ]
  return record


def assert_close_tree(live_tree, reference_tree, rtol: float, path: str = "") -> None:
  """Equal structure and strings; numbers (not bools) within ``rtol``."""
  if isinstance(reference_tree, dict):
    assert isinstance(live_tree, dict) and live_tree.keys() == reference_tree.keys(), path
    for key in reference_tree:
      assert_close_tree(live_tree[key], reference_tree[key], rtol, f"{path}.{key}")
  elif isinstance(reference_tree, list):
    assert isinstance(live_tree, list) and len(live_tree) == len(reference_tree), path
    for index, (a, b) in enumerate(zip(live_tree, reference_tree, strict=True)):
      assert_close_tree(a, b, rtol, f"{path}[{index}]")
  elif isinstance(reference_tree, float) and not isinstance(live_tree, bool):
    assert isinstance(live_tree, (int, float)), path
    close = math.isclose(live_tree, reference_tree, rel_tol=rtol)
    assert close or math.isnan(live_tree) and math.isnan(reference_tree), (
      f"{path}: {live_tree!r} != {reference_tree!r}"
    )
  else:
    assert live_tree == reference_tree, f"{path}: {live_tree!r} != {reference_tree!r}"


def assert_same_plan(live_case, reference_case) -> None:
  """What no rounding decides, on any machine (see the module docstring)."""
  (summary, curves, record), (ref_summary, ref_curves, ref_record) = live_case, reference_case
  for table, ref_table in ((summary, ref_summary), (curves, ref_curves)):
    assert list(table.columns) == list(ref_table.columns)
    assert table.dtypes.to_dict() == ref_table.dtypes.to_dict()
  pd.testing.assert_frame_equal(
    settings(summary, record),
    settings(ref_summary, ref_record),
    check_exact=False,
    rtol=SETTINGS_RTOL,
    atol=0,
  )
  if ref_record["search"]["scheduler"] is None:  # else the rows stop where rankings said
    pd.testing.assert_frame_equal(curves[CURVE_KEYS], ref_curves[CURVE_KEYS], check_exact=True)
  assert_close_tree(planned(record), planned(ref_record), SETTINGS_RTOL)


# One test per case, each running its sweep once: under pytest-xdist a module
# fixture would run every sweep again in each worker.
@pytest.mark.parametrize("name", reference.CASES)
def test_results_equal_the_reference(name):
  live, recorded = _live(name), _read(name)
  assert_same_plan(live, recorded)
  differences = _signature_differences()
  if differences:
    pytest.skip(
      f"{name}: its plan equals the reference's; its numbers are not compared, the "
      f"reference was made on another machine ({'; '.join(differences)}): {REGENERATE}"
    )
  (summary, curves, record), (ref_summary, ref_curves, ref_record) = live, recorded
  assert_identical(summary, ref_summary)
  assert_identical(curves, ref_curves)
  assert_records_identical(record, ref_record)


def test_a_case_covers_each_method_and_what_it_records():
  """The cases exercise what the rebuild must keep: stops, brackets, exploits, a model's trials."""
  recorded = {name: _read(name) for name in reference.CASES}
  methods = {r["search"]["method"] for _, _, r in recorded.values()}
  assert methods == {"grid", "random", "quasirandom", "pbt", "optuna"}
  halving = recorded["halving"][0]
  assert set(halving.stopped_at_step) == {10, 30, 90} and halving.diverged.any()
  assert len(recorded["hyperband"][2]["scheduler"]["groups"]["momentum(ema=false)"]) == 3
  assert recorded["random_halving"][0].stopped_at_step.nunique() == 3
  assert any(json.loads(lineage) for lineage in recorded["pbt"][0].lineage)
  optuna = recorded["optuna"][2]["search"]
  trials = optuna["groups"]["momentum(ema=false)"]["trials"]
  assert len(trials) == optuna["trials"] > 10  # past TPE's 10 random start-up trials


def test_each_comparison_fails_on_one_changed_value():
  """A one-ulp change, a stop a rung early, a changed exploit or setting: each is caught."""
  summary, curves, _ = _read("halving")
  nudged = curves.copy()
  nudged.loc[5, "train_loss"] = np.nextafter(nudged.loc[5, "train_loss"], np.inf)
  with pytest.raises(AssertionError):
    assert_identical(nudged, curves)
  stopped = summary.copy()
  stopped.loc[0, "stopped_at_step"] = 30
  with pytest.raises(AssertionError):
    assert_identical(stopped, summary)
  zero, negative_zero = summary.copy(), summary.copy()
  zero.loc[0, "final_loss"], negative_zero.loc[0, "final_loss"] = 0.0, -0.0
  with pytest.raises(AssertionError, match=r"-0\.0 \(live\) != 0\.0"):
    assert_identical(negative_zero, zero)
  pbt_summary, pbt_curves, pbt_record = _read("pbt")
  exploited = copy.deepcopy(pbt_record)
  exploited["search"]["exploits"]["momentum(ema=false)"][0]["source"] += 1
  with pytest.raises(AssertionError):
    assert_records_identical(exploited, pbt_record)
  assert_same_plan((pbt_summary, pbt_curves, exploited), (pbt_summary, pbt_curves, pbt_record))
  moved = pbt_summary.copy()
  moved.loc[0, "learning_rate"] *= 1 + 10 * SETTINGS_RTOL
  with pytest.raises(AssertionError):
    assert_same_plan((moved, pbt_curves, pbt_record), (pbt_summary, pbt_curves, pbt_record))
