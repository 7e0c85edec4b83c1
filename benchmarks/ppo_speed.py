"""PPO agents on CartPole-v1, trained one at a time, vmapped, and swept by the engine.

The same grid of agents (learning rate × Adam's b1 × clip ε, 4 × 4 × 4 = 64 by
default; ``experiments/ppo_cartpole.py``, 8 environments × 64 steps per update) is
trained, in this one process, as:

* (a) ``loop``: ``train_one`` (one agent's whole run, jitted) compiled once and
  called once per configuration from a Python loop: the way it is done without
  the engine;
* (b) ``vmap``: ``jax.jit(jax.vmap(train_one))``, every agent in one program on
  one device;
* (b') ``sharded vmap``: the same split over every device with ``jax.shard_map``
  (one CPU device per core, as ``import momentum_jax`` sets up);
* (b'') ``vmap, engine's options``: (b) compiled with the options the engine
  compiles a short training with on a CPU (``train.CPU_COMPILER_OPTIONS``: LLVM at
  level 2, XLA's elemental emitters), to tell their cost from the engine's own;
* (c) ``engine``: ``momentum_jax.sweep.run`` of the same grid through
  ``problem: experiments.ppo_cartpole:trainable``, and (c') with successive
  halving on ``val_return`` as ``configs/ppo_cartpole.yaml`` (``eta`` 4: 64 agents to
  30 updates, 16 to 120, 4 to 200). When
  ``momentum_jax.problems.Trainable`` or the sweep's ``trainable`` key is missing
  (the config's ``hyperparameters`` key) is missing it prints "engine: not
  available" and the rest still runs.

Every agent starts from the same key (they differ by their hyperparameters). (a),
(b) and (b') are the same runs up to float32 rounding, which a sampled action can
turn into another trajectory, so their returns agree in distribution, not bit for
bit. For each: compile and training seconds, agent-steps (environment steps) per
second of training and of the wall time (compilation included), and the return
reached (episodes completed in the last ``--log-every`` updates: the best agent's,
and the median agent's); then (b)'s mean return for each value of each
hyperparameter. Run from the repository root::

  PYTHONPATH=. python benchmarks/ppo_speed.py            # 64 agents, 200 updates
  PYTHONPATH=. python benchmarks/ppo_speed.py --quick    # 8 agents, 20 updates
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from experiments import ppo_cartpole
from momentum_jax import problems, sweep, train


def _grid(args) -> dict:
  """The hyperparameters of every agent, as columns (Python floats)."""
  rates = np.logspace(-4, -2, args.rates).tolist()
  b1s = [0.0, 0.5, 0.9, 0.99][: args.b1s]
  clips = [0.1, 0.2, 0.3, 0.4][: args.clips]
  rows = list(itertools.product(rates, b1s, clips))
  return {name: [row[i] for row in rows] for i, name in enumerate(ppo_cartpole.HYPERPARAMETERS)}


def agents_of(grid: dict) -> int:
  return len(grid["b1"])


def _row(grid: dict, k: int) -> dict:
  return {name: jnp.float32(values[k]) for name, values in grid.items()}


def _compiled(function, *inputs, options=None):
  start = time.perf_counter()
  compiled = jax.jit(function, compiler_options=options).lower(*inputs).compile()
  return compiled, time.perf_counter() - start


def loop(run, grid: dict, key):
  """(a): one agent's program, compiled once, called per configuration."""
  compiled, compile_s = _compiled(run, _row(grid, 0), key)
  start = time.perf_counter()
  returns = [compiled(_row(grid, k), key)[2]["return"] for k in range(agents_of(grid))]
  returns = np.asarray(jax.block_until_ready(returns))
  return compile_s, time.perf_counter() - start, returns


