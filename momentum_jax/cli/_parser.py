"""The ``momentum-jax`` command's parser: its commands, their options and how they are typed."""

import argparse


def _positive_int(text: str) -> int:
  try:
    value = int(text)
  except ValueError:
    value = 0
  if value <= 0:
    raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
  return value


def _positive_seconds(text: str) -> float:
  try:
    value = float(text)
  except ValueError:
    value = 0.0
  if not value > 0:
    raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text}")
  return value


def _width(text: str) -> int | str:
  if text == "measure":
    return text
  try:
    return _positive_int(text)
  except argparse.ArgumentTypeError:
    raise argparse.ArgumentTypeError(
      f"must be a positive integer or 'measure', got {text}"
    ) from None


_FORCE_HELP = (
  "go on with more than a million configurations, or a model a configuration of "
  "which needs more than a device's memory budget (refused by default)"
)


_TRACKERS = "tensorboard, mlflow, wandb"  # momentum_jax.report.exports.TRACKERS, without jax
_URI_HELP = (
  "MLflow's tracking URI (default: sqlite:///OUT/mlflow.db); TensorBoard writes "
  "under OUT/tensorboard, W&B offline under OUT/wandb (WANDB_MODE=online to send)"
)


def _add_trackers(command: argparse.ArgumentParser, live: bool = True) -> None:
  """``sweep``'s ``--log-to TRACKERS`` or ``export``'s ``--to TRACKER``, and ``--uri``."""
  extra = "each an extra: pip install 'momentum_jax[TRACKER]'"
  if live:
    command.add_argument(
      "--log-to",
      default=None,
      metavar="TRACKERS",
      help="log each configuration as its batch ends to these trackers, "
      f"comma-separated: {_TRACKERS} ({extra})",
    )
  else:
    command.add_argument(
      "--to", required=True, choices=_TRACKERS.split(", "), help=f"the tracker ({extra})"
    )
  command.add_argument("--uri", default=None, help=_URI_HELP)


def _add_sweep_command(commands) -> None:
  """``sweep CONFIG``: its options, the several-hosts group and the trackers."""
  sweep = commands.add_parser("sweep", help="run a hyperparameter sweep from a YAML config")
  sweep.add_argument("config", help="path of the sweep's YAML file (see configs/)")
  sweep.add_argument("--out", default=None, help="output folder (default: runs/<config name>)")
  sweep.add_argument(
    "--chunk-size",
    type=_positive_int,
    default=None,
    help="configurations per compiled chunk (default: chosen from memory)",
  )
  sweep.add_argument(
    "--width",
    type=_width,
    default=None,
    help="configurations each device trains at once, or 'measure' to time a "
    "few (default: chosen from a model of the device)",
  )
  sweep.add_argument(
    "--overwrite",
    action="store_true",
    help="replace a different sweep found in the output folder (by default "
    "it is refused; the same sweep is resumed)",
  )
  sweep.add_argument(
    "--checkpoint-every",
    type=_positive_seconds,
    default=60.0,
    metavar="SECONDS",
    help="seconds of training between saves of an unfinished chunk's state "
    "under OUT/state/, so that a killed sweep resumes mid-chunk "
    "(default 60)",
  )
  sweep.add_argument(
    "--quiet",
    action="store_true",
    help="no progress bar (there is none unless stderr is a terminal)",
  )
  _add_multihost(sweep)
  sweep.add_argument(
    "--top", type=_positive_int, default=5, help="best configurations to print (default 5)"
  )
  sweep.add_argument("--force", action="store_true", help=_FORCE_HELP)
  _add_trackers(sweep)


def _add_multihost(sweep: argparse.ArgumentParser) -> None:
  """``sweep``'s options for several hosts (``jax.distributed.initialize``)."""
  multihost = sweep.add_argument_group(
    "several hosts",
    "one process per host (or per GPU), each running the same command; "
    "--out must be on a file system they all share",
  )
  multihost.add_argument(
    "--distributed",
    action="store_true",
    help="call jax.distributed.initialize() first; on a TPU pod, SLURM "
    "or Open MPI it finds its peers by itself",
  )
  multihost.add_argument(
    "--coordinator",
    default=None,
    metavar="HOST:PORT",
    help="address of process 0 (implies --distributed)",
  )
  multihost.add_argument(
    "--num-processes",
    type=_positive_int,
    default=None,
    help="processes in all (implies --distributed)",
  )
  multihost.add_argument(
    "--process-id",
    type=int,
    default=None,
    help="this process's rank, 0 to N-1 (implies --distributed)",
  )


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
    prog="momentum-jax",
    description="Gradient-descent optimizers in JAX/Optax and vmap-batched sweeps of them.",
  )
  commands = parser.add_subparsers(dest="command", required=True)

  _add_sweep_command(commands)

  check = commands.add_parser(
    "check", help="validate a sweep's YAML config without training (exit status 0 or 2)"
  )
  check.add_argument("config", help="path of the sweep's YAML file")
  check.add_argument("--force", action="store_true", help=_FORCE_HELP)

  commands.add_parser("schema", help="print the JSON Schema of a sweep's config")

  _add_finished_sweep_commands(commands)

  export = commands.add_parser(
    "export", help="write a finished sweep to TensorBoard, MLflow or W&B"
  )
  export.add_argument("dir", help="the sweep's output folder")
  _add_trackers(export, live=False)

  demo = commands.add_parser(
    "demo", help="train every optimizer on the literature's linear regression"
  )
  demo.add_argument(
    "--steps",
    type=_positive_int,
    default=1000,
    help="full-batch steps per optimizer (default 1000)",
  )
  demo.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
  return parser


def _add_finished_sweep_commands(commands) -> None:
  """``plot``, ``report`` and ``dashboard``: the commands that read a sweep's output folder."""
  plot = commands.add_parser("plot", help="(re)draw the figures of a finished sweep")
  plot.add_argument("dir", help="the sweep's output folder")

  report = commands.add_parser("report", help="print the Markdown report of a finished sweep")
  report.add_argument("dir", help="the sweep's output folder")
  report.add_argument("--top", type=_positive_int, default=5)

  dashboard = commands.add_parser(
    "dashboard",
    help="serve optuna-dashboard on 127.0.0.1 for a finished sweep's studies "
    "(needs the 'dashboard' extra)",
  )
  dashboard.add_argument("dir", help="the sweep's output folder")
  dashboard.add_argument(
    "--port", type=_positive_int, default=8080, help="the port to listen on (default 8080)"
  )
