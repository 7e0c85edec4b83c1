"""The sweep's progress bar, in configuration-steps."""

from __future__ import annotations

from typing import Callable


class Progress:
  """A progress bar in configuration-steps, advanced on the host after each segment.

  :func:`train_steps` calls :meth:`advancer`'s function once a segment has
  trained (nothing is called back from inside the compiled program, so the
  programs stay cacheable). Nothing is printed per segment: tqdm redraws at
  most ten times a second.
  """

  def __init__(self, total: int, quiet: bool):
    self.total = total
    self.quiet = quiet
    self.bar = None
    self._done = 0

  def start(self) -> None:
    """Shows the bar: after the compilations, so that its rate and ETA are the training's."""
    from tqdm.auto import tqdm  # imported late: only a sweep needs it

    self.bar = tqdm(
      total=self.total, disable=self.quiet, unit=" config-steps", unit_scale=True, desc="sweep"
    )

  def describe(self, text: str) -> None:
    self.bar.set_description(text)

  def advancer(self, rows: float) -> Callable[[int], None] | None:
    """``on_segment`` for a chunk of ``rows`` configurations (None when quiet)."""
    if self.quiet:
      return None
    return lambda steps: self.bar.update(round(rows * steps))

  def finish_chunk(self, amount: int) -> None:
    """After a chunk of ``amount`` configuration-steps: the exact count, whatever was advanced."""
    self._done += amount
    if not self.quiet:
      self.bar.update(self._done - self.bar.n)

  def close(self) -> None:
    self.bar.close()
