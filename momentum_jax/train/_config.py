"""How long and on what batches a run trains, and how its programs are compiled.

:class:`TrainConfig` (steps, batch size, logging, divergence), the checks of
a batch size against a problem, and the XLA options the training programs
are compiled with. Re-exported by :mod:`momentum_jax.train`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from momentum_jax.problems import Problem

# XLA's CPU backend runs LLVM at optimization level 3 unless told otherwise.
# At level 2 the training programs compile in about half the time and run as
# fast. Measured on the 2-core machine, one program each, compile (steady
# run) at level 3 against level 2: digits MLP 64-128-128-10 at width 8,
# 5.5-6.6 s (1.16-1.47 s) against 2.9-3.2 s (1.19-1.40 s); digits CNN at
# width 2, 8.5 s (3.60 s) against 3.5 s (3.57 s); the quickstart's MLP at
# width 24, 4.8-5.4 s against 2.2-2.5 s; linear regression at width 32,
# 1.0-1.1 s against 0.7-1.0 s. A sweep compiles one program per group and
# often trains it for seconds, so compilation is most of a short sweep.
# Results differ from level 3's in float32 rounding only (165 of 1936
# metrics of the MLP sweep above, none of the regression's).
# XLA's CPU fusion emitters (its default) build each of a program's ~50-120
# small fused kernels through MLIR, and compile slower than its elemental
# emitters (``xla_cpu_use_fusion_emitters: False``) for kernels that train as
# fast: engine programs of benchmarks/sweep_speed.py, K = 64, 3 alternating
# runs each (RESULTS.md), XLA seconds with the fusion emitters against
# without: digits MLP 4.6-5.4 against 3.5-3.7 (training 5.0-5.4 s against
# 5.2-5.4 s); linear regression 1.1-1.4 against 0.9-1.1 (training 0.02-0.04
# s either way); digits CNN at K = 16, 5.4-7.0 against 3.7-4.2 (training
# 42-44 s either way).
CPU_COMPILER_OPTIONS = {"xla_backend_optimization_level": 2, "xla_cpu_use_fusion_emitters": False}
# Those options save about 1.0-1.3 s of a digits MLP program's compilation and
# cost about an eighth of its training (benchmarks/RESULTS.md, issue 24): they
# pay below ~10 s of training, and XLA's defaults above.
FAST_COMPILE_BELOW_SECONDS = 10.0


def compiler_options(platform: str) -> dict[str, Any]:
  """The XLA options the training programs are compiled with on ``platform``.

  :data:`CPU_COMPILER_OPTIONS` on a CPU, but for those that ``XLA_FLAGS``
  sets itself (the user's to keep); nothing elsewhere (accelerators compile
  with XLA's defaults). Pass them as ``jax.jit(..., compiler_options=...)``
  (:func:`momentum_jax.runtime.compile_cache.compile` drops those this XLA does not know).
  """
  if platform != "cpu":
    return {}
  flags = os.environ.get("XLA_FLAGS", "")
  return {name: value for name, value in CPU_COMPILER_OPTIONS.items() if name not in flags}


def chosen_compiler_options(
  platform: str, training_seconds: float | None
) -> tuple[dict[str, Any], str]:
  """The options a program expected to train ``training_seconds`` is compiled with, and why.

  On a CPU, :func:`compiler_options` (fast to compile) where compilation
  dominates, below :data:`FAST_COMPILE_BELOW_SECONDS` of training; XLA's
  defaults (faster code) above. ``None``: unknown, the fast options.
  """
  if platform != "cpu":
    return {}, f"{platform}: XLA's defaults"
  if training_seconds is not None and training_seconds >= FAST_COMPILE_BELOW_SECONDS:
    return {}, (
      f"~{training_seconds:.0f} s of training expected, at least "
      f"{FAST_COMPILE_BELOW_SECONDS:.0f} s: XLA's defaults, whose code trains faster"
    )
  expected = "" if training_seconds is None else f"~{training_seconds:.2g} s of training expected, "
  return compiler_options(platform), (
    f"{expected}below {FAST_COMPILE_BELOW_SECONDS:.0f} s: compilation dominates, the "
    "fast-compiling options"
  )


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How long and on what batches to train, and how often to log.

  Attributes:
    steps: Optimizer steps, > 0, a multiple of ``log_every``.
    batch_size: Examples per step: ``None`` for full-batch gradient descent,
      1 for plain SGD, else mini-batch. Batches are drawn without replacement
      within an epoch (a fresh permutation per epoch); the remainder of an
      epoch that does not fill a batch is skipped. Left out for a
      :class:`~momentum_jax.data.Stream`, whose batches are its own.
    log_every: Steps between logged metrics, > 0.
    grad_norms: Also log the per-leaf gradient norms (per layer kernel and
      bias) at each log step, for vanishing-gradient studies.
    eval_batch_size: Validation examples evaluated at once (bounds memory).
    divergence_factor: A run diverges at the first step whose training loss
      is NaN, infinite, or above ``divergence_factor`` times the first step's
      loss, both measured from the problem's ``loss_floor`` (0 for the data
      losses, the minimum for a landscape, whose values may be negative);
      from then on it is frozen (no more updates) and its metrics are not to
      be trusted. > 1.
  """

  steps: int
  batch_size: int | None = None
  log_every: int = 10
  grad_norms: bool = False
  eval_batch_size: int = 1024
  divergence_factor: float = 1e3

  def __post_init__(self):
    for name in ("steps", "log_every", "eval_batch_size"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if self.batch_size is not None and (
      isinstance(self.batch_size, bool)
      or not isinstance(self.batch_size, int)
      or self.batch_size <= 0
    ):
      raise ValueError(
        f"batch_size must be a positive integer or None (full batch), got {self.batch_size!r}"
      )
    if not self.divergence_factor > 1:
      raise ValueError(f"divergence_factor must be > 1, got {self.divergence_factor!r}")
    if self.steps % self.log_every:
      raise ValueError(
        f"steps must be a multiple of log_every, got steps={self.steps} and "
        f"log_every={self.log_every}"
      )

  @property
  def num_logs(self) -> int:
    return self.steps // self.log_every

  @property
  def logged_steps(self) -> np.ndarray:
    """The step count at each log: ``log_every, 2·log_every, …, steps``."""
    return np.arange(1, self.num_logs + 1) * self.log_every


def batch_size_error(problem: Problem, batch_size: int | None) -> str | None:
  """What is wrong with ``batch_size`` for ``problem`` (to follow "batch_size "), or None.

  A stream brings its own batches; an on-device batch holds at most the
  training set.
  """
  if batch_size is None:
    return None
  if problem.is_stream:
    return (
      f"must be left out for {problem.name}: its data is a Stream, whose batches have "
      f"batch_size={problem.data.batch_size} rows; got {batch_size}"
    )
  if batch_size > problem.data.num_train:
    return (
      f"must be at most the {problem.data.num_train} training examples of "
      f"{problem.name}, got {batch_size}"
    )
  return None


def steps_per_epoch(problem: Problem, batch_size: int | None) -> int:
  """Optimizer steps in one pass over the training data (a stream's own count)."""
  if problem.is_stream:
    return problem.data.steps_per_epoch
  if batch_size is None:
    return 1
  return problem.data.num_train // batch_size
