"""CIFAR-10 from its pickled batches: pixel layout, standardisation, missing and malicious files."""

from __future__ import annotations

import pathlib
import pickle

import numpy as np
import pytest

from _cifar import PLANE, write_batch, write_fake_cifar
from _standardised import assert_centred_and_scaled, assert_standardised, standardised_bound
from momentum_jax.data import CIFAR10_ENV_VAR
from momentum_jax.data import CIFAR10NotFoundError
from momentum_jax.data import load_cifar10


def channel_major_to_hwc(data: np.ndarray) -> np.ndarray:
  """Gathers pixel (i, j, c) from index c·1024 + 32·i + j of each row."""
  index = (
    np.arange(3)[None, None, :] * PLANE
    + np.arange(32)[:, None, None] * 32
    + np.arange(32)[None, :, None]
  )
  return data[:, index]


def expected_standardised(data: np.ndarray, train: np.ndarray) -> np.ndarray:
  """(u/255 − mean_c)/std_c, with each channel's stats from its plane of ``train``."""
  planes = [train[:, c * PLANE : (c + 1) * PLANE] / 255.0 for c in range(3)]
  mean = np.array([p.mean() for p in planes])
  std = np.array([p.std() for p in planes])
  return (channel_major_to_hwc(data) / 255.0 - mean) / std


def test_cifar_pixel_layout_labels_and_standardisation(tmp_path):
  folder = tmp_path / "cifar-10-batches-py"
  train, train_labels, test, test_labels = write_fake_cifar(folder)
  # A known pixel: image 6 (the third of data_batch_2), row 3, column 5 has
  # (R, G, B) = (10, 200, 77); its transpose (5, 3) differs.
  train[6, [0 * PLANE + 3 * 32 + 5, 1 * PLANE + 3 * 32 + 5, 2 * PLANE + 3 * 32 + 5]] = [10, 200, 77]
  train[6, [5 * 32 + 3, PLANE + 5 * 32 + 3, 2 * PLANE + 5 * 32 + 3]] = [250, 1, 3]
  write_batch(folder / "data_batch_2", train[4:8], train_labels[4:8])

  ds = load_cifar10(folder)
  assert ds.x_train.shape == (20, 32, 32, 3) and ds.x_val.shape == (4, 32, 32, 3)
  assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
  assert ds.num_classes == 10
  assert ds.class_names == tuple(f"class{k}" for k in range(10))
  np.testing.assert_array_equal(ds.y_train, train_labels)  # batch 1 … 5 order
  np.testing.assert_array_equal(ds.y_val, test_labels)

  planes = [train[:, c * PLANE : (c + 1) * PLANE] / 255.0 for c in range(3)]
  mean = np.array([p.mean() for p in planes])
  std = np.array([p.std() for p in planes])
  # u·float32(1/(255·std)) + float32(−mean/std): four float32 roundings.
  terms = train.shape[0] * PLANE
  for pixel, (i, j) in (([10, 200, 77], (3, 5)), ([250, 1, 3], (5, 3))):
    expected = (np.array(pixel) / 255.0 - mean) / std
    bound = standardised_bound(expected, mean, std, terms, 4)
    assert_standardised(ds.x_train[6, i, j], expected, bound)
  for data, x in ((train, ds.x_train), (test, ds.x_val)):
    expected = expected_standardised(data, train)
    assert_standardised(x, expected, standardised_bound(expected, mean, std, terms, 4))
  # Training statistics only: training channels are centred, validation not.
  expected = expected_standardised(train, train)
  bound = standardised_bound(expected, mean, std, terms, 4)
  assert_centred_and_scaled(ds.x_train, bound, (0, 1, 2))
  assert np.all(np.asarray(ds.x_val).mean(axis=(0, 1, 2)) > 0.5)


def test_cifar_path_from_env_var_and_parent_folder(tmp_path, monkeypatch):
  write_fake_cifar(tmp_path / "cifar-10-batches-py", rows=2, meta=False)
  from_parent = load_cifar10(tmp_path)
  assert from_parent.num_train == 10
  assert from_parent.class_names[0] == "airplane"  # no batches.meta
  monkeypatch.setenv(CIFAR10_ENV_VAR, str(tmp_path / "cifar-10-batches-py"))
  from_env = load_cifar10()
  np.testing.assert_array_equal(from_env.x_train, from_parent.x_train)
  assert CIFAR10_ENV_VAR == "MOMENTUM_JAX_CIFAR10"


