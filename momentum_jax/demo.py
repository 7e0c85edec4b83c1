"""A first look: every optimizer on the literature's linear regression.

``momentum-jax demo`` fits ``y = w·x + b`` to the 1000-sample set of the
literature's PyTorch demo (``x ~ N(0, 1)``, ``y = 3x + 2 + 0.5·noise``) with
full-batch gradient descent and each optimizer, and prints a comparison: the
final loss, the fitted ``w`` and ``b``, and the steps each needed to come within
1% of the least-squares optimum's loss. Each run is one jitted ``lax.scan``.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from momentum_jax import optim
from momentum_jax.data import least_squares, regression_normal


@dataclasses.dataclass(frozen=True)
class Contender:
  label: str
  optimizer: optax.GradientTransformation


def contenders(learning_rate: float = 0.01, beta: float = 0.9) -> list[Contender]:
  """The literature's line-up at its settings (lr 0.01, beta 0.9)."""
  return [
    Contender(f"gd (lr={learning_rate})", optim.sgd(learning_rate)),
    Contender(f"momentum ema (beta={beta})", optim.momentum(learning_rate, beta)),
    Contender(f"momentum heavy-ball (beta={beta})", optim.momentum(learning_rate, beta, ema=False)),
    Contender(f"nesterov (beta={beta})", optim.nesterov(learning_rate, beta)),
    Contender("rmsprop (decay=0.9)", optim.rmsprop(learning_rate)),
    Contender(f"adagrad (lr={learning_rate * 10:g})", optim.adagrad(learning_rate * 10)),
    Contender("adam (0.9, 0.999)", optim.adam(learning_rate)),
  ]


def run(
  steps: int = 1000, seed: int = 0, learning_rate: float = 0.01, beta: float = 0.9
) -> list[dict]:
  """Trains every contender; returns one result row per optimizer."""
  data = regression_normal(1000, seed)
  x, y = data.x_train[:, 0], data.y_train

  def loss_fn(p):
    return jnp.mean((p["w"] * x + p["b"] - y) ** 2)

  w_fit, b_fit, optimum = least_squares(data)
  start_params = {"w": jnp.zeros(()), "b": jnp.zeros(())}

  rows = []
  for contender in contenders(learning_rate, beta):
    start = time.perf_counter()
    params, losses = optim.minimize(loss_fn, start_params, contender.optimizer, steps)
    final = float(jax.jit(loss_fn)(params))
    seconds = time.perf_counter() - start
    within = np.nonzero(np.asarray(losses) <= 1.01 * optimum)[0]
    rows.append(
      {
        "optimizer": contender.label,
        "final_loss": final,
        "w": float(params["w"]),
        "b": float(params["b"]),
        "steps_to_1pct": int(within[0]) if within.size else None,
        "seconds": seconds,
      }
    )
  rows.append(
    {
      "optimizer": "least squares (closed form)",
      "final_loss": optimum,
      "w": w_fit,
      "b": b_fit,
      "steps_to_1pct": 0,
      "seconds": 0.0,
    }
  )
  return rows


def format_table(rows: list[dict], steps: int) -> str:
  header = f"{'optimizer':<34}{'final loss':>12}{'w':>9}{'b':>9}{'steps to 1%':>14}{'seconds':>10}"
  lines = [header, "-" * len(header)]
  for row in rows:
    reached = row["steps_to_1pct"]
    reached = f"> {steps}" if reached is None else str(reached)
    lines.append(
      f"{row['optimizer']:<34}{row['final_loss']:>12.5g}{row['w']:>9.4f}"
      f"{row['b']:>9.4f}{reached:>14}{row['seconds']:>10.2f}"
    )
  return "\n".join(lines)


def main(steps: int = 1000, seed: int = 0) -> None:
  print(
    f"Linear regression, 1000 samples, y = 3x + 2 + 0.5*noise, full batch, "
    f"{steps} steps, lr 0.01 (AdaGrad 0.1), seed {seed}  [{jax.devices()[0].platform}]"
  )
  rows = run(steps, seed)
  print(format_table(rows, steps))
  print(
    "'steps to 1%': first step whose loss is within 1% of the least-squares "
    "optimum (seconds include compilation)."
  )
