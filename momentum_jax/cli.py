"""The ``momentum-jax`` command: a thin shell over the library.

``sweep CONFIG [--out DIR]`` runs a sweep (:func:`momentum_jax.sweep.run`)
and resumes it when DIR holds a partial run of the same config (``--overwrite``
replaces another config's; ``--distributed`` joins the processes of a
multi-host run),
``plot DIR`` redraws its figures, ``report DIR`` prints its Markdown report,
``export DIR --to tensorboard|mlflow|wandb`` writes it where users watch their
runs (``sweep --log-to`` logs there as its batches end; see
:mod:`momentum_jax.report.exports`),
``dashboard DIR [--port N]`` serves optuna-dashboard on 127.0.0.1 for its
studies (``DIR/optuna.journal``; the ``dashboard`` extra),
``demo`` trains every optimizer on the literature's regression, ``check
CONFIG`` validates a config without training and ``schema`` prints the JSON
Schema of a config. A bad configuration, or an output folder that cannot be
written, is reported in one line that names the key (or the path), without a
traceback, with exit status 2.

A sweep's compiled programs are kept across runs, with the progress bar shown
or not: read back untraced where their code is all momentum_jax's and optax's
(:mod:`momentum_jax.sweep._program_cache`), through JAX's persistent compilation cache
otherwise (:mod:`momentum_jax.runtime.compile_cache`); ``MOMENTUM_JAX_COMPILE_CACHE=off``
turns both off.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys


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
        f"must be a positive integer or 'measure', got {text}") from None


_FORCE_HELP = ("go on with more than a million configurations, or a model a configuration of "
               "which needs more than a device's memory budget (refused by default)")


_TRACKERS = "tensorboard, mlflow, wandb"  # momentum_jax.report.exports.TRACKERS, without jax
_URI_HELP = ("MLflow's tracking URI (default: sqlite:///OUT/mlflow.db); TensorBoard writes "
             "under OUT/tensorboard, W&B offline under OUT/wandb (WANDB_MODE=online to send)")


def _add_trackers(command: argparse.ArgumentParser, live: bool = True) -> None:
  """``sweep``'s ``--log-to TRACKERS`` or ``export``'s ``--to TRACKER``, and ``--uri``."""
  extra = "each an extra: pip install 'momentum_jax[TRACKER]'"
  if live:
    command.add_argument("--log-to", default=None, metavar="TRACKERS",
                         help="log each configuration as its batch ends to these trackers, "
                              f"comma-separated: {_TRACKERS} ({extra})")
  else:
    command.add_argument("--to", required=True, choices=_TRACKERS.split(", "),
                         help=f"the tracker ({extra})")
  command.add_argument("--uri", default=None, help=_URI_HELP)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="momentum-jax",
      description="Gradient-descent optimizers in JAX/Optax and vmap-batched sweeps of them.")
  commands = parser.add_subparsers(dest="command", required=True)

  sweep = commands.add_parser("sweep", help="run a hyperparameter sweep from a YAML config")
  sweep.add_argument("config", help="path of the sweep's YAML file (see configs/)")
  sweep.add_argument("--out", default=None,
                     help="output folder (default: runs/<config name>)")
  sweep.add_argument("--chunk-size", type=_positive_int, default=None,
                     help="configurations per compiled chunk (default: chosen from memory)")
  sweep.add_argument("--width", type=_width, default=None,
                     help="configurations each device trains at once, or 'measure' to time a "
                          "few (default: chosen from a model of the device)")
  sweep.add_argument("--overwrite", action="store_true",
                     help="replace a different sweep found in the output folder (by default "
                          "it is refused; the same sweep is resumed)")
  sweep.add_argument("--checkpoint-every", type=_positive_seconds, default=60.0,
                     metavar="SECONDS",
                     help="seconds of training between saves of an unfinished chunk's state "
                          "under OUT/state/, so that a killed sweep resumes mid-chunk "
                          "(default 60)")
  sweep.add_argument("--quiet", action="store_true",
                     help="no progress bar (there is none unless stderr is a terminal)")
  multihost = sweep.add_argument_group(
      "several hosts", "one process per host (or per GPU), each running the same command; "
      "--out must be on a file system they all share")
  multihost.add_argument("--distributed", action="store_true",
                         help="call jax.distributed.initialize() first; on a TPU pod, SLURM "
                              "or Open MPI it finds its peers by itself")
  multihost.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                         help="address of process 0 (implies --distributed)")
  multihost.add_argument("--num-processes", type=_positive_int, default=None,
                         help="processes in all (implies --distributed)")
  multihost.add_argument("--process-id", type=int, default=None,
                         help="this process's rank, 0 to N-1 (implies --distributed)")
  sweep.add_argument("--top", type=_positive_int, default=5,
                     help="best configurations to print (default 5)")
  sweep.add_argument("--force", action="store_true", help=_FORCE_HELP)
  _add_trackers(sweep)

  check = commands.add_parser(
      "check", help="validate a sweep's YAML config without training (exit status 0 or 2)")
  check.add_argument("config", help="path of the sweep's YAML file")
  check.add_argument("--force", action="store_true", help=_FORCE_HELP)

  commands.add_parser("schema", help="print the JSON Schema of a sweep's config")

  _add_finished_sweep_commands(commands)

  export = commands.add_parser(
      "export", help="write a finished sweep to TensorBoard, MLflow or W&B")
  export.add_argument("dir", help="the sweep's output folder")
  _add_trackers(export, live=False)

  demo = commands.add_parser(
      "demo", help="train every optimizer on the literature's linear regression")
  demo.add_argument("--steps", type=_positive_int, default=1000,
                    help="full-batch steps per optimizer (default 1000)")
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
      "dashboard", help="serve optuna-dashboard on 127.0.0.1 for a finished sweep's studies "
      "(needs the 'dashboard' extra)")
  dashboard.add_argument("dir", help="the sweep's output folder")
  dashboard.add_argument("--port", type=_positive_int, default=8080,
                         help="the port to listen on (default 8080)")


def _initialize_distributed(args) -> None:
  """``jax.distributed.initialize`` with the flags given (the rest it detects)."""
  import jax
  options = {"coordinator_address": args.coordinator, "num_processes": args.num_processes,
             "process_id": args.process_id}
  try:
    jax.distributed.initialize(**{k: v for k, v in options.items() if v is not None})
  except (RuntimeError, ValueError) as error:
    raise DistributedError(f"jax.distributed.initialize failed: {error}") from None


class DistributedError(ValueError):
  """The processes of a multi-host sweep could not be brought together."""


def _live_log(args, out: str, name: str, first: bool):
  """The trackers of ``--log-to`` (a :class:`~momentum_jax.report.exports.LiveLog`), on process
  0 alone, opened before training so that a missing extra stops the sweep at once."""
  if args.log_to is None:
    if args.uri is not None:
      raise ValueError("--uri is MLflow's tracking URI: give it with --log-to mlflow")
    return None
  if not first:
    return None
  from momentum_jax.report.exports import LiveLog
  return LiveLog(args.log_to, out, name, args.uri)


def _sweep(args) -> None:
  from momentum_jax import report, sweep  # imports jax: keep --help fast
  from momentum_jax.runtime import cpu as _cpu
  import jax
  # Before JAX starts: one CPU device per core, as ``import momentum_jax``
  # gives (unless MOMENTUM_JAX_CPU_DEVICES=1 keeps JAX's one device).
  _cpu.default_cpu_devices()
  if args.distributed or any(
      v is not None for v in (args.coordinator, args.num_processes, args.process_id)):
    _initialize_distributed(args)
  config = sweep.load_config(args.config, force=args.force)
  out = args.out or os.path.join("runs", config.name)
  first = jax.process_index() == 0
  say = print if first else (lambda *a, **k: None)  # one process speaks for all
  say(f"sweep {config.name}: {config.num_configs} configurations of {config.problem}, "
      f"{config.train.steps} steps each")
  # The bar only on a terminal: redrawn in a log file, it would fill it.
  quiet = args.quiet or not first or not sys.stderr.isatty()
  live = _live_log(args, out, config.name, first)
  result = sweep.run(config, out, chunk_size=args.chunk_size, width=args.width, quiet=quiet,
                     overwrite=args.overwrite, checkpoint_every=args.checkpoint_every,
                     force=args.force, on_rows=live)
  written = report.save(result, out, figures=False)  # tables and reports (process 0 writes them)
  if not first:
    return
  timings = result.manifest["timings"]
  programs = result.manifest["programs"]
  cached = sum(bool(p.get("cache_hit")) for p in programs)
  print(f"compiled {result.manifest['compilations']} program(s) in "
        f"{timings['compile_seconds']:.1f} s"
        f"{f' ({cached} read from the cache)' if cached else ''}, trained in "
        f"{timings['run_seconds']:.1f} s on {', '.join(result.manifest['devices'])}")
  best = report.best_table(result.summary, n=args.top)
  print(f"best {len(best)} configurations (mean, std and count over seeds):")
  print(best.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
  for warning in report.warnings(result):
    print(f"warning: {warning}")
  sys.stdout.flush()  # the ranking first: the figures take a second or two more
  from momentum_jax.report import plots  # matplotlib only now
  plots.write_figures(result, out)
  for line in [] if live is None else live.close(out):
    print(line)
  views = [p.name for p in (written["html"], written["journal"]) if p is not None]
  print(f"results and figures in {out}/ (summary.csv, summary.md, {', '.join(views + [''])}"
        "curves.parquet, manifest.json, *.png)")
  if written["journal"] is not None:
    print(f"to browse them: momentum-jax dashboard {out}")
  if result.models == []:  # keep: {models: K}, and every configuration diverged
    print("kept no models: no configuration finished without diverging (see summary.md)")
  elif result.models is not None:  # keep: {models: K}
    print(f"the {len(result.models)} best configurations' trained models (every seed) in "
          f"{os.path.join(out, 'models')}/; load one with "
          f"momentum_jax.results.load_model({out!r}, rank=0)")


def _check(args) -> None:
  from momentum_jax import sweep
  from momentum_jax.runtime import cpu as _cpu
  _cpu.default_cpu_devices()
  config = sweep.check(args.config, force=args.force)
  print(f"{args.config}: ok, {config.num_configs} configurations of {config.problem} in "
        f"{len(config.optimizers)} group(s), {config.train.steps} steps each")


def _schema() -> None:
  import json
  from momentum_jax.sweep import _schema  # imports jax (the optimizers' signatures)
  print(json.dumps(_schema.json_schema(), indent=2))


def _os_error(error: OSError) -> str:
  """An operating system's fault in one line: the path, what went wrong, what to do."""
  where = f"{error.filename}: " if error.filename else ""
  what = error.strerror or str(error)
  if error.errno == errno.ENOSPC:
    what += "; free some space and run the same command again (finished chunks are kept)"
  if error.errno == errno.EADDRINUSE:
    what += "; choose another port with --port N"
  return where + what


