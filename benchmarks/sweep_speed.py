"""Times a hyperparameter sweep four ways: per-step loop, per-config scan, engine, torch.

The same sweep (heavy-ball momentum over a learning-rate x beta grid, one
seed) runs, in this one process, as:

* (a) ``optax loop``: one jitted optax step per training step, called from a
  Python loop, configuration after configuration. The hyperparameters live in
  ``optax.inject_hyperparams`` state, so the step compiles once; params and
  state are donated; batches are drawn on device as the engine draws them.
* (b) ``scan loop``: the engine's own training run
  (:func:`momentum_jax.train.build_train`, one ``lax.scan``), jitted for one
  configuration, compiled once and called once per configuration, with XLA's
  default options as a plain ``jax.jit`` is; (b') the same, compiled with the
  options the engine compiles with (on a CPU, LLVM at level 2 rather than
  3: :func:`momentum_jax.train.compiler_options`), so that the table tells
  what the engine gains from them from what it gains from batching.
* (c) ``engine``: :func:`momentum_jax.sweep.run`, its width chosen by its model,
  called as a library user would: the script imports jax and optax, then
  ``momentum_jax``, and calls nothing else first, so the engine gets the
  devices that ``import momentum_jax`` gives JAX (one CPU device per core;
  ``MOMENTUM_JAX_CPU_DEVICES=1`` keeps JAX's one). (a), (b) and (d) run on one
  device either way. The persistent compilation cache is off (every
  contestant compiles cold) unless ``MOMENTUM_JAX_COMPILE_CACHE`` is set.
  With ``--measure`` also (c') ``engine, measured``: ``width="measure"``;
  with ``--progress`` also (c'') the engine with its progress bar on.
* (e) ``hand-written sharded vmap``: what a JAX user writes without the
  engine, ``jax.jit(jax.shard_map(jax.vmap(train_one)))`` over the devices
  the engine gets, XLA's default options, nothing beyond the update
  (:func:`sharded_vmap`); the engine's target for steady training.
* (d) ``torch``: ``torch.optim.SGD(lr, momentum=beta)`` in a plain Python loop
  per configuration (when torch is installed; not on the landscape, whose
  function is jax code), batches from ``torch.randperm``,
  one intra-op thread by default (``--torch-threads``), on ``--torch-device``
  (default cpu). Its first steps, which initialize torch's kernels, count as
  its "compile" time.

With ``--loop-sample N`` the per-configuration loops (a), (b), (b') and (d)
train only N of the K configurations, spread over the grid, and their run
times are scaled by K / N (said in their notes): at K = 1024 on a GPU a loop
over every configuration would take minutes. ``--contestants`` picks which run.

All four do the same training: same model, loss, batch size, steps and
logging (the mean training loss and the validation metrics every
``log_every`` steps); (a), (b) and (c) also the same initialization and
batches, so their final losses agree up to float32 rounding, which the table
checks. (a) and (d) skip what the engine adds per step (the divergence check,
gradient-norm recording), which favours them slightly.
Times include compilation; "steady" leaves it out. The FLOP rate counts
``2 · in · out`` FLOPs per dense layer and example forward, three times that
with the backward pass, plus the validation passes; it is set next to the rate
of a jitted 1024x1024 float32 matmul, measured in the same run, and of the
small per-example matmuls the MLP does (128x128 by 128x128, in a scan).
Also printed: what drawing one minibatch costs (``train.minibatch_indices``, a
permutation of the training set), which (a) pays at every step and (b) and (c)
at each epoch's first step (the training run carries the epoch's permutation).

Usage::

  python benchmarks/sweep_speed.py                     # the three sweeps, K = 64 (a few minutes)
  python benchmarks/sweep_speed.py --only digits_mlp --measure
  python benchmarks/sweep_speed.py --quick             # smoke run, well under a minute
  python benchmarks/sweep_speed.py --progress          # also the cost of the progress bar
  MOMENTUM_JAX_CPU_DEVICES=1 python benchmarks/sweep_speed.py   # the engine on JAX's one CPU device
  python benchmarks/sweep_speed.py --only digits_cnn --k 1024 --loop-sample 32 \
      --contestants b,c,d --torch-device cuda                # on a GPU (benchmarks/gpu.py)

On a shared machine read the ratios, not the times.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import math
import os
import platform
import sys
import time
from typing import Any, Callable

# Every contestant compiles cold, unless the caller asks for the engine's cache.
os.environ.setdefault("MOMENTUM_JAX_COMPILE_CACHE", "off")

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import momentum_jax as mj
from momentum_jax import problems, sweep
from momentum_jax.data import LANDSCAPES
from momentum_jax.train import (
  TrainConfig,
  build_train,
  compiler_options,
  epoch_order,
  minibatch_indices,
)

try:  # torch is only a point of comparison here, never a dependency
  import torch
except ImportError:
  torch = None


@dataclasses.dataclass(frozen=True)
class Sweep:
  """One benchmarked sweep.

  Attributes:
    name: Its ``--only`` name.
    problem: Keyword arguments of :func:`momentum_jax.problems.get_problem`.
    steps: Training steps per configuration.
    batch_size: Examples per step; None for full batch.
    learning_rates: The learning-rate range (log-spaced).
  """

  name: str
  problem: dict[str, Any]
  steps: int
  batch_size: int | None
  learning_rates: tuple[float, float]


SWEEPS = {
  "regression": Sweep("regression", {"name": "linear_regression"}, 1000, None, (1e-3, 0.3)),
  "digits_mlp": Sweep(
    "digits_mlp", {"name": "digits_mlp", "hidden": [128, 128]}, 300, 128, (1e-3, 0.3)
  ),
  # Two 3x3 conv stages (16, 32 channels) and a dense layer of 64 on the 8x8 digits.
  "digits_cnn": Sweep("digits_cnn", {"name": "digits_cnn"}, 300, 128, (1e-3, 0.3)),
  # A landscape: overhead-bound like the regression, with no data at all. Heavy ball is
  # stable for lr < 2(1 + β)/1002 at Rosenbrock's minimum.
  "rosenbrock": Sweep("rosenbrock", {"name": "rosenbrock"}, 1000, None, (1e-4, 1e-3)),
}


def grid(k: int, learning_rates: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
  """``k`` (learning rate, beta) pairs: a log-spaced x linear grid, as square as ``k`` allows."""
  num_betas = max(d for d in range(1, math.isqrt(k) + 1) if k % d == 0)
  lrs = np.geomspace(*learning_rates, k // num_betas)
  betas = np.linspace(0.0, 0.9, num_betas)
  return np.repeat(lrs, num_betas).astype(np.float32), np.tile(betas, len(lrs)).astype(np.float32)


def heavy_ball(learning_rate, beta):
  """The optimizer of every contestant: ``torch.optim.SGD(lr, momentum=beta)``'s rule."""
  return mj.momentum(learning_rate, beta, ema=False)


