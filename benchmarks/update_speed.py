"""Times one optimizer step of momentum_jax against optax and torch.optim.

One step is ``update`` followed by ``apply_updates`` on a tree of float32
parameters (10M by default, split into leaves like a small model's). For each
momentum_jax optimizer the script times:

* momentum_jax: ``jax.jit`` of the step, params and optimizer state donated;
* optax: its equivalent, jitted and donated the same way;
* torch.optim: its equivalent ``opt.step()`` with torch's defaults (skipped
  when torch is not installed), and for Adam also ``fused=True`` when torch
  supports it on this device.

The gradients are a fixed random tree computed beforehand, so only the
optimizer is timed. Within one optimizer the contestants run round-robin, one
step each per round, in a fresh random order every round, so machine noise
(other processes, frequency changes) falls on all of them alike; the table
reports the median time per step. Warm-up steps are excluded and XLA compile
time is reported separately. A last "control" row times optax.adam against
itself: the spread of its ratio is the noise floor of the mj/optax ratios.

Two more columns check that the contestants are comparable: the number of
fused loops XLA compiled each JAX step into (on CPU, one pass over memory per
loop), and the largest difference of the parameters from mj's after the same
number of steps (0: bit-identical).

``--bandwidth`` also prints each step's memory traffic in GB/s (the float32
arrays it must read and write once each: params, grads and the optimizer's
buffers in, params and buffers out; 7 arrays for Adam) against the measured
rate of a device-to-device copy (``x * 2`` jitted: one array in, one out).
``--torch-device cuda`` puts torch's tensors on the GPU (each step then
synchronizes, as the JAX steps block until ready).

Usage::

  python benchmarks/update_speed.py                  # all optimizers, 10M params
  python benchmarks/update_speed.py --params 50_000_000 --only adam --bandwidth \
      --torch-device cuda                            # on a GPU (benchmarks/gpu.py)
  python benchmarks/update_speed.py --params 1_000_000 --repeats 20
  python benchmarks/update_speed.py --only adam,sgd --no-torch

On a shared machine read the ratios (mj/optax, mj/torch), not the times: the
``[p25-p75]`` after a ratio is the spread of the per-round paired ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import random
import re
import statistics
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import momentum_jax as mj

try:  # torch is only a point of comparison here, never a dependency
  import torch
except ImportError:
  torch = None

LR = 1e-3
BETA = 0.9


@dataclasses.dataclass
class Contestant:
  """One implementation of an optimizer, ready to take steps.

  Attributes:
    label: Column it belongs to: "mj", "optax", "torch" or "torch fused".
    step: Takes one optimizer step and waits for it to finish.
    params: Returns the current parameters as a list of numpy arrays.
    compile_s: Seconds spent tracing and compiling (JAX only).
    fusions: Number of fused loops in the compiled step (JAX only).
    times: Seconds per step, one per round.
  """

  label: str
  step: Callable[[], None]
  params: Callable[[], list[np.ndarray]]
  compile_s: float | None = None
  fusions: int | None = None
  times: list[float] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Spec:
  """One optimizer in its implementations.

  Attributes:
    title: Row name in the table.
    mj: The momentum_jax optimizer.
    optax: Its optax equivalent (same cost; same formula unless noted).
    torch: Builds the torch.optim equivalent from a parameter list; a
      function, so that no torch code runs when torch is missing. None where
      not compared.
    torch_fused: Same, with ``fused=True``; None where not compared.
  """

  title: str
  mj: optax.GradientTransformation
  optax: optax.GradientTransformation
  torch: Callable[[list[Any]], Any] | None = None
  torch_fused: Callable[[list[Any]], Any] | None = None


def specs() -> dict[str, Spec]:
  """The optimizers to compare, by their ``--only`` names."""
  lr = LR
  optim = lambda: torch.optim  # looked up only when a torch optimizer is built
  return {
    "sgd": Spec(
      "sgd",
      mj.sgd(lr),
      optax.sgd(lr),
      lambda p: optim().SGD(p, lr),
    ),
    "momentum": Spec(
      "momentum (heavy ball)",
      mj.momentum(lr, BETA, ema=False),
      optax.sgd(lr, momentum=BETA),
      lambda p: optim().SGD(p, lr, momentum=BETA),
    ),
    "momentum_ema": Spec(
      "momentum (EMA)",
      mj.momentum(lr, BETA),
      optax.chain(optax.ema(BETA, debias=False), optax.scale_by_learning_rate(lr)),
      lambda p: optim().SGD(p, lr * (1 - BETA), momentum=BETA),
    ),
    "nesterov": Spec(
      "nesterov",
      mj.nesterov(lr, BETA),
      optax.sgd(lr, momentum=BETA, nesterov=True),
      lambda p: optim().SGD(p, lr, momentum=BETA, nesterov=True),
    ),
    # torch puts eps outside the root (mj's eps_in_sqrt=False): a sqrt and a
    # divide instead of an rsqrt, but the same passes over memory.
    "rmsprop": Spec(
      "rmsprop",
      mj.rmsprop(lr, momentum=None),
      optax.rmsprop(lr),
      lambda p: optim().RMSprop(p, lr, alpha=0.9),
    ),
    # optax applies the momentum after the learning rate, mj before it (as
    # torch does): the same at a constant learning rate, up to rounding.
    "rmsprop_momentum": Spec(
      "rmsprop (momentum)",
      mj.rmsprop(lr, momentum=BETA),
      optax.rmsprop(lr, momentum=BETA),
      lambda p: optim().RMSprop(p, lr, alpha=0.9, momentum=BETA),
    ),
    # optax.adagrad puts eps inside the root, masks G = 0 with a where and
    # starts G at 0.1: a different formula, but the same passes over memory.
    "adagrad": Spec(
      "adagrad",
      mj.adagrad(lr),
      optax.adagrad(lr),
      lambda p: optim().Adagrad(p, lr),
    ),
    "adam": Spec(
      "adam",
      mj.adam(lr),
      optax.adam(lr),
      lambda p: optim().Adam(p, lr),
      lambda p: optim().Adam(p, lr, fused=True),
    ),
    # The noise floor: one program timed against itself (two jits of
    # optax.adam, in the mj and optax columns). Its mj/optax ratio is 1 but
    # for noise, so mj/optax ratios within its spread mean "no difference".
    "control": Spec(
      "control: optax.adam vs itself",
      optax.adam(lr),
      optax.adam(lr),
    ),
  }


def leaf_shapes(num_params: int) -> dict[str, Any]:
  """Shapes of a model-like tree of ``num_params`` parameters in total.

  An embedding (40%), two dense kernels (25% each) with biases, and a last
  kernel taking the rest: a few large leaves and a few tiny ones, as in a
  real network, so that per-leaf overheads show up if there are any.
  """
  width = 1024
  rows = [int(num_params * f) // width for f in (0.40, 0.25, 0.25)]
  rest = num_params - sum(r * width for r in rows) - 2 * width
  if min(rows) < 1 or rest < 1:
    raise ValueError(f"--params {num_params} is too small for the tree")
  return {
    "embed": (rows[0], width),
    "dense_0": {"kernel": (rows[1], width), "bias": (width,)},
    "dense_1": {"kernel": (rows[2], width), "bias": (width,)},
    "head": {"kernel": (rest,)},
  }


def random_tree(shapes: Any, seed: int) -> Any:
  """A tree of float32 numpy arrays of the given shapes, drawn from N(0, 1)."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(
    lambda s: rng.standard_normal(s, dtype=np.float32),
    shapes,
    is_leaf=lambda s: isinstance(s, tuple),
  )


