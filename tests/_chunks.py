"""A sweep folder's finished chunks, and two results compared bit for bit."""

from __future__ import annotations

import pandas as pd

from momentum_jax import results


def _chunk_files(out):
  return sorted((out / "chunks").glob("g*.npz"))


def _same_results(a: results.SweepResult, b: results.SweepResult) -> None:
  pd.testing.assert_frame_equal(a.summary, b.summary, check_exact=True)
  pd.testing.assert_frame_equal(a.curves, b.curves, check_exact=True)