@dataclasses.dataclass
class Timing:
  """One contestant's times: compile (and other one-off setup) and the loop."""

  compile_s: float
  run_s: float
  final_losses: np.ndarray | None = None
  note: str = ""
  sample: np.ndarray | None = None  # the configurations trained, when not all

  @property
  def total_s(self) -> float:
    return self.compile_s + self.run_s


def optax_loop(problem, train: TrainConfig, lrs, betas) -> Timing:
  """(a): one jitted optax step per training step."""
  data = problem.data
  graphdef = nnx.graphdef(problem.make_model(nnx.Rngs(0)))
  tx = optax.inject_hyperparams(heavy_ball)(learning_rate=0.0, beta=0.0)

  def init(key, learning_rate, beta):
    init_key, data_key = jax.random.split(key)
    _, params, rest = nnx.split(problem.make_model(nnx.Rngs(init_key)), nnx.Param, ...)
    injected = optax.inject_hyperparams(heavy_ball)(learning_rate=learning_rate, beta=beta)
    return params, rest, injected.init(params), data_key

  def loss_fn(params, rest, x, y):
    return problem.loss(nnx.merge(graphdef, params, rest, copy=True), x, y)

  def step(params, rest, state, loss_sum, data_key, step_index):
    # The step counter stays on the device: no host-to-device copy per step.
    if train.batch_size is None:
      x, y = data.x_train, data.y_train
    else:
      index = minibatch_indices(data_key, step_index, data.num_train, train.batch_size)
      x, y = data.x_train[index], data.y_train[index]
    loss, grads = jax.value_and_grad(loss_fn)(params, rest, x, y)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss_sum + loss, step_index + 1

  def evaluate(params, rest):
    model = nnx.merge(graphdef, params, rest, copy=True)
    model.eval()
    loss = problem.loss(model, data.x_val, data.y_val)
    if not problem.is_classification:
      return loss, jnp.float32(jnp.nan)
    return loss, jnp.mean(jnp.argmax(model(data.x_val), axis=-1) == data.y_val)

  start = time.perf_counter()
  scalar = jax.ShapeDtypeStruct((), jnp.float32)
  init_c = jax.jit(init).lower(jax.random.key(0), scalar, scalar).compile()
  params, rest, state, data_key = init_c(jax.random.key(0), lrs[0], betas[0])
  step_c = (
    jax.jit(step, donate_argnums=(0, 2, 3, 5))
    .lower(params, rest, state, jnp.float32(0), data_key, jnp.int32(0))
    .compile()
  )
  eval_c = jax.jit(evaluate).lower(params, rest).compile() if data.x_val is not None else None
  compile_s = time.perf_counter() - start

  start = time.perf_counter()
  finals = []
  for lr, beta in zip(lrs, betas):
    params, rest, state, data_key = init_c(jax.random.key(0), lr, beta)
    loss_sum, step_index = jnp.float32(0), jnp.int32(0)
    for i in range(train.steps):
      params, state, loss_sum, step_index = step_c(
        params, rest, state, loss_sum, data_key, step_index
      )
      if (i + 1) % train.log_every == 0:
        mean_loss = float(loss_sum) / train.log_every  # to the host once per log, as usual
        loss_sum = jnp.float32(0)
        if eval_c is not None:
          jax.device_get(eval_c(params, rest))
    finals.append(mean_loss)
  return Timing(compile_s, time.perf_counter() - start, np.array(finals))


