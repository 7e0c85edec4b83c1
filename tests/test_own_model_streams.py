"""The page's model on a small problem: the logged metric is the final model's, a Stream
of the on-device batches gives the Dataset sweep bit for bit, and a Stream's batches
are checked, read once, and read from memory-mapped files.
"""

from __future__ import annotations

import jax
import numpy as np
import optax
import pandas as pd
import pytest
from flax import nnx

from _training_bounds import sum_bound, training_bound
from experiments import own_model
from momentum_jax import data, problems, sweep
from momentum_jax.train import TrainConfig, epoch_order, run_keys
from momentum_jax.train import train as train_one


# A small classification problem for the Stream tests: 40 training examples of
# 5 features, 3 classes, 12 validation examples.
NUM_TRAIN, BATCH = 40, 6


def _arrays(seed: int = 0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(NUM_TRAIN + 12, 5)).astype(np.float32)
  y = (np.arange(NUM_TRAIN + 12) % 3).astype(np.int32)
  return x[:NUM_TRAIN], y[:NUM_TRAIN], x[NUM_TRAIN:], y[NUM_TRAIN:]


def _small_problem(dataset) -> problems.Problem:
  return problems.Problem(
    "small",
    dataset,
    lambda rngs: own_model.MLP(5, 8, 3, rngs=rngs),
    loss=own_model.smoothed_cross_entropy,
    metrics=own_model.top2_accuracy,
  )


def _small_config(problem, seed, **train):
  return {
    "problem": problem,
    "optimizer": {"name": "optax.adamw", "learning_rate": [0.01, 0.1], "weight_decay": [0.0, 0.1]},
    # 6 logs: 6 segments of 4 steps, over epochs of 6 steps (40 // 6).
    "train": {"steps": 24, "log_every": 4, **train},
    "seeds": [seed],
  }


SEED = 3


@pytest.fixture(scope="module")
def dataset_sweep():
  """The small problem on the device, one seed for all configurations, at width 2."""
  x, y, x_val, y_val = _arrays()
  problem = _small_problem(data.Dataset("small", x, y, x_val, y_val, num_classes=3))
  result = sweep.run(_small_config(problem, SEED, batch_size=BATCH), width=2, quiet=True)
  assert result.manifest["execution"]["logs_per_segment"] == 1  # 6 segments, 4 epochs
  return problem, result


def test_sweep_logs_the_metric_of_the_final_model(dataset_sweep):
  problem, result = dataset_sweep
  row = result.summary[
    (result.summary.learning_rate == 0.1) & (result.summary.weight_decay == 0.1)
  ].iloc[0]
  alone = train_one(
    problem,
    optax.adamw,
    {"learning_rate": 0.1, "weight_decay": 0.1},
    jax.random.key(SEED),
    TrainConfig(batch_size=BATCH, steps=24, log_every=4),
  )
  graphdef = nnx.graphdef(nnx.eval_shape(lambda: problem.make_model(nnx.Rngs(0))))

  x_val, y_val = problem.data.x_val, problem.data.y_val

  @jax.jit  # one program: op by op, these few operations take seconds to dispatch
  def measured(params, rest):
    final = nnx.merge(graphdef, params, rest)
    initial = problem.make_model(nnx.Rngs(run_keys(jax.random.key(SEED))[0]))
    return (
      own_model.top2_accuracy(final, x_val, y_val)["top2_accuracy"],
      own_model.smoothed_cross_entropy(final, x_val, y_val),
      own_model.top2_accuracy(initial, x_val, y_val)["top2_accuracy"],
    )

  top2, loss, start = map(float, measured(alone.params, alone.rest))
  assert float(alone.metrics["val_top2_accuracy"][-1]) == top2
  # The same weights evaluated by another program: the split's mean summed
  # otherwise (_training_bounds.sum_bound).
  assert abs(float(alone.metrics["val_loss"][-1]) - loss) <= sum_bound(loss, problem.data.num_val)
  # The sweep trains at width 2, the run alone unbatched: within the
  # rounding's measured reach (_training_bounds.training_bound).
  _, bound = training_bound(
    problem,
    optax.adamw,
    TrainConfig(batch_size=BATCH, steps=24, log_every=4),
    {"learning_rate": [0.1], "weight_decay": [0.1]},
    jax.random.key(SEED)[None],
  )
  assert abs(row.val_loss - loss) <= bound["val_loss"][0, -1]
  assert row.val_top2_accuracy == top2
  assert row.start_top2_accuracy == start


