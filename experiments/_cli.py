"""What every experiment's command line shares: its study config, overlays, errors, report.

Each study reads ``configs/<name>.yaml`` (:mod:`momentum_jax.study`: a sweep
config plus a validated ``study:`` section). ``--quick`` merges the overlay
``configs/quick/<name>.yaml`` onto it (a smoke run: fewer steps and seeds);
``--set KEY.PATH=VALUE`` (repeatable, the value read as YAML) merges one
more key, e.g. ``--set study.seeds=2`` or ``--set train.steps=50``, and
``--set study.runs.cnn=null`` drops a run. A bad config, overlay or override
is reported by its path and the command exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Iterable, Mapping

from momentum_jax import study as study_lib
from momentum_jax.sweep import ConfigError

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")


def config_path(name: str) -> str:
  """The study's config file, ``configs/<name>.yaml``."""
  return os.path.join(CONFIGS, f"{name}.yaml")


def quick_path(name: str) -> str:
  """The study's smoke-run overlay, ``configs/quick/<name>.yaml``."""
  return os.path.join(CONFIGS, "quick", f"{name}.yaml")


def load(
  name: str,
  schema: Mapping[str, study_lib.Setting],
  quick: bool = False,
  overlays: Iterable[Any] = (),
  overrides: Iterable[str] = (),
  config: str | None = None,
) -> study_lib.Study:
  """The study ``name`` (or ``config``), with its quick overlay, other overlays and overrides."""
  layers = [quick_path(name)] if quick else []
  return study_lib.load_study(config or config_path(name), schema, [*layers, *overlays], overrides)


def main(
  doc: str,
  name: str,
  schema: Mapping[str, study_lib.Setting],
  run: Callable[[study_lib.Study, str], Any],
  argv: list[str] | None = None,
  shorthands: Callable[[argparse.ArgumentParser], Callable[[Any], list[str]]] | None = None,
) -> None:
  """Parses the command line, loads the study, runs it into ``--out`` and prints its summary.

  Args:
    doc: The experiment's docstring (its first line describes the command).
    name: The study's name: its config, quick overlay and default ``--out``.
    schema: The keys of its ``study:`` section.
    run: ``run(study, out_dir)``.
    argv: The arguments (default: ``sys.argv[1:]``).
    shorthands: Adds options to the parser and returns a function of the
      parsed arguments giving the overrides they stand for.
  """
  parser = argparse.ArgumentParser(description=doc.splitlines()[0])
  parser.add_argument("--out", default=os.path.join("runs", name))
  parser.add_argument("--config", default=None, help=f"default: configs/{name}.yaml")
  parser.add_argument(
    "--quick",
    action="store_true",
    help=f"smoke run: merge configs/quick/{name}.yaml onto the config",
  )
  parser.add_argument(
    "--set",
    dest="overrides",
    action="append",
    default=[],
    metavar="KEY.PATH=VALUE",
    help="override one key of the config (the value read as YAML); repeatable",
  )
  expand = shorthands(parser) if shorthands else (lambda args: [])
  args = parser.parse_args(argv)
  try:
    study = load(
      name, schema, args.quick, overrides=[*expand(args), *args.overrides], config=args.config
    )
    run(study, args.out)  # a problem's data is found (or not) only when it is built
  except ConfigError as error:
    _fail(name, error)
  except FileNotFoundError as error:  # a config or overlay file
    _fail(name, error)
  print_summary(args.out)


def _fail(name: str, error: Exception) -> None:
  print(f"python -m experiments.{name}: error: {error}", file=sys.stderr)
  raise SystemExit(2) from None


def print_summary(out_dir: str) -> None:
  """Prints the ``summary.md`` an experiment wrote, and where its outputs are."""
  with open(os.path.join(out_dir, "summary.md"), encoding="utf-8") as file:
    print(file.read())
  print(f"figures and tables in {out_dir}/")