# Float32 arrays a step reads and writes once each, at the least (see --bandwidth).
TRAFFIC_ARRAYS = {
  "sgd": 3,
  "momentum": 5,
  "momentum_ema": 5,
  "nesterov": 5,
  "rmsprop": 5,
  "rmsprop_momentum": 7,
  "adagrad": 5,
  "adam": 7,
  "control": 7,
}


def copy_gbps(num_params: int, repeats: int = 20) -> float:
  """GB/s of a jitted ``x * 2`` on ``num_params`` float32 values: one array read, one written."""
  x = jnp.ones((num_params,), jnp.float32)
  double = jax.jit(lambda a: a * 2).lower(x).compile()
  jax.block_until_ready(double(x))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(double(x))
    times.append(time.perf_counter() - start)
  return 2 * 4 * num_params / statistics.median(times) / 1e9


def jax_contestant(
  label: str, tx: optax.GradientTransformation, params_np: Any, grads: Any
) -> Contestant:
  """Jits one step of ``tx``, donating params and state, and compiles it."""

  def step(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  # Fresh device copies: donation hands the buffers over to XLA, so each
  # contestant must own its own.
  params = jax.tree.map(jnp.array, params_np)
  state = tx.init(params)
  jax.block_until_ready((params, state))
  start = time.perf_counter()
  compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, grads).compile()
  compile_s = time.perf_counter() - start
  # On CPU each fusion is one loop over its arrays, so equal counts (and
  # equal HLO) mean equal passes over memory: a per-leaf structure or casts
  # that cost anything would show up here as extra fusions.
  fusions = len(re.findall(r"^\s*\S+ = .* fusion\(", compiled.as_text(), re.M))
  carry = [params, state]

  def run():
    carry[0], carry[1] = compiled(carry[0], carry[1], grads)
    jax.block_until_ready(carry)

  return Contestant(
    label,
    run,
    params=lambda: [np.asarray(p) for p in jax.tree.leaves(carry[0])],
    compile_s=compile_s,
    fusions=fusions,
  )


