"""``python -m momentum_jax …`` is the ``momentum-jax`` command."""

import sys

from momentum_jax.cli import main

if __name__ == "__main__":
  sys.exit(main())