def vmapped(run, grid: dict, key, devices: int = 1, options=None):
  """(b), (b'), (b''): every agent in one program, over ``devices`` devices by shard_map,
  compiled with XLA's ``options`` (its defaults by default)."""
  batched = jax.vmap(run, in_axes=(0, None))
  columns = {name: jnp.asarray(values, jnp.float32) for name, values in grid.items()}
  if devices > 1:
    mesh = jax.make_mesh((devices,), ("config",))
    spec = PartitionSpec("config")
    # check_vma off: the agents' networks start from the one replicated key, the same on
    # every device, and become per-device values in the scans (a type shard_map checks).
    batched = jax.shard_map(
      batched, mesh=mesh, in_specs=(spec, PartitionSpec()), out_specs=spec, check_vma=False
    )
    columns = jax.device_put(columns, NamedSharding(mesh, spec))
    key = jax.device_put(key, NamedSharding(mesh, PartitionSpec()))
  compiled, compile_s = _compiled(batched, columns, key, options=options)
  start = time.perf_counter()
  evaluation = jax.block_until_ready(compiled(columns, key)[2])
  return compile_s, time.perf_counter() - start, np.asarray(evaluation["return"])


def engine(args, grid: dict, halving: bool, width: int | None = None):
  """(c), (c'): the sweep engine (at ``width``, else its own choice); None where it cannot
  train a Trainable yet."""
  if not hasattr(problems, "Trainable"):
    return None
  config = {
    "name": "ppo_speed",
    "problem": {
      "name": "experiments.ppo_cartpole:trainable",
      "num_envs": args.num_envs,
      "num_steps": args.num_steps,
    },
    "hyperparameters": {name: sorted(set(values)) for name, values in grid.items()},
    "train": {"steps": args.updates, "log_every": args.log_every},
    "seeds": [0],
  }
  if halving:
    config["search"] = {
      "method": "grid",
      "scheduler": {"name": "successive_halving", "eta": 4, "min_steps": args.min_steps,
                    "metric": "val_return"},
    }  # fmt: skip
  start = time.perf_counter()
  try:
    result = sweep.run(config, quiet=True, width=width)
  except sweep.ConfigError as error:
    if str(error).startswith("hyperparameters: unknown key"):  # an engine without Trainable
      return None
    raise
  wall = time.perf_counter() - start
  timings = result.manifest["timings"]
  summary, config_steps = result.summary, agents_of(grid) * args.updates
  if halving:  # agents stopped early trained fewer updates; rank those that ran to the end
    summary = summary[summary["stopped_at_step"] == args.updates]
    config_steps = result.manifest["scheduler"]["config_steps"]
  agent_steps = config_steps * args.num_envs * args.num_steps
  returns = summary["val_return"].values
  (width,) = result.manifest["execution"]["width"].values()
  options = {
    p["compiler_options_reason"].split(":")[-1].strip() for p in result.manifest["programs"]
  }
  how = f"width {width}, {len(result.manifest['programs'])} program(s), {'; '.join(options)}"
  return agent_steps, timings["compile_seconds"], timings["run_seconds"], wall, returns, how


def _line(name, agent_steps, compile_s, train_s, wall_s, returns, note=""):
  return (
    f"| {name} | {compile_s:.1f} | {train_s:.2f} | {wall_s:.1f} | "
    f"{agent_steps / train_s:,.0f} | {agent_steps / wall_s:,.0f} | {np.max(returns):.1f} | "
    f"{np.median(returns):.1f} | {note} |"
  )


def _by_value(grid: dict, returns) -> None:
  """The mean return of the agents with each value of each hyperparameter."""
  for name, values in grid.items():
    means = {v: np.mean(returns[np.asarray(values) == v]) for v in sorted(set(values))}
    print(f"{name}: " + ", ".join(f"{v:.3g} -> {m:.1f}" for v, m in means.items()))