def torch_contestant(
  label: str,
  make_opt: Callable[[list[Any]], Any],
  params_np: Any,
  grads_np: Any,
  device: str = "cpu",
) -> Contestant | None:
  """An ``opt.step()`` of ``make_opt(params)``; None if torch refuses it."""
  try:
    # A throwaway step on one number: fused kernels may be refused only when
    # they first run, and the real parameters must take no extra step.
    probe = torch.zeros(1, device=device, requires_grad=True)
    probe.grad = torch.ones(1, device=device)
    make_opt([probe]).step()
  except (RuntimeError, TypeError, ValueError) as e:
    print(f"({label} skipped: {type(e).__name__}: {str(e)[:100]})")
    return None
  params = [torch.tensor(p, device=device) for p in jax.tree.leaves(params_np)]
  for p, g in zip(params, jax.tree.leaves(grads_np)):
    p.requires_grad_(True)
    p.grad = torch.tensor(g, device=device)
  opt = make_opt(params)

  def step():
    opt.step()
    if device != "cpu":
      torch.cuda.synchronize()

  return Contestant(label, step, params=lambda: [p.detach().cpu().numpy() for p in params])


def run_one(
  spec: Spec,
  shapes: Any,
  repeats: int,
  warmup: int,
  use_torch: bool,
  torch_device: str = "cpu",
) -> dict[str, Contestant]:
  """Times one optimizer's contestants round-robin; returns them by label."""
  params_np = random_tree(shapes, seed=0)
  grads_np = random_tree(shapes, seed=1)
  grads = jax.tree.map(jnp.array, grads_np)
  contestants = [
    jax_contestant("mj", spec.mj, params_np, grads),
    jax_contestant("optax", spec.optax, params_np, grads),
  ]
  if use_torch:
    for label, make in (("torch", spec.torch), ("torch fused", spec.torch_fused)):
      if make is not None:
        c = torch_contestant(label, make, params_np, grads_np, torch_device)
        if c is not None:
          contestants.append(c)
  for c in contestants:
    for _ in range(warmup):
      c.step()
  rng = random.Random(0)
  for _ in range(repeats):
    # A fresh random order every round, not a rotation: a rotation keeps the
    # cyclic order, so the same contestant would always follow torch, and a
    # JAX step right after a torch step measured 10-20% slower here than one
    # right after a JAX step.
    order = list(contestants)
    rng.shuffle(order)
    for c in order:
      start = time.perf_counter()
      c.step()
      c.times.append(time.perf_counter() - start)
  return {c.label: c for c in contestants}


def ratio(a: Contestant | None, b: Contestant | None) -> str:
  """``median(a) / median(b)``, with the p25-p75 of the per-round ratios."""
  if a is None or b is None:
    return "-"
  paired = [x / y for x, y in zip(a.times, b.times)]
  q1, _, q3 = statistics.quantiles(paired, n=4)
  med = statistics.median(a.times) / statistics.median(b.times)
  return f"{med:.3f} [{q1:.2f}-{q3:.2f}]"


def ms(c: Contestant | None) -> str:
  return "-" if c is None else f"{1e3 * statistics.median(c.times):.2f}"


def max_diff(a: Contestant, b: Contestant | None) -> str:
  """Largest parameter difference after the same number of steps."""
  if b is None:
    return "-"
  d = max(float(np.max(np.abs(x - y))) for x, y in zip(a.params(), b.params()))
  return "0" if d == 0 else f"{d:.0e}"