def test_cifar_missing_folder_error_says_where_and_how(tmp_path, monkeypatch):
  missing = tmp_path / "nowhere"
  with pytest.raises(CIFAR10NotFoundError) as info:
    load_cifar10(missing)
  message = str(info.value)
  assert isinstance(info.value, FileNotFoundError)
  assert str(missing) in message and "does not exist" in message
  assert CIFAR10_ENV_VAR in message and "path=" in message
  monkeypatch.setenv(CIFAR10_ENV_VAR, str(missing))
  with pytest.raises(
    CIFAR10NotFoundError, match=f"from the environment variable {CIFAR10_ENV_VAR}"
  ):
    load_cifar10()
  monkeypatch.delenv(CIFAR10_ENV_VAR)
  with pytest.raises(CIFAR10NotFoundError, match=f"{CIFAR10_ENV_VAR} is not set"):
    load_cifar10()


def test_cifar_missing_batch_error_lists_expected_and_missing(tmp_path):
  folder = tmp_path / "cifar-10-batches-py"
  write_fake_cifar(folder, rows=2)
  (folder / "data_batch_3").unlink()
  with pytest.raises(CIFAR10NotFoundError) as info:
    load_cifar10(tmp_path)  # through the parent folder
  message = str(info.value)
  assert str(folder) in message
  assert (
    "expected data_batch_1, data_batch_2, data_batch_3, data_batch_4, "
    "data_batch_5, test_batch; missing data_batch_3."
  ) in message
  # An empty folder: everything is missing, and it says it looked for the
  # subfolder too.
  (tmp_path / "empty").mkdir()
  with pytest.raises(CIFAR10NotFoundError, match="no cifar-10-batches-py/"):
    load_cifar10(tmp_path / "empty")


def test_cifar_without_validation_needs_no_test_batch(tmp_path):
  write_fake_cifar(tmp_path, rows=2)
  (tmp_path / "test_batch").unlink()
  ds = load_cifar10(tmp_path, val=None)
  assert ds.x_val is None and ds.num_train == 10
  with pytest.raises(CIFAR10NotFoundError, match="missing test_batch"):
    load_cifar10(tmp_path)
  with pytest.raises(ValueError, match="val must be 'test' or None"):
    load_cifar10(tmp_path, val="train")


def test_cifar_rejects_malformed_and_malicious_files(tmp_path):
  write_fake_cifar(tmp_path, rows=2)
  write_batch(tmp_path / "data_batch_4", np.zeros((2, 3000), np.uint8), [0, 1])
  with pytest.raises(ValueError, match=r"data_batch_4: b'data' must be uint8"):
    load_cifar10(tmp_path)

  marker = tmp_path / "executed"

  class Payload:
    def __reduce__(self):
      return (pathlib.Path.touch, (marker,))

  with open(tmp_path / "data_batch_4", "wb") as handle:
    pickle.dump({b"data": Payload(), b"labels": []}, handle, protocol=2)
  with pytest.raises(ValueError, match="refusing to load"):
    load_cifar10(tmp_path)
  assert not marker.exists()


# CIFAR10NotFoundError is a FileNotFoundError: sweep.run must still report it
# as a ConfigError at the problem's field.
@pytest.mark.parametrize(
  "remove, says",
  [
    ("folder", "does not exist"),
    ("data_batch_3", "missing data_batch_3"),
  ],
)
def test_sweep_names_the_problem_field_for_a_missing_or_incomplete_cifar_folder(
  tmp_path, remove, says
):
  from momentum_jax import sweep

  folder = tmp_path / "cifar-10-batches-py"
  if remove != "folder":
    write_fake_cifar(folder, rows=2)
    (folder / remove).unlink()
  config = {
    "problem": {"name": "cifar10_cnn", "path": str(folder)},
    "optimizer": {"name": "sgd", "learning_rate": 0.1},
    "train": {"steps": 1, "log_every": 1, "batch_size": 2},
    "seeds": 1,
  }
  with pytest.raises(sweep.ConfigError, match=f"^problem: .*{says}") as info:
    sweep.run(config, tmp_path / "sweep", quiet=True)
  assert info.value.path == "problem" and str(folder) in str(info.value)
  assert not (tmp_path / "sweep").exists()  # refused before writing anything
