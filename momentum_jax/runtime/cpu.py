"""How many JAX devices the CPU gets: one per core, unless the user chose.

XLA's CPU runtime runs each small operation of a batched training step on one
thread, so on JAX's single default CPU device a sweep keeps one core busy. With
one device per core the sweep engine splits the configurations over them as
over several GPUs. ``import momentum_jax`` does this (:func:`default_cpu_devices`)
when JAX has not started and nothing else chose a count, so that a script
calling :func:`momentum_jax.sweep.run` is as fast as the ``momentum-jax``
command; ``MOMENTUM_JAX_CPU_DEVICES=1`` keeps JAX's default of one device.
"""

from __future__ import annotations

import os
import warnings

import jax

ENV_VAR = "MOMENTUM_JAX_CPU_DEVICES"


def cpu_cores() -> int:
  """CPU cores this process may run on (fewer than the machine's when pinned)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not on Linux
    return os.cpu_count() or 1


def use_cpu_cores() -> bool:
  """Gives JAX one CPU device per core of this process, if it is not too late.

  XLA's CPU runtime runs each operation of a batched training step on one
  thread unless the operation is large (measured on 2 cores: a batch of 64
  products of 128×128 matrices ran at 44-56 GFLOP/s on one device, 73-117
  over two devices), so a sweep on JAX's single default CPU device leaves the other
  cores mostly idle. With one device per core, :func:`momentum_jax.sweep.run`
  splits the configurations over them like over any set of devices: on the
  2-core machine the digits-MLP sweep of ``benchmarks/sweep_speed.py`` trained
  1.6-2.2x faster and the regression sweep 1.8-2.8x, steady (see
  ``benchmarks/RESULTS.md``, runs 4 and 5).

  ``import momentum_jax`` calls it (unless ``MOMENTUM_JAX_CPU_DEVICES=1``),
  and so does the ``momentum-jax`` command. It must run before any JAX
  computation: JAX fixes its devices when it starts. It changes nothing, and
  says so by returning ``False``, when JAX has already started, or when the
  count was already chosen (``JAX_NUM_CPU_DEVICES``,
  ``jax.config.update("jax_num_cpu_devices", n)``, or
  ``--xla_force_host_platform_device_count`` in ``XLA_FLAGS``). Only the CPU
  backend is affected: on a GPU or TPU host the accelerators stay the
  default devices.

  Returns:
    Whether it set the number of CPU devices.
  """
  if (
    jax.config.jax_num_cpu_devices >= 0
    or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
  ):
    return False
  try:
    jax.config.update("jax_num_cpu_devices", cpu_cores())
  except RuntimeError:  # the backends have started
    return False
  return True


def default_cpu_devices() -> bool:
  """What ``import momentum_jax`` does: :func:`use_cpu_cores`, unless ``MOMENTUM_JAX_CPU_DEVICES=1``.

  Returns:
    Whether it set the number of CPU devices.
  """
  value = os.environ.get(ENV_VAR, "").strip()
  if value == "1":
    return False
  if value:
    warnings.warn(
      f"{ENV_VAR}={value!r} is not understood: set it to 1 to keep JAX's one CPU "
      "device, or choose a count with JAX_NUM_CPU_DEVICES; using one device per "
      "core",
      stacklevel=2,
    )
  return use_cpu_cores()