def scan_loop(problem, train: TrainConfig, lrs, betas, options=None) -> Timing:
  """(b): the engine's training run, one jitted ``lax.scan`` per configuration.

  Compiled with XLA's defaults, as a plain ``jax.jit`` is, or with
  ``options`` ((b'): the engine's own, :func:`momentum_jax.train.compiler_options`).
  """
  run = build_train(problem, heavy_ball, train)
  start = time.perf_counter()
  scalar = jax.ShapeDtypeStruct((), jnp.float32)
  compiled = (
    jax.jit(lambda h, key: run(h, key).metrics)
    .lower({"learning_rate": scalar, "beta": scalar}, jax.random.key(0))
    .compile(options)
  )
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  outputs = [
    compiled({"learning_rate": lr, "beta": beta}, jax.random.key(0)) for lr, beta in zip(lrs, betas)
  ]
  finals = np.array([float(o["train_loss"][-1]) for o in outputs])
  return Timing(compile_s, time.perf_counter() - start, finals)


def engine(spec: Sweep, train: TrainConfig, lrs, betas, width=None, progress=False) -> Timing:
  """(c): ``momentum_jax.sweep.run``; everything but the training counts as "compile".

  That is the compilation, the width probe when measured, and the setup
  (config checks, data, tables), each also given apart in the note. With
  ``progress`` the progress bar is on (its callbacks compiled in), drawn into
  a buffer.
  """
  num_betas = len(set(betas.tolist()))
  config = {
    "name": f"sweep_speed_{spec.name}",
    "problem": spec.problem,
    "optimizer": {
      "name": "momentum",
      "ema": False,
      "learning_rate": sorted(set(lrs.tolist())),
      "beta": betas[:num_betas].tolist(),
    },
    "train": {"steps": train.steps, "log_every": train.log_every, "batch_size": train.batch_size},
    "seeds": 1,
  }
  start = time.perf_counter()
  with contextlib.redirect_stderr(io.StringIO()):  # tqdm draws on stderr
    result = sweep.run(config, quiet=not progress, width=width)
  total = time.perf_counter() - start
  timings = result.manifest["timings"]
  run_s = timings["run_seconds"]
  execution = result.manifest["execution"]
  (chosen,) = execution["width"].values()
  options = (
    "fast-compiling" if result.manifest["programs"][0]["compiler_options"] else ("XLA's default")
  )
  note = (
    f"width {chosen} ({execution['strategy']}), {options} options; "
    f"compile {timings['compile_seconds']:.2f} s, "
    f"probe {timings['probe_seconds']:.2f} s, setup "
    f"{total - run_s - timings['compile_seconds'] - timings['probe_seconds']:.2f} s"
  )
  if execution["candidates"]:
    note += ", s per config-step: " + ", ".join(
      f"w={w} {s:.2e}" for w, s in execution["candidates"].items()
    )
  summary = result.summary.sort_values(["learning_rate", "beta"])
  return Timing(total - run_s, run_s, summary.final_loss.to_numpy(), note)


