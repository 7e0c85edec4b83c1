"""scikit-learn's sets and their splits, kept on disk: the same arrays, without importing sklearn."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

from momentum_jax.data import _sklearn, load_breast_cancer, load_digits

_SCRIPT = textwrap.dedent("""
    import json, sys
    from momentum_jax.data import load_digits
    ds = load_digits(image=True, seed=3)
    print(json.dumps(["sklearn" in sys.modules, float(ds.x_train.sum()), ds.y_val.tolist()]))
""")


def test_a_second_load_reads_the_cache_and_imports_no_sklearn(tmp_path, monkeypatch):
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  first = load_digits(image=True, seed=3)  # from scikit-learn, kept
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  out = subprocess.run(
    [sys.executable, "-c", _SCRIPT],
    env=env,
    check=True,
    capture_output=True,
    text=True,
    timeout=120,
  ).stdout
  imported, total, y_val = json.loads(out)
  assert not imported
  assert total == float(first.x_train.sum()) and y_val == np.asarray(first.y_val).tolist()
  version = _sklearn.importlib.metadata.version("scikit-learn")
  assert sorted(p.name for p in (tmp_path / "momentum_jax" / "data").iterdir()) == [
    f"digits-sklearn{version}.npz",
    f"digits-split-0.2-3-sklearn{version}.npz",
  ]


def test_a_damaged_cache_file_is_loaded_again_and_replaced(tmp_path, monkeypatch):
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  first = load_breast_cancer(seed=1)
  for path in (tmp_path / "momentum_jax" / "data").iterdir():
    path.write_bytes(b"not an npz")
  again = load_breast_cancer(seed=1)
  np.testing.assert_array_equal(np.asarray(first.x_val), np.asarray(again.x_val))
  assert again.class_names == ("malignant", "benign")
  assert load_breast_cancer(seed=1).num_classes == 2  # read back from the rewritten files


def test_an_unwritable_cache_only_means_loading_from_sklearn(tmp_path, monkeypatch):
  blocked = tmp_path / "file"
  blocked.write_text("a file where the cache folder would go")
  monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
  assert load_digits().x_train.shape == (1437, 64)
