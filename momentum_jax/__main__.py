"""``python -m momentum_jax …`` is the ``momentum-jax`` command."""

from momentum_jax.cli import entry

if __name__ == "__main__":
  entry()
