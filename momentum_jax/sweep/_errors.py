"""The errors a sweep raises for bad input: its configuration, its output folder."""

from __future__ import annotations


class ConfigError(ValueError):
  """A sweep configuration is invalid. ``path`` names the field, as in the YAML.

  Example: ``optimizer.beta.linspace: count must be a positive integer, got 0``.
  """

  def __init__(self, path: str, message: str):
    self.path = path
    # A key of 100,000 characters is named by its ends.
    shown = path if len(path) <= 160 else f"{path[:80]}...{path[-40:]}"
    super().__init__(f"{shown}: {message}" if path else message)


class OutputDirError(ValueError):
  """The output folder holds another sweep, or chunks that cannot be merged, or cannot be written."""