def print_header(num_params: int, repeats: int, warmup: int, use_torch: bool) -> None:
  torch_version = torch.__version__ if torch is not None else "not installed"
  print(
    f"python {platform.python_version()}, jax {jax.__version__}, "
    f"jaxlib {jax.lib.__version__}, optax {optax.__version__}, "
    f"numpy {np.__version__}, torch {torch_version}"
    f"{'' if use_torch or torch is None else ' (left out)'}"
  )
  print(f"momentum_jax {mj.__version__} from {os.path.dirname(mj.__file__)}")
  print(f"jax devices: {jax.devices()}")
  threads = f", torch threads {torch.get_num_threads()}" if use_torch else ""
  load = " ".join(f"{x:.2f}" for x in os.getloadavg())
  print(f"host: {platform.machine()}, {os.cpu_count()} logical CPUs{threads}, load average {load}")
  print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  print(
    f"{num_params:,} float32 params; {repeats} rounds after {warmup} "
    f"warm-up steps; times are medians, ms per step"
  )
  print()


def print_table(rows: list[tuple[str, dict[str, Contestant]]]) -> None:
  cols = [
    "optimizer",
    "mj",
    "optax",
    "torch",
    "torch fused",
    "mj/optax [p25-p75]",
    "mj/torch [p25-p75]",
    "fusions mj/optax",
    "compile s mj/optax",
    "max|dw| optax/torch",
  ]
  table = []
  for title, c in rows:
    m, o, t = c["mj"], c["optax"], c.get("torch")
    table.append(
      [
        title,
        ms(m),
        ms(o),
        ms(t),
        ms(c.get("torch fused")),
        ratio(m, o),
        ratio(m, t),
        f"{m.fusions} / {o.fusions}",
        f"{m.compile_s:.2f} / {o.compile_s:.2f}",
        f"{max_diff(m, o)} / {max_diff(m, t)}",
      ]
    )
  widths = [max(len(r[i]) for r in [cols] + table) for i in range(len(cols))]
  line = lambda r: "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |"
  print(line(cols))
  print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
  for r in table:
    print(line(r))
  for title, c in rows:
    if "torch fused" in c:
      print(f"\n{title}: mj/torch fused = {ratio(c['mj'], c['torch fused'])}")


def main(argv: list[str] | None = None) -> int:
  all_specs = specs()
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--params", type=int, default=10_000_000, help="total number of float32 parameters"
  )
  parser.add_argument("--repeats", type=int, default=50, help="rounds (timed steps per contestant)")
  parser.add_argument(
    "--warmup", type=int, default=3, help="untimed steps per contestant before the rounds"
  )
  parser.add_argument("--only", default=None, help=f"comma-separated, from {','.join(all_specs)}")
  parser.add_argument(
    "--no-torch", action="store_true", help="leave torch out even when it is installed"
  )
  parser.add_argument("--torch-device", default="cpu", help="torch's device (default cpu)")
  parser.add_argument(
    "--bandwidth",
    action="store_true",
    help="also print each step's GB/s against a device-to-device copy's",
  )
  args = parser.parse_args(argv)
  if args.repeats < 2:
    parser.error("--repeats must be at least 2")
  names = list(all_specs)
  if args.only:
    names = [w.strip() for w in args.only.split(",")]
    unknown = [w for w in names if w not in all_specs]
    if unknown:
      parser.error(f"unknown --only {unknown}; choose from {list(all_specs)}")
  use_torch = torch is not None and not args.no_torch

  shapes = leaf_shapes(args.params)
  print_header(args.params, args.repeats, args.warmup, use_torch)
  rows = []
  for name in names:
    print(f"timing {name} ...", file=sys.stderr, flush=True)
    spec = all_specs[name]
    rows.append(
      (spec.title, run_one(spec, shapes, args.repeats, args.warmup, use_torch, args.torch_device))
    )
  print_table(rows)
  if args.bandwidth:
    print_bandwidth(names, rows, args.params)
  return 0


def print_bandwidth(
  names: list[str], rows: list[tuple[str, dict[str, Contestant]]], num_params: int
) -> None:
  """Each contestant's GB/s at its optimizer's least traffic, and the copy rate measured now."""
  copy = copy_gbps(num_params)
  print(f"\ndevice-to-device copy (jitted x * 2, {num_params:,} float32): {copy:.0f} GB/s")
  print("| optimizer | arrays moved | contestant | ms per step | GB/s | of the copy's |")
  print("|---|---|---|---|---|---|")
  for name, (title, contestants) in zip(names, rows):
    moved = TRAFFIC_ARRAYS[name] * 4 * num_params
    for label, c in contestants.items():
      seconds = statistics.median(c.times)
      print(
        f"| {title} | {TRAFFIC_ARRAYS[name]} | {label} | {1e3 * seconds:.3f} "
        f"| {moved / seconds / 1e9:.0f} | {moved / seconds / 1e9 / copy:.0%} |"
      )


if __name__ == "__main__":
  sys.exit(main())