def test_stream_of_the_on_device_batches_gives_the_dataset_sweep_bit_for_bit(dataset_sweep):
  _, on_device = dataset_sweep
  x, y, x_val, y_val = _arrays()
  data_key = run_keys(jax.random.key(SEED))[1]
  per_epoch = NUM_TRAIN // BATCH

  def on_device_batches(epoch):
    order = np.asarray(epoch_order(data_key, epoch, NUM_TRAIN))
    for i in range(per_epoch):
      rows = order[i * BATCH : (i + 1) * BATCH]
      yield x[rows], y[rows]

  stream = data.Stream(
    on_device_batches,
    batch_size=BATCH,
    steps_per_epoch=per_epoch,
    x_val=x_val,
    y_val=y_val,
    num_classes=3,
  )
  streamed = sweep.run(_small_config(_small_problem(stream), SEED), width=2, quiet=True)
  pd.testing.assert_frame_equal(streamed.summary, on_device.summary, check_exact=True)
  pd.testing.assert_frame_equal(streamed.curves, on_device.curves, check_exact=True)


def _stream(batches, **options) -> data.Stream:
  return data.Stream(batches, **{"batch_size": BATCH, "steps_per_epoch": 2, **options})


def _rows(x, y, count):
  return [(x[i * BATCH : (i + 1) * BATCH], y[i * BATCH : (i + 1) * BATCH]) for i in range(count)]


def test_stream_epoch_with_too_few_batches_names_the_epoch_and_batch():
  x, y, _, _ = _arrays()
  stream = _stream(lambda epoch: _rows(x, y, 3 if epoch == 0 else 1), steps_per_epoch=3)
  assert stream.take(0, 3)[0].shape == (3, BATCH, 5)
  with pytest.raises(
    ValueError,
    match=r"epoch 1, batch 1: the epoch ended after 1 batches; "
    r"steps_per_epoch is 3",
  ):
    stream.take(2, 3)  # the last batch of epoch 0, then two of epoch 1


def test_stream_batch_of_another_shape_is_refused():
  x, y, _, _ = _arrays()

  def batches(epoch):
    good = _rows(x, y, 2)
    return good if epoch == 0 else [good[0], (good[1][0][:, :4], good[1][1])]

  stream = _stream(batches)
  with pytest.raises(
    ValueError,
    match=r"epoch 1, batch 1: x \(6, 4\) float32, .* differ from "
    r"the first batch's x \(6, 5\) float32",
  ):
    stream.take(0, 4)
  short_rows = _stream(lambda epoch: [(x[: BATCH - 1], y[: BATCH - 1])] * 2)
  with pytest.raises(
    ValueError,
    match=r"epoch 0, batch 0: x has shape \(5, 5\) and y \(5,\); "
    r"both need batch_size=6 rows",
  ):
    short_rows.take(0, 1)


def test_stream_whose_first_batch_is_wrong_is_a_config_error_at_problem_data():
  x, y, _, _ = _arrays()
  stream = _stream(lambda epoch: [(x[: BATCH - 1], y[: BATCH - 1])] * 2, num_classes=3)
  problem = problems.Problem("linear", stream, lambda rngs: nnx.Linear(5, 3, rngs=rngs))
  with pytest.raises(sweep.ConfigError, match=r"epoch 0, batch 0: x has shape \(5, 5\)") as error:
    sweep.run(
      {
        "problem": problem,
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "train": {"steps": 2, "log_every": 1},
      },
      quiet=True,
    )
  assert error.value.path == "problem.data"


