"""A group's compiled segment programs, one per ``(size, width)``, each compiled once.

A batch a strategy asks for trains, from step 0, at the group's width, in
the program of its rows rounded up to whole batches of ``width`` on every
device when its strategy planned that size (:meth:`Strategy.planned`), else
in the smallest program planned at the group's width that holds it (a plain
sweep's short last chunk reuses the full chunk's: no second compilation).
The width never depends on how many rows a batch has, so a row trains as
it would in a plain sweep of that width, bit for bit.

The rows left after a :class:`~momentum_jax.sweep.strategies.Stop` are
gathered into a narrower program. While they fill a batch on every device
the width stays the group's; fewer are split evenly over the devices, the
width cut to their share: training them at the group's width would pad the
chunk with copies that cost as much as the survivors, and on an
accelerator, whose width is often the whole group, would save nothing.
Their later logs then differ from a plain sweep's by float32 rounding only.

:meth:`Programs.prefetch` compiles what a strategy plans in threads, while
the first batch trains (XLA compiles each program on one thread, without
Python's lock); anything else compiles when first needed.
"""

from __future__ import annotations

import concurrent.futures
import os
import time
from typing import Any, Callable, Iterable

import jax
import numpy as np

from momentum_jax.sweep import _execute


class Programs:
  """A group's programs by ``(size, width)``.

  Args:
    compile_for: ``(size, width, share) -> Program``, ``share`` the part of
      the group's training the program is expected to do (see :meth:`plan`).
    width: The group's width.
    devices: Devices a chunk is split over.
  """

  def __init__(
    self, compile_for: Callable[[int, int, float], _execute.Program], width: int, devices: int
  ):
    self._compile_for = compile_for
    self._width = width
    self._devices = devices
    self.compiled: dict[tuple[int, int], _execute.Program] = {}
    self._pending: dict[tuple[int, int], concurrent.futures.Future] = {}
    self.waited = 0.0  # seconds the training waited for a compilation
    # The share of the group's training each program is expected to do (1 / the programs
    # planned, set by plan): what its compile options are chosen by.
    self._share = 1.0

  def width(self, rows: int) -> int:
    """The group's width, cut to an even share of ``rows`` per device."""
    return min(self._width, -(-rows // self._devices))

  def narrow_key(self, rows: int) -> tuple[int, int]:
    """The program of ``rows`` left after a stop: the width cut to their share."""
    width = self.width(rows)
    batch = width * self._devices
    return -(-rows // batch) * batch, width

  def own_key(self, rows: int) -> tuple[int, int]:
    """``rows`` rounded up to whole batches of the group's width on every device."""
    batch = self._width * self._devices
    return -(-rows // batch) * batch, self._width

  def fresh_key(self, rows: int) -> tuple[int, int]:
    """The program a new batch of ``rows`` trains in: its own if planned, else the smallest
    one planned or compiled at the group's width that holds it (a plain sweep's short last
    chunk), else its own."""
    own = self.own_key(rows)
    known = [
      key for key in [*self.compiled, *self._pending] if key[1] == self._width and key[0] >= rows
    ]
    return own if own in known or not known else min(known)

  def plan(self, planned: Iterable[list[int]]) -> list[tuple[int, int]]:
    """The programs of the planned batches not compiled yet, largest first; each is then
    expected to do an equal share of the group's training (its compile options are chosen
    by that share).

    ``planned``: per batch, its rows between each two boundaries (the first
    a new batch's, the others what is left after stops).
    """
    wanted = set()
    for sizes in planned:
      wanted.add(self.own_key(sizes[0]))
      wanted.update(self.narrow_key(rows) for rows in sizes[1:])
    keys = sorted(wanted - set(self.compiled) - set(self._pending), reverse=True)
    self._share = 1 / max(1, len(keys))
    return keys

  def prefetch(self, keys: list[tuple[int, int]]) -> None:
    """Starts compiling these programs in threads (see :meth:`plan`)."""
    if not keys:
      return
    pool = concurrent.futures.ThreadPoolExecutor(
      min(len(keys), os.cpu_count() or 1), "momentum-jax-compile"
    )
    self._pending.update({key: pool.submit(self._compile_for, *key, self._share) for key in keys})
    pool.shutdown(wait=False)

  def get(self, key: tuple[int, int]) -> _execute.Program:
    if key not in self.compiled:
      begin = time.perf_counter()
      pending = self._pending.pop(key, None)
      self.compiled[key] = pending.result() if pending else self._compile_for(*key, self._share)
      self.waited += time.perf_counter() - begin
    return self.compiled[key]

  def finish(self) -> dict[tuple[int, int], _execute.Program]:
    """Every program compiled, a prefetched one left unused (fewer survivors) included."""
    for key in list(self._pending):
      self.compiled[key] = self._pending.pop(key).result()
    return self.compiled


def _take(tree: Any, index: jax.Array) -> Any:
  return jax.tree.map(lambda x: x[index], tree)


def repack(carry: Any, rows: np.ndarray, program: _execute.Program) -> Any:
  """``carry``'s ``rows``, padded with copies of the last, laid out as ``program``'s carry."""
  # jit caches the gather by its function and shapes: a sweep run again in
  # this process (a benchmark, a test) compiles it no more.
  take = jax.jit(_take, out_shardings=jax.tree.map(lambda s: s.sharding, program.carry))
  index = np.concatenate([rows, np.repeat(rows[-1:], program.size - len(rows))])
  return take(carry, program.replicated(index.astype(np.int32)))


def _copy_state(carry: Any, index: jax.Array) -> Any:
  state, logged = carry
  # Every field of the run's state moves but ``start``, the row's own initial metrics.
  moved = jax.tree.map(lambda x: x[index], state._replace(start=None))
  return moved._replace(start=state.start), logged


def copy_rows(carry: Any, index: np.ndarray, program: _execute.Program) -> Any:
  """The carry with row ``r``'s training state taken from row ``index[r]`` (an exploit).

  The training state moves (a Problem's parameters, model state, optimizer
  state, first loss and divergence flag; a Trainable's state and divergence
  flag) (a diverged row that copies a healthy one is
  healthy again); the logged buffer and the metrics of the initial model
  stay each row's own. Jitted with the program's carry shardings as its
  output's (the carry donated): across devices and hosts XLA's collectives
  move the rows.
  """
  shardings = jax.tree.map(lambda s: s.sharding, program.carry)
  gather = jax.jit(_copy_state, out_shardings=shardings, donate_argnums=0)
  return gather(carry, program.replicated(np.asarray(index, np.int32)))
