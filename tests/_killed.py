"""A sweep that dies right after its batch state is saved: what a kill there leaves behind."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from momentum_jax.sweep._batch_state import BatchState


class Killed(Exception):
  """Stands for the process dying."""


def run_killed_after_a_save(
  monkeypatch, run: Callable[[], Any], dies: Callable[[Any, int], bool]
) -> int:
  """Runs ``run()`` until the first save of a batch's state at a ``(position, step)`` that
  ``dies``, and raises :class:`Killed` right after it; returns that step. The save is the
  real one, so the folder is left as a kill there would leave it."""
  save, died = BatchState.maybe_save, []

  def save_then_die(self, position, strategy, carry, step):
    done = save(self, position, strategy, carry, step)
    if done and dies(position, step):
      died.append(step)
      raise Killed
    return done

  with monkeypatch.context() as patched:
    patched.setattr(BatchState, "maybe_save", save_then_die)
    with pytest.raises(Killed):
      run()
  return died[0]