def test_stream_segments_in_a_row_read_each_batch_once():
  x, y, _, _ = _arrays()
  read = []

  def batches(epoch):
    for i, batch in enumerate(_rows(x + epoch, y, 6)):
      read.append((epoch, i))
      yield batch

  stream = _stream(batches, steps_per_epoch=6)
  stream.example  # the first batch, read once when the problem is checked
  read.clear()
  segments = [stream.take(first, 4) for first in range(0, 16, 4)]  # epochs of 6 steps
  assert read == [(e, i) for e in range(3) for i in range(6) if 6 * e + i < 16]
  np.testing.assert_array_equal(
    np.concatenate([xs for xs, _ in segments]),
    np.stack([b[0] for e in range(3) for b in _rows(x + e, y, 6)])[:16],
  )
  read.clear()
  xs, _ = stream.take(8, 4)  # not where the last call stopped: epoch 1 opened again
  assert read == [(1, i) for i in range(6)]
  np.testing.assert_array_equal(xs, segments[2][0])


def test_stream_with_a_batch_size_is_a_config_error():
  x, y, x_val, y_val = _arrays()
  stream = _stream(lambda epoch: _rows(x, y, 2), x_val=x_val, y_val=y_val, num_classes=3)
  with pytest.raises(sweep.ConfigError, match="its data is a Stream") as error:
    sweep.run(_small_config(_small_problem(stream), 0, batch_size=BATCH), quiet=True)
  assert error.value.path == "train.batch_size"


def _memmap_batches(tmp_path):
  """A generator function over memory-mapped .npy files: each epoch a shuffle of their rows."""
  x, y, _, _ = _arrays()
  np.save(tmp_path / "x.npy", x.astype(np.float64))  # float64 on disk: read as float32
  np.save(tmp_path / "y.npy", y.astype(np.int64))
  x_file = np.load(tmp_path / "x.npy", mmap_mode="r")
  y_file = np.load(tmp_path / "y.npy", mmap_mode="r")

  def batches(epoch):
    order = np.random.default_rng(epoch).permutation(len(x_file))
    for i in range(len(x_file) // BATCH):
      rows = np.sort(order[i * BATCH : (i + 1) * BATCH])
      yield x_file[rows], y_file[rows]

  return batches, x_file


def test_stream_over_a_memmap_reads_its_rows(tmp_path):
  batches, x_file = _memmap_batches(tmp_path)
  stream = _stream(batches, steps_per_epoch=NUM_TRAIN // BATCH)
  xs, ys = stream.take(4, 5)  # the last two batches of epoch 0, three of epoch 1
  assert xs.dtype == np.float32 and ys.dtype == np.int32 and xs.shape == (5, BATCH, 5)
  order = np.random.default_rng(1).permutation(NUM_TRAIN)
  np.testing.assert_array_equal(xs[2], np.asarray(x_file, np.float32)[np.sort(order[:BATCH])])


@pytest.fixture(scope="module")
def memmap_sweep(tmp_path_factory):
  """A linear model swept on a memmap stream with a validation split: 16 steps, 2+ epochs."""
  batches, _ = _memmap_batches(tmp_path_factory.mktemp("memmap"))
  _, _, x_val, y_val = _arrays()
  stream = _stream(
    batches, steps_per_epoch=NUM_TRAIN // BATCH, x_val=x_val, y_val=y_val, num_classes=3
  )
  problem = problems.Problem("linear", stream, lambda rngs: nnx.Linear(5, 3, rngs=rngs))
  return sweep.run(
    {
      "problem": problem,
      "optimizer": {"name": "sgd", "learning_rate": [0.1, 0.3]},
      "train": {"steps": 16, "log_every": 2},
    },
    quiet=True,
  )


def test_stream_with_validation_data_logs_val_loss(memmap_sweep):
  assert {"val_loss", "val_accuracy"} <= set(memmap_sweep.summary.columns)
  assert {"val_loss", "val_accuracy"} <= set(memmap_sweep.curves.columns)
  assert np.isfinite(memmap_sweep.curves.val_loss).all() and len(memmap_sweep.curves) == 16


def test_stream_over_a_memmap_sweeps(memmap_sweep):
  assert not memmap_sweep.summary.diverged.any()
  curves = memmap_sweep.curves[memmap_sweep.curves.config_id == 0]
  assert curves.train_loss.iloc[-1] < curves.train_loss.iloc[0]