def sharded_vmap(problem, train: TrainConfig, lrs, betas) -> Timing:
  """(e): a hand-written batched trainer, compiled and run once (see :func:`sharded_vmap_program`)."""
  start = time.perf_counter()
  compiled, inputs = sharded_vmap_program(problem, train, lrs, betas)
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  metrics = jax.block_until_ready(compiled(*inputs))
  run_s = time.perf_counter() - start
  devices = len(jax.devices())
  note = f"{devices} device(s), {inputs[0].shape[0] // devices} configurations each"
  return Timing(compile_s, run_s, np.asarray(metrics["train_loss"])[: len(lrs), -1], note)


def sharded_vmap_program(problem, train: TrainConfig, lrs, betas) -> tuple[Callable, tuple]:
  """(e)'s compiled program and its inputs: ``jax.jit`` of ``shard_map`` of ``jax.vmap``.

  What a JAX user writes without the engine: each configuration's whole run
  a ``lax.scan`` of log intervals, each a scan of optax steps (the same
  model, initialization, minibatches and logged metrics as the engine's:
  the mean training loss and the validation loss and accuracy at each log),
  vmapped over the configurations, split over every device by
  ``jax.shard_map``, compiled with XLA's defaults. Each epoch's permutation
  of the training set is drawn once, all of them before the first step (the
  batches of :func:`minibatch_indices`). Nothing beyond the update: no
  divergence check, no gradient norms.
  """
  data = problem.data
  abstract = problem.abstract_model()
  graphdef = nnx.graphdef(abstract)
  has_batch_norm = any(isinstance(n, nnx.BatchNorm) for _, n in nnx.iter_graph(abstract))
  eval_graphdef = (
    nnx.graphdef(nnx.view(abstract, use_running_average=True)) if (has_batch_norm) else graphdef
  )
  per_epoch = 1 if train.batch_size is None else data.num_train // train.batch_size

  def loss_fn(params, rest, x, y):
    model = nnx.merge(graphdef, params, rest, copy=True)
    return problem.loss(model, x, y), nnx.split(model, nnx.Param, ...)[2]

  def train_one(learning_rate, beta):
    init_key, data_key = jax.random.split(jax.random.key(0))
    _, params, rest = nnx.split(problem.make_model(nnx.Rngs(init_key)), nnx.Param, ...)
    tx = heavy_ball(learning_rate, beta)
    orders = jax.vmap(lambda epoch: epoch_order(data_key, epoch, data.num_train))(
      jnp.arange(-(-train.steps // per_epoch))
    )

    def step(carry, index):
      params, rest, state = carry
      if train.batch_size is None:
        x, y = data.x_train, data.y_train
      else:
        epoch, within = jnp.divmod(index, per_epoch)
        batch = jax.lax.dynamic_slice(
          orders[epoch], (within * train.batch_size,), (train.batch_size,)
        )
        x, y = data.x_train[batch], data.y_train[batch]
      (loss, rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, rest, x, y)
      updates, state = tx.update(grads, state, params)
      return (optax.apply_updates(params, updates), rest, state), loss

    def interval(carry, indices):
      carry, losses = jax.lax.scan(step, carry, indices)
      metrics = {"train_loss": jnp.mean(losses)}
      if data.x_val is not None:
        model = nnx.merge(eval_graphdef, carry[0], carry[1], copy=True)
        metrics["val_loss"] = problem.loss(model, data.x_val, data.y_val)
        if problem.is_classification:
          metrics["val_accuracy"] = jnp.mean(jnp.argmax(model(data.x_val), -1) == data.y_val)
      return carry, metrics

    indices = jnp.arange(train.steps).reshape(train.num_logs, train.log_every)
    _, metrics = jax.lax.scan(interval, (params, rest, tx.init(params)), indices)
    return metrics

  mesh = Mesh(np.array(jax.devices()), ("config",))
  spec = PartitionSpec("config")
  # check_vma=False: the scans start from constants (as the engine's do).
  run = jax.jit(
    jax.shard_map(
      jax.vmap(train_one), mesh=mesh, in_specs=(spec, spec), out_specs=spec, check_vma=False
    )
  )
  sharding = NamedSharding(mesh, spec)
  k, devices = len(lrs), len(jax.devices())
  size = -(-k // devices) * devices  # padded to a multiple of the devices
  padded = lambda a: jax.device_put(np.resize(a, size).astype(np.float32), sharding)
  inputs = (padded(lrs), padded(betas))
  return run.lower(*inputs).compile(), inputs


def torch_loop(problem, train: TrainConfig, lrs, betas, device: str = "cpu") -> Timing:
  """(d): ``torch.optim.SGD(lr, momentum=beta)``, a plain loop per configuration."""
  data = problem.data
  on = lambda a: torch.from_numpy(np.array(a)).to(device)
  x_train, y_train = on(data.x_train), on(data.y_train)
  x_val = on(data.x_val) if data.x_val is not None else None
  y_val = on(data.y_val) if data.y_val is not None else None
  classification = problem.is_classification
  loss_fn = torch.nn.functional.cross_entropy if classification else torch.nn.functional.mse_loss
  if classification:
    y_train, y_val = y_train.long(), y_val.long()

  def make_model():
    if not classification:
      return torch.nn.Linear(x_train.shape[1], 1).to(device)
    if x_train.ndim == 4:  # NHWC images: the CNN's layers, channels first
      return torch_cnn(problem).to(device)
    hidden = [x_train.shape[1], *problem_hidden(problem)]
    layers = []
    for n_in, n_out in zip(hidden[:-1], hidden[1:]):
      layers += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(hidden[-1], data.num_classes))
    return torch.nn.Sequential(*layers).to(device)

  if x_train.ndim == 4:
    x_train, x_val = x_train.permute(0, 3, 1, 2), x_val.permute(0, 3, 1, 2)
  cuda = device.startswith("cuda")

  @torch.no_grad()
  def evaluate(model):  # to the host, as the engine's metrics are
    outputs = model(x_val)
    return float(loss_fn(outputs, y_val)), float((outputs.argmax(-1) == y_val).float().mean())

  steps_per_epoch = 1 if train.batch_size is None else data.num_train // train.batch_size
  generator = torch.Generator().manual_seed(0)

  def train_one(lr, beta, steps):
    torch.manual_seed(0)
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=float(lr), momentum=float(beta))
    loss_sum = 0.0
    for i in range(steps):
      if train.batch_size is None:
        x, y = x_train, y_train
      else:
        within = i % steps_per_epoch
        if within == 0:
          order = torch.randperm(data.num_train, generator=generator).to(device)
        index = order[within * train.batch_size : (within + 1) * train.batch_size]
        x, y = x_train[index], y_train[index]
      opt.zero_grad()
      outputs = model(x)
      loss = loss_fn(outputs if classification else outputs.squeeze(-1), y)
      loss.backward()
      opt.step()
      loss_sum = loss_sum + loss.detach()
      if (i + 1) % train.log_every == 0:
        mean_loss = float(loss_sum) / train.log_every
        loss_sum = 0.0
        if x_val is not None:
          evaluate(model)
    if cuda:
      torch.cuda.synchronize()
    return mean_loss

  # torch's first steps initialize its kernels (~2 s here): a one-off cost,
  # counted with the compilations rather than in the loop.
  start = time.perf_counter()
  train_one(lrs[0], betas[0], train.log_every)
  warmup_s = time.perf_counter() - start
  start = time.perf_counter()
  finals = [train_one(lr, beta, train.steps) for lr, beta in zip(lrs, betas)]
  return Timing(warmup_s, time.perf_counter() - start, np.array(finals))


def torch_cnn(problem) -> "torch.nn.Module":
  """The problem's CNN in torch: 3x3 SAME conv, ReLU and 2x2 max pool per stage, dense, logits."""
  abstract = nnx.eval_shape(lambda: problem.make_model(nnx.Rngs(0)))
  kernels = [
    v.shape for p, v in nnx.to_flat_state(nnx.state(abstract, nnx.Param)) if p[-1] == "kernel"
  ]
  layers, side = [], problem.data.input_shape[0]
  for shape in kernels:
    if len(shape) == 4:  # (3, 3, in, out)
      layers += [
        torch.nn.Conv2d(shape[2], shape[3], 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
      ]
      side //= 2
    else:
      if not any(isinstance(layer, torch.nn.Flatten) for layer in layers):
        layers.append(torch.nn.Flatten())
      layers += [torch.nn.Linear(*shape), torch.nn.ReLU()]
  return torch.nn.Sequential(*layers[:-1])  # no ReLU on the logits


def problem_hidden(problem) -> list[int]:
  """The hidden widths of an MLP problem's model, read off its kernels."""
  abstract = nnx.eval_shape(lambda: problem.make_model(nnx.Rngs(0)))
  kernels = [
    v.shape for p, v in nnx.to_flat_state(nnx.state(abstract, nnx.Param)) if p[-1] == "kernel"
  ]
  return [shape[1] for shape in kernels[:-1]]


def training_flops(problem, train: TrainConfig, k: int) -> float:
  """FLOPs of the sweep counted analytically: dense and conv layers, 3x forward for a step.

  A 3x3 convolution's kernel is applied at every position of its stage's
  feature map (SAME padding; each 2x2 pool halves the side).
  """
  abstract = nnx.eval_shape(lambda: problem.make_model(nnx.Rngs(0)))
  macs, side = 0, (problem.data.input_shape[0] if len(problem.data.input_shape) == 3 else 1)
  for path, v in nnx.to_flat_state(nnx.state(abstract, nnx.Param)):
    if path[-1] == "kernel":
      macs += math.prod(v.shape) * (side * side if len(v.shape) == 4 else 1)
      if len(v.shape) == 4:
        side //= 2
  examples = train.batch_size or problem.data.num_train
  per_config = train.steps * 3 * 2 * macs * examples
  if problem.data.x_val is not None:
    per_config += train.num_logs * 2 * macs * problem.data.num_val
  return k * per_config


def median_seconds(fn: Callable, *args, repeats: int = 7) -> float:
  """Median time of a compiled function over ``repeats`` calls, after one untimed."""
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def machine_rates(size: int = 1024) -> dict[str, float]:
  """Reference rates measured here and now: big and small matmuls, a minibatch draw."""
  key = jax.random.key(0)
  big = jax.random.normal(key, (size, size), jnp.float32)
  matmul = jax.jit(jnp.dot).lower(big, big).compile()
  steps = 200
  small = jax.random.normal(key, (128, 128), jnp.float32)
  chain = jax.jit(
    lambda a, b: jax.lax.scan(
      lambda c, _: (jnp.maximum(c @ b, 0.0) * 0.1, None), a, None, length=steps
    )[0]
  )
  draws = jax.jit(
    lambda k: jax.lax.scan(
      lambda c, i: (c + minibatch_indices(k, i, 1437, 128)[0], None), 0, jnp.arange(steps)
    )[0]
  )
  chain = chain.lower(small, small).compile()
  # 64 products of 128x128 matrices at once, split over the CPU devices like
  # the engine's batches: the MLP's hidden layer under vmap.
  mesh = Mesh(np.array(jax.devices()), ("config",))
  stack = jax.device_put(
    jax.random.normal(key, (64, 128, 128), jnp.float32),
    NamedSharding(mesh, PartitionSpec("config")),
  )
  batched = jax.jit(
    jax.shard_map(
      lambda a, b: jnp.einsum("bij,bjk->bik", a, b),
      mesh=mesh,
      in_specs=PartitionSpec("config"),
      out_specs=PartitionSpec("config"),
    )
  )
  batched = batched.lower(stack, stack).compile()
  return {
    "matmul": 2 * size**3 / median_seconds(matmul, big, big) / 1e9,
    "matmul_size": size,
    "matmul_128_scan": steps * 2 * 128**3 / median_seconds(chain, small, small) / 1e9,
    "matmul_128_batched": 64 * 2 * 128**3 / median_seconds(batched, stack, stack) / 1e9,
    "minibatch_draw_us": median_seconds(draws.lower(key).compile(), key) / steps * 1e6,
  }


def print_header(rates: dict[str, float], use_torch: bool) -> None:
  versions = (
    f"jax {jax.__version__}, optax {optax.__version__}, numpy {np.__version__}, "
    f"python {platform.python_version()}"
  )
  if use_torch:
    versions += f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
  print(f"# sweep_speed: {versions}")
  print(
    f"# devices {jax.devices()}, {os.cpu_count()} logical CPUs, "
    f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, "
    f"load average {os.getloadavg()[0]:.1f}"
  )
  n = rates["matmul_size"]
  print(
    f"# jitted matmul {n}x{n} float32: {rates['matmul']:.1f} GFLOP/s; "
    f"128x128 matmuls in a scan: {rates['matmul_128_scan']:.1f} GFLOP/s, "
    f"64 of them batched over the devices: {rates['matmul_128_batched']:.1f} GFLOP/s; "
    f"one minibatch draw (permutation of 1437, 128 taken): "
    f"{rates['minibatch_draw_us']:.0f} us"
  )


def report(
  spec: Sweep,
  k: int,
  train: TrainConfig,
  timings: dict[str, Timing],
  flops: float | None,
  rates: dict[str, float],
) -> None:
  work = k * train.steps
  engine_t = timings["(c) engine"]
  print(
    f"\n## {spec.name}: K = {k} configurations x {train.steps} steps "
    f"(batch {train.batch_size or 'full'}, log every {train.log_every}); "
    f"load average {os.getloadavg()[0]:.1f}"
  )
  print(
    "| contestant | compile s | run s | total s | config-steps/s | steady config-steps/s "
    "| (c)/this total | (c)/this steady | final loss vs (c): median, max rel. diff | note |"
  )
  print("|---|---|---|---|---|---|---|---|---|---|")
  for label, t in timings.items():
    diff = "-"
    if t.final_losses is not None and label.startswith(("(a)", "(b", "(c')", "(e)")):
      reference = engine_t.final_losses if t.sample is None else engine_t.final_losses[t.sample]
      rel = np.abs(t.final_losses / reference - 1)
      diff = f"{np.median(rel):.0e}, {np.max(rel):.0e}"
    print(
      f"| {label} | {t.compile_s:.2f} | {t.run_s:.2f} | {t.total_s:.2f} "
      f"| {work / t.total_s:,.0f} | {work / t.run_s:,.0f} "
      f"| {t.total_s / engine_t.total_s:.2f} | {t.run_s / engine_t.run_s:.2f} "
      f"| {diff} | {t.note} |"
    )
  if flops is None:
    return
  print(
    f"engine FLOP rate: {flops / engine_t.total_s / 1e9:.2f} GFLOP/s with compilation, "
    f"{flops / engine_t.run_s / 1e9:.2f} steady = "
    f"{flops / engine_t.run_s / 1e9 / rates['matmul']:.0%} of the {rates['matmul_size']} "
    f"matmul's {rates['matmul']:.1f}, "
    f"{flops / engine_t.run_s / 1e9 / rates['matmul_128_scan']:.0%} of the 128x128 "
    f"matmuls' {rates['matmul_128_scan']:.1f}, "
    f"{flops / engine_t.run_s / 1e9 / rates['matmul_128_batched']:.0%} of the batched "
    f"ones' {rates['matmul_128_batched']:.1f} ({flops / 1e9:.1f} GFLOP counted)"
  )


def _sampled(loop: Callable, sample: np.ndarray | None, k: int, *args, **kwargs) -> Timing:
  """A per-configuration loop over ``sample`` of the K configurations, its run time scaled to K."""
  problem, train, lrs, betas = args
  if sample is None:
    return loop(problem, train, lrs, betas, **kwargs)
  timing = loop(problem, train, lrs[sample], betas[sample], **kwargs)
  timing.run_s *= k / len(sample)
  timing.sample = sample
  timing.note = (
    f"{len(sample)} of the {k} configurations timed, the run scaled by {k / len(sample):.3g}"
  )
  return timing


CONTESTANTS = ("a", "b", "b'", "c", "d", "e")


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--only", default=None, help=f"comma-separated, from {','.join(SWEEPS)}")
  parser.add_argument("--k", type=int, default=64, help="configurations per sweep (default 64)")
  parser.add_argument(
    "--steps",
    type=int,
    default=None,
    help="training steps of every sweep (default: 1000 regression and rosenbrock, 300 MLP and CNN)",
  )
  parser.add_argument("--quick", action="store_true", help="smoke run: K = 4, 40 steps")
  parser.add_argument(
    "--measure",
    action="store_true",
    help="also run the engine with width='measure' (extra compilations)",
  )
  parser.add_argument(
    "--progress",
    action="store_true",
    help="also run the engine with its progress bar on (its callbacks cost)",
  )
  parser.add_argument(
    "--contestants",
    default=",".join(CONTESTANTS),
    help="comma-separated, from a,b,b',c,d,e (default: all); c, the engine, always runs",
  )
  parser.add_argument(
    "--loop-sample",
    type=int,
    default=None,
    metavar="N",
    help="time the per-configuration loops on N of the K configurations "
    "and scale their run time to K",
  )
  parser.add_argument(
    "--matmul-size",
    type=int,
    default=1024,
    help="side of the reference float32 matmul (default 1024; 8192 on a GPU)",
  )
  parser.add_argument(
    "--no-torch", action="store_true", help="leave torch out even when it is installed"
  )
  parser.add_argument(
    "--torch-threads",
    type=int,
    default=1,
    help="torch's intra-op threads (default 1: its fastest for these tiny "
    "ops; 2 on the loaded 2-core machine was 20-60x slower)",
  )
  parser.add_argument("--torch-device", default="cpu", help="torch's device (default cpu)")
  args = parser.parse_args(argv)
  names = list(SWEEPS)
  if args.only:
    names = [w.strip() for w in args.only.split(",")]
    unknown = [w for w in names if w not in SWEEPS]
    if unknown:
      parser.error(f"unknown --only {unknown}; choose from {list(SWEEPS)}")
  chosen = {w.strip() for w in args.contestants.split(",")} | {"c"}
  if chosen - set(CONTESTANTS):
    parser.error(f"unknown --contestants {sorted(chosen - set(CONTESTANTS))}")
  k, steps = (4, 40) if args.quick else (args.k, args.steps)
  if k < 1 or (steps is not None and steps < 1):
    parser.error("--k and --steps must be positive")
  sample = None
  if args.loop_sample is not None and args.loop_sample < k:
    sample = np.unique(np.linspace(0, k - 1, max(1, args.loop_sample)).round().astype(int))
  use_torch = torch is not None and not args.no_torch and "d" in chosen
  if use_torch:
    torch.set_num_threads(args.torch_threads)

  rates = machine_rates(args.matmul_size)
  print_header(rates, use_torch)
  for name in names:
    spec = SWEEPS[name]
    n = steps or spec.steps
    # Metrics every gcd(steps, 100) steps: as rarely as the steps allow, at most every 100.
    train = TrainConfig(steps=n, batch_size=spec.batch_size, log_every=math.gcd(n, 100))
    problem = problems.get_problem(**spec.problem)
    lrs, betas = grid(k, spec.learning_rates)
    order = np.lexsort((betas, lrs))  # the engine's summary order, sorted the same way
    lrs, betas = lrs[order], betas[order]
    timings = {}
    say = lambda what: print(f"timing {name}: {what} ...", file=sys.stderr, flush=True)
    if "a" in chosen:
      say("(a) optax loop")
      timings["(a) optax loop"] = _sampled(optax_loop, sample, k, problem, train, lrs, betas)
    if "b" in chosen:
      say("(b) scan loop")
      timings["(b) scan loop"] = _sampled(scan_loop, sample, k, problem, train, lrs, betas)
    if "b'" in chosen:
      say("(b') scan loop, engine's compiler options")
      timings["(b') scan loop, engine's compiler options"] = _sampled(
        scan_loop,
        sample,
        k,
        problem,
        train,
        lrs,
        betas,
        options=compiler_options(jax.default_backend()),
      )
    say("(c) engine")
    timings["(c) engine"] = engine(spec, train, lrs, betas)
    if args.measure:
      say("(c') engine, measured width")
      timings["(c') engine, measured"] = engine(spec, train, lrs, betas, width="measure")
    if args.progress:
      say("(c'') engine, progress bar")
      timings["(c'') engine, progress bar"] = engine(spec, train, lrs, betas, progress=True)
    if "e" in chosen:
      say("(e) hand-written sharded vmap")
      timings["(e) hand-written sharded vmap"] = sharded_vmap(problem, train, lrs, betas)
    landscape = problem.name in LANDSCAPES
    if use_torch and not landscape:  # (a landscape's function is jax code)
      say("(d) torch")
      timings["(d) torch"] = _sampled(
        torch_loop, sample, k, problem, train, lrs, betas, device=args.torch_device
      )
    flops = None if landscape else training_flops(problem, train, k)
    report(spec, k, train, timings, flops, rates)
  return 0


if __name__ == "__main__":
  sys.exit(main())
