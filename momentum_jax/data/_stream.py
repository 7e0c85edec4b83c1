"""Training data streamed from the host: batches from any loader, a segment at a time."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Iterable

import jax.numpy as jnp
import numpy as np

Batches = Callable[[int], Iterable[tuple[Any, Any]]]


@dataclasses.dataclass(frozen=True, eq=False)
class Stream:
  """Training batches read on the host, for data that does not fit on the device.

  ``batches(epoch)`` returns an iterable of ``(x, y)`` pairs of NumPy arrays
  (anything ``np.asarray`` reads: a grain loader, a torch ``DataLoader``'s
  tensors turned to NumPy, a generator over files), each of ``batch_size``
  rows; the sweep engine takes ``steps_per_epoch`` of them per epoch. Every
  configuration of a sweep sees the same batches in the same order (seeds
  still vary the initialization), so ``batches`` should depend on the epoch
  only. The engine moves one segment's batches to the devices at a time and
  reads the next segment's while the current one trains (going on with the
  same epoch's iterator, see :meth:`take`); every chunk of configurations
  reads the stream from its start; on several hosts every process reads the
  same stream.

  The validation split, when given, is small enough to live on the device:
  it becomes jax arrays, checked like a :class:`~momentum_jax.data.Dataset`'s.
  Compared by identity (``eq=False``).

  Attributes:
    batches: ``epoch -> iterable of (x, y)``.
    batch_size: Rows of every batch.
    steps_per_epoch: Batches taken from each epoch's iterable.
    x_val: Validation inputs, or ``None``.
    y_val: Validation targets, ``None`` exactly when ``x_val`` is.
    num_classes: Number of classes (integer labels), or ``None`` for regression.
    name: Used in error messages (default: the function's name).

  Example:
    >>> import numpy as np
    >>> from momentum_jax.data import Stream
    >>> x, y = np.ones((8, 3), np.float32), np.zeros(8, np.float32)
    >>> stream = Stream(lambda epoch: ((x[i:i + 4], y[i:i + 4]) for i in (0, 4)),
    ...                 batch_size=4, steps_per_epoch=2)
    >>> stream.input_shape, stream.take(1, 2)[0].shape
    ((3,), (2, 4, 3))
  """

  batches: Batches
  _: dataclasses.KW_ONLY
  batch_size: int
  steps_per_epoch: int
  x_val: Any = None
  y_val: Any = None
  num_classes: int | None = None
  name: str = ""

  def __post_init__(self):
    if not callable(self.batches):
      raise ValueError(
        f"Stream: batches must be a function epoch -> iterable of (x, y), got {self.batches!r}"
      )
    for field in ("batch_size", "steps_per_epoch"):
      value = getattr(self, field)
      if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"Stream: {field} must be a positive integer, got {value!r}")
    if not self.name:
      object.__setattr__(self, "name", getattr(self.batches, "__name__", "stream"))
    # [epoch, next batch, iterator] of the epoch the last take stopped in.
    object.__setattr__(self, "_open", [])
    if (self.x_val is None) != (self.y_val is None):
      raise ValueError(f"Stream {self.name!r}: give x_val and y_val together, or neither")
    if self.x_val is not None:
      # The split lives on the device; a Dataset checks it as it checks its own.
      from momentum_jax.data._dataset import Dataset

      checked = Dataset(self.name, self.x_val, self.y_val, num_classes=self.num_classes)
      object.__setattr__(self, "x_val", checked.x_train)
      object.__setattr__(self, "y_val", checked.y_train)

  @property
  def num_val(self) -> int:
    return 0 if self.x_val is None else int(self.x_val.shape[0])

  @functools.cached_property
  def example(self) -> tuple[np.ndarray, np.ndarray]:
    """The first batch of epoch 0, read once: it fixes the shapes and dtypes of every batch."""
    return self._check(0, 0, next(iter(self.batches(0)), None))

  @property
  def input_shape(self) -> tuple[int, ...]:
    return tuple(self.example[0].shape[1:])

  def _check(self, epoch: int, index: int, batch: Any) -> tuple[np.ndarray, np.ndarray]:
    where = f"Stream {self.name!r}, epoch {epoch}, batch {index}"
    if batch is None:
      raise ValueError(
        f"{where}: the epoch ended after {index} batches; steps_per_epoch is {self.steps_per_epoch}"
      )
    try:
      x, y = batch
    except (TypeError, ValueError):
      raise ValueError(f"{where}: expected a pair (x, y), got {type(batch).__name__}") from None
    x, y = np.asarray(x), np.asarray(y)
    if jnp.dtype(x.dtype) == np.float64:
      x = x.astype(np.float32)  # as jnp.asarray does without x64
    if y.dtype == np.float64:
      y = y.astype(np.float32)
    elif y.dtype == np.int64:
      y = y.astype(np.int32)
    if x.shape[:1] != (self.batch_size,) or y.shape[:1] != (self.batch_size,):
      raise ValueError(
        f"{where}: x has shape {x.shape} and y {y.shape}; both need "
        f"batch_size={self.batch_size} rows"
      )
    if index or epoch:  # the example itself fixes the shapes
      want_x, want_y = self.example
      if (x.shape, x.dtype, y.shape, y.dtype) != (
        want_x.shape,
        want_x.dtype,
        want_y.shape,
        want_y.dtype,
      ):
        raise ValueError(
          f"{where}: x {x.shape} {x.dtype}, y {y.shape} {y.dtype} differ from "
          f"the first batch's x {want_x.shape} {want_x.dtype}, y "
          f"{want_y.shape} {want_y.dtype}"
        )
    return x, y

  def take(self, first_step: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The batches of steps ``first_step, …, first_step + count − 1``, stacked.

    Step ``s`` is batch ``s mod steps_per_epoch`` of epoch
    ``s // steps_per_epoch``. A call that starts where the previous one
    stopped goes on reading that epoch's iterator, so consecutive segments
    read each batch once; any other start (a new chunk, a resumed sweep)
    opens the epoch's iterable again and skips the batches before it.
    """
    resume, self._open[:] = self._open[:], []
    xs, ys = [], []
    step = first_step
    while step < first_step + count:
      epoch, within = divmod(step, self.steps_per_epoch)
      wanted = min(self.steps_per_epoch - within, first_step + count - step)
      if resume[:2] == [epoch, within]:
        iterator = resume[2]
      else:
        iterator = iter(self.batches(epoch))
        for index in range(within):
          if next(iterator, None) is None:
            self._check(epoch, index, None)
      for index in range(within, within + wanted):
        x, y = self._check(epoch, index, next(iterator, None))
        xs.append(x)
        ys.append(y)
      resume = [epoch, within + wanted, iterator]
      step += wanted
    self._open[:] = resume
    return np.stack(xs), np.stack(ys)
