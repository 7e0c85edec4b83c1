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

import errno
import logging
import os
import sys

from momentum_jax.cli._parser import build_parser


def _initialize_distributed(args) -> None:
  """``jax.distributed.initialize`` with the flags given (the rest it detects)."""
  import jax

  options = {
    "coordinator_address": args.coordinator,
    "num_processes": args.num_processes,
    "process_id": args.process_id,
  }
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


def _segment_hook(args, live):
  """``on_segment`` for ``--log-to``: the live log's on process 0, and one doing nothing on
  the others, which must pull the logged metrics with it (the pull gathers from all)."""
  if args.log_to is None:
    return None
  return (lambda rows: None) if live is None else live.segment


def _sweep(args) -> None:
  from momentum_jax import report, sweep  # imports jax: keep --help fast
  from momentum_jax.runtime import cpu as _cpu
  import jax

  # Before JAX starts: one CPU device per core, as ``import momentum_jax``
  # gives (unless MOMENTUM_JAX_CPU_DEVICES=1 keeps JAX's one device).
  _cpu.default_cpu_devices()
  if args.distributed or any(
    v is not None for v in (args.coordinator, args.num_processes, args.process_id)
  ):
    _initialize_distributed(args)
  config = sweep.load_config(args.config, force=args.force)
  out = args.out or os.path.join("runs", config.name)
  first = jax.process_index() == 0
  say = print if first else (lambda *a, **k: None)  # one process speaks for all
  say(
    f"sweep {config.name}: {config.num_configs} configurations of {config.problem}, "
    f"{config.train.steps} steps each"
  )
  # The bar only on a terminal: redrawn in a log file, it would fill it.
  quiet = args.quiet or not first or not sys.stderr.isatty()
  live = _live_log(args, out, config.name, first)
  result = sweep.run(
    config,
    out,
    chunk_size=args.chunk_size,
    width=args.width,
    quiet=quiet,
    overwrite=args.overwrite,
    checkpoint_every=args.checkpoint_every,
    force=args.force,
    on_rows=live,
    on_segment=_segment_hook(args, live),
  )
  written = report.save(result, out, figures=False)  # tables and reports (process 0 writes them)
  if not first:
    return
  _say_results(args, result, written, live, out)


def _say_results(args, result, written, live, out: str) -> None:
  """What the command prints of a finished sweep (process 0), the figures written meanwhile."""
  from momentum_jax import report

  timings = result.manifest["timings"]
  programs = result.manifest["programs"]
  cached = sum(bool(p.get("cache_hit")) for p in programs)
  print(
    f"compiled {result.manifest['compilations']} program(s) in "
    f"{timings['compile_seconds']:.1f} s"
    f"{f' ({cached} read from the cache)' if cached else ''}, trained in "
    f"{timings['run_seconds']:.1f} s on {', '.join(result.manifest['devices'])}"
  )
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
  print(
    f"results and figures in {out}/ (summary.csv, summary.md, {', '.join(views + [''])}"
    "curves.parquet, manifest.json, *.png)"
  )
  if written["journal"] is not None:
    print(f"to browse them: momentum-jax dashboard {out}")
  if result.models == []:  # keep: {models: K}, and every configuration diverged
    print("kept no models: no configuration finished without diverging (see summary.md)")
  elif result.models is not None:  # keep: {models: K}
    print(
      f"the {len(result.models)} best configurations' trained models (every seed) in "
      f"{os.path.join(out, 'models')}/; load one with "
      f"momentum_jax.results.load_model({out!r}, rank=0)"
    )


def _check(args) -> None:
  from momentum_jax import sweep
  from momentum_jax.runtime import cpu as _cpu

  _cpu.default_cpu_devices()
  config = sweep.check(args.config, force=args.force)
  print(
    f"{args.config}: ok, {config.num_configs} configurations of {config.problem} in "
    f"{len(config.optimizers)} group(s), {config.train.steps} steps each"
  )


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
    resume = (
      " (what was saved is kept: run the same command again to resume)"
      if args.command == "sweep"
      else ""
    )
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
