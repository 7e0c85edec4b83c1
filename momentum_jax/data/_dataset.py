"""The container every data loader returns: arrays on device, validated once."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """A supervised dataset as jax arrays, with an optional validation split.

  Rows are examples: ``x_train[i]`` goes with ``y_train[i]``. Regression
  targets are float arrays of shape ``(n,)``; classification labels are
  integers in ``[0, num_classes)``, shape ``(n,)``. The arrays live on the
  default device, so a training loop can draw minibatches inside ``jit``
  without host transfers.

  Construction converts every array as ``jnp.asarray`` does (so float64 becomes
  float32 and int64 int32 unless ``jax_enable_x64`` is on) and checks, once,
  that x and y have the same number of rows, that the training and validation
  inputs have the same shape per example, that ``x_val``/``y_val`` come
  together, that float arrays hold no NaN or inf, and that labels lie in
  ``[0, num_classes)``; each failure is a ``ValueError`` naming the dataset and
  the array.

  Compared by identity (``eq=False``): field-wise ``==`` on arrays is ambiguous.

  Attributes:
    name: Short name, used in error messages and results tables.
    x_train: Training inputs, shape ``(n, *input_shape)``.
    y_train: Training targets, shape ``(n,)`` (or ``(n, k)`` for multi-output
      regression).
    x_val: Validation inputs, or ``None`` when there is no validation split.
    y_val: Validation targets, ``None`` exactly when ``x_val`` is.
    num_classes: Number of classes, or ``None`` for regression.
    class_names: Optional names of the classes, ``len == num_classes``.

  Example:
    >>> import numpy as np
    >>> from momentum_jax.data import Dataset
    >>> ds = Dataset("toy", np.zeros((4, 3)), np.zeros(4))
    >>> ds.num_train, ds.input_shape, ds.x_val is None
    (4, (3,), True)
  """

  name: str
  x_train: jax.Array
  y_train: jax.Array
  x_val: jax.Array | None = None
  y_val: jax.Array | None = None
  num_classes: int | None = None
  class_names: tuple[str, ...] | None = None

  def __post_init__(self):
    # frozen=True forbids plain assignment; converting here is the one
    # place where the fields are written.
    for field in ("x_train", "y_train", "x_val", "y_val"):
      value = getattr(self, field)
      if value is not None and not isinstance(value, jax.Array):
        # jnp.asarray's dtypes, but through device_put: jnp.asarray compiles
        # one small program per shape (~30 ms each, a tenth of a second for
        # a dataset). A private host copy: the device may alias it.
        value = jax.device_put(np.array(value, copy=True))
      if value is not None:
        object.__setattr__(self, field, value)
    if self.class_names is not None:
      object.__setattr__(self, "class_names", tuple(self.class_names))
    self._validate()

  @property
  def num_train(self) -> int:
    """Number of training examples."""
    return self.x_train.shape[0]

  @property
  def num_val(self) -> int:
    """Number of validation examples (0 without a validation split)."""
    return 0 if self.x_val is None else self.x_val.shape[0]

  @property
  def input_shape(self) -> tuple[int, ...]:
    """Shape of one input example, e.g. ``(64,)`` or ``(32, 32, 3)``."""
    return tuple(self.x_train.shape[1:])

  @property
  def is_classification(self) -> bool:
    return self.num_classes is not None

  def _fail(self, message: str) -> None:
    raise ValueError(f"Dataset {self.name!r}: {message}")

  def _validate(self) -> None:
    if (self.x_val is None) != (self.y_val is None):
      given, missing = ("x_val", "y_val") if self.y_val is None else ("y_val", "x_val")
      self._fail(f"{given} was given without {missing}; pass both or neither")
    if self.x_train.ndim < 1 or self.y_train.ndim < 1:
      self._fail(
        "x_train and y_train need a leading example axis, got shapes "
        f"{self.x_train.shape} and {self.y_train.shape}"
      )
    splits = [("train", self.x_train, self.y_train)]
    if self.x_val is not None:
      splits.append(("val", self.x_val, self.y_val))
    for split, x, y in splits:
      if x.shape[0] != y.shape[0]:
        self._fail(
          f"x_{split} has {x.shape[0]} rows but y_{split} has "
          f"{y.shape[0]}; every input needs exactly one target"
        )
    if self.x_val is not None:
      if self.x_val.shape[1:] != self.x_train.shape[1:]:
        self._fail(
          f"x_val examples have shape {self.x_val.shape[1:]} but "
          f"x_train examples have {self.x_train.shape[1:]}"
        )
      if self.y_val.shape[1:] != self.y_train.shape[1:]:
        self._fail(
          f"y_val examples have shape {self.y_val.shape[1:]} but "
          f"y_train examples have {self.y_train.shape[1:]}"
        )
    for field in ("x_train", "y_train", "x_val", "y_val"):
      self._check_finite(field)
    if self.num_classes is not None:
      self._check_labels()

  def _check_finite(self, field: str) -> None:
    array = getattr(self, field)
    if array is None or not jnp.issubdtype(array.dtype, jnp.inexact):
      return
    xp, array = _namespace(array)
    num_nan = int(xp.sum(xp.isnan(array)))
    num_inf = int(xp.sum(xp.isinf(array)))
    if num_nan or num_inf:
      self._fail(
        f"{field} contains {num_nan} NaN and {num_inf} inf values (of "
        f"{array.size}); remove or impute them before building a Dataset"
      )

  def _check_labels(self) -> None:
    if (
      isinstance(self.num_classes, bool)
      or not isinstance(self.num_classes, (int, np.integer))
      or self.num_classes < 2
    ):
      self._fail(
        f"num_classes must be an integer >= 2 (or None for regression), got {self.num_classes!r}"
      )
    if self.class_names is not None and len(self.class_names) != self.num_classes:
      self._fail(f"class_names has {len(self.class_names)} names for {self.num_classes} classes")
    for field in ("y_train", "y_val"):
      labels = getattr(self, field)
      if labels is None:
        continue
      if not jnp.issubdtype(labels.dtype, jnp.integer):
        self._fail(
          f"{field} holds {labels.dtype} values, but class labels "
          "must be integers; convert them with .astype(int32)"
        )
      if labels.ndim != 1:
        self._fail(f"{field} must have shape (n,) for classification, got {labels.shape}")
      if labels.size:
        xp, labels = _namespace(labels)
        low, high = int(xp.min(labels)), int(xp.max(labels))
        if low < 0 or high >= self.num_classes:
          self._fail(f"{field} has labels in [{low}, {high}], outside [0, {self.num_classes})")


def _namespace(array: jax.Array):
  """``(numpy, the array as numpy)`` when it lives in host memory, else ``(jnp, array)``.

  The checks reduce an array to a few numbers. On an accelerator they run
  there, so that only those numbers cross to the host, not the data; on a
  CPU numpy reads the same memory without a copy, where each ``jnp``
  reduction would first compile a small program for the array's shape
  (~0.5 s for the checks of one dataset on a CPU core).
  """
  if all(device.platform == "cpu" for device in array.devices()):
    return np, np.asarray(array)
  return jnp, array