def main(argv: list[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  try:
    if args.command == "sweep":
      _sweep(args)
    elif args.command == "check":
      _check(args)
    elif args.command == "schema":
      _schema()
    elif args.command == "plot":
      from momentum_jax.report import plots
      for path in plots.write_figures(args.dir):
        print(path)
    elif args.command == "report":
      from momentum_jax import report, results
      print(report.format_report(results.load_results(args.dir), n=args.top))
    elif args.command == "export":
      from momentum_jax.report import exports
      print(exports.export(args.dir, args.to, args.uri))
    elif args.command == "dashboard":
      from momentum_jax import report
      report.serve_dashboard(args.dir, port=args.port)
    elif args.command == "demo":
      from momentum_jax import demo
      demo.main(steps=args.steps, seed=args.seed)
  except ValueError as error:
    print(f"momentum-jax {args.command}: error: {error}", file=sys.stderr)
    return 2
  except ModuleNotFoundError as error:  # the dashboard's extra: the message names it
    if args.command != "dashboard":
      raise
    print(f"momentum-jax {args.command}: error: {error}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:  # Ctrl-C: what was saved stays; say how to go on, no traceback
    if args.command == "dashboard":
      return 0  # Ctrl-C stops the dashboard: its documented way out
    resume = (" (what was saved is kept: run the same command again to resume)"
              if args.command == "sweep" else "")
    print(f"momentum-jax {args.command}: interrupted{resume}", file=sys.stderr)
    return 130
  except BrokenPipeError:
    raise  # the reader left: see entry()
  except OSError as error:  # a missing file, a full disk, a folder not ours to write
    print(f"momentum-jax {args.command}: error: {_os_error(error)}", file=sys.stderr)
    return 2
  return 0


def entry() -> None:
  """The command's entry point: :func:`main`, then exit without tearing the interpreter down.

  After a sweep, Python's teardown of the modules and of JAX's runtime took
  0.8-1.6 s on the 2-core machine (``benchmarks/RESULTS.md``), a tenth of a
  quickstart, for nothing: by then every file the command writes is closed.
  So a single process leaves with ``os._exit`` once its output and logging
  are flushed; the processes of a multi-host sweep exit normally, since JAX
  shuts its distributed client down at exit.
  """
  try:
    code = main()
    sys.stdout.flush()
  except BrokenPipeError:
    # The reader left (``momentum-jax report DIR | head``): what the command
    # writes to files is written; the rest of its output goes nowhere,
    # without a traceback, and the exit status says the output was cut.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    code = 1
  if "jax" in sys.modules and sys.modules["jax"].process_count() > 1:
    sys.exit(code)
  logging.shutdown()
  sys.stderr.flush()
  os._exit(code)


if __name__ == "__main__":
  entry()
