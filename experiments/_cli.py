"""What every experiment's command line shares: its parser, its config, its report."""

from __future__ import annotations

import argparse
import os
from typing import Any

import yaml


def parser(doc: str, name: str) -> argparse.ArgumentParser:
  """A parser described by ``doc``'s first line, with ``--out`` (default ``runs/<name>``)."""
  result = argparse.ArgumentParser(description=doc.splitlines()[0])
  result.add_argument("--out", default=os.path.join("runs", name))
  return result


def read_config(path: str) -> dict[str, Any]:
  """The experiment's YAML config as a dict."""
  with open(path, encoding="utf-8") as file:
    return yaml.safe_load(file)


def print_summary(out_dir: str) -> None:
  """Prints the ``summary.md`` an experiment wrote, and where its outputs are."""
  with open(os.path.join(out_dir, "summary.md"), encoding="utf-8") as file:
    print(file.read())
  print(f"figures and tables in {out_dir}/")
