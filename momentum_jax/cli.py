"""The ``momentum-jax`` command."""

from __future__ import annotations

import argparse
import sys


def _positive_int(text: str) -> int:
  value = int(text)
  if value <= 0:
    raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
  return value


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="momentum-jax",
      description="Gradient-descent optimizers in JAX/Optax and studies of them.")
  commands = parser.add_subparsers(dest="command", required=True)
  demo = commands.add_parser(
      "demo", help="train every optimizer on the literature's linear regression")
  demo.add_argument("--steps", type=_positive_int, default=1000,
                    help="full-batch steps per optimizer (default 1000)")
  demo.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
  return parser


def main(argv: list[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  if args.command == "demo":
    from momentum_jax import demo  # imports jax: keep --help fast
    demo.main(steps=args.steps, seed=args.seed)
  return 0


if __name__ == "__main__":
  sys.exit(main())
