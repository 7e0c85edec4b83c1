"""The versions a sweep's results depend on: recorded in the manifest, keyed into kept programs."""

from __future__ import annotations

import importlib.metadata
import platform


def versions(*also: str) -> dict[str, str]:
  """The versions of the packages a sweep's results depend on (and of ``also``), and Python's."""
  names = ("momentum_jax", "jax", "jaxlib", "optax", "flax", "numpy", "pandas", *also)
  found = {}
  for name in names:
    try:
      found[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      found[name] = "not installed"
  found["python"] = platform.python_version()
  return found