def _parse():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="8 agents, 20 updates")
  parser.add_argument("--updates", type=int, default=200)
  parser.add_argument("--log-every", type=int, default=10)
  parser.add_argument("--min-steps", type=int, default=30, help="halving's first rung")
  parser.add_argument("--rates", type=int, default=4, help="learning rates, logspace 1e-4..1e-2")
  parser.add_argument("--b1s", type=int, default=4, help="the first N of 0, 0.5, 0.9, 0.99")
  parser.add_argument("--clips", type=int, default=4, help="the first N of 0.1 .. 0.4")
  parser.add_argument("--num-envs", type=int, default=8)
  parser.add_argument("--num-steps", type=int, default=64)
  parser.add_argument(
    "--engine-widths",
    type=int,
    nargs="*",
    default=[],
    help="also run (c) and (c') at these widths (the engine's own choice always runs)",
  )
  args = parser.parse_args()
  if args.quick:
    args.updates, args.log_every, args.min_steps = 20, 5, 5
    args.rates, args.b1s, args.clips = 2, 2, 2
  return args


def main() -> None:
  args = _parse()
  grid = _grid(args)
  agents = agents_of(grid)
  settings = ppo_cartpole.Settings(num_envs=args.num_envs, num_steps=args.num_steps)
  run = functools.partial(
    ppo_cartpole.train_one, updates=args.updates, log_every=args.log_every, settings=settings
  )
  agent_steps = agents * args.updates * args.num_envs * args.num_steps
  key = jax.random.key(0)
  devices = len(jax.devices())
  print(
    f"PPO CartPole-v1: {agents} agents x {args.updates} updates x {args.num_envs} envs x "
    f"{args.num_steps} steps = {agent_steps:,} agent-steps; {devices} {jax.default_backend()} "
    f"device(s); load average {os.getloadavg()[0]:.1f}\n"
  )
  print("| way | compile s | train s | wall s | agent-steps/s (train) | (wall) | best return "
        "| median return | note |")  # fmt: skip
  print("|---|---|---|---|---|---|---|---|---|")
  compile_a, train_a, returns = loop(run, grid, key)
  print(
    _line("(a) loop", agent_steps, compile_a, train_a, compile_a + train_a, returns), flush=True
  )
  compile_b, train_b, returns_b = vmapped(run, grid, key)
  print(_line("(b) vmap", agent_steps, compile_b, train_b, compile_b + train_b, returns_b,
              f"{train_a / train_b:.1f}x (a)'s training"), flush=True)  # fmt: skip
  if devices > 1 and agents % devices == 0:
    compile_s, train_s, returns = vmapped(run, grid, key, devices)
    print(_line("(b') sharded vmap", agent_steps, compile_s, train_s, compile_s + train_s, returns,
                f"{train_a / train_s:.1f}x (a)'s training"), flush=True)  # fmt: skip
  compile_s, train_s, returns = vmapped(run, grid, key, options=train.CPU_COMPILER_OPTIONS)
  print(_line("(b'') vmap, engine's options", agent_steps, compile_s, train_s,
              compile_s + train_s, returns, f"{train_a / train_s:.1f}x (a)'s training"),
        flush=True)  # fmt: skip
  variants = [
    (f"{name}{'' if width is None else f', width {width}'}", halving, width)
    for width in (None, *args.engine_widths)
    for name, halving in (("(c) engine", False), ("(c') engine, halving", True))
  ]
  for name, halving, width in variants:
    timed = engine(args, grid, halving, width)
    if timed is None:
      print(f"| {name} | engine: not available (momentum_jax cannot sweep a Trainable) |")
      break
    steps, compile_s, train_s, wall_s, returns, how = timed
    note = f"{(compile_a + train_a) / wall_s:.1f}x (a)'s wall; {how}"
    if halving:
      note += f"; {steps / agent_steps:.2f} of the grid's agent-steps; agents run to the end"
    print(_line(name, steps, compile_s, train_s, wall_s, returns, note), flush=True)
  print("\n(b)'s mean return by value:")
  _by_value(grid, returns_b)


if __name__ == "__main__":
  main()
