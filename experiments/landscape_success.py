"""How often momentum reaches a global minimum of a 2-D landscape, over a grid of starts.

Claim: momentum's escapes on the landscapes (``experiments.landscapes``) hold
beyond the suggested starts: heavy-ball momentum reaches a global minimum from
more of a grid of starting points than plain GD. Set-up:
``configs/landscape_success.yaml``: each landscape of :mod:`momentum_jax.data`
at the learning rate and steps of ``configs/landscapes.yaml``; a vmapped sweep
of heavy-ball β x multiples of that learning rate, from every start of a grid
over the plotting window. Measured: the fraction of starts within a tolerance
of a global minimum at the end, one heatmap per landscape.

    python -m experiments.landscape_success [--out DIR] [--quick] [--set KEY.PATH=VALUE]
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from experiments import _cli
from experiments._common import grid_image, markdown_table, panels, write_figure, write_summary
import momentum_jax as mj
from momentum_jax.sweep import ConfigError
from momentum_jax import study as st
from momentum_jax.data import LANDSCAPES, get_landscape, reach_fraction


def _factors(path: str, value) -> list[float]:
  factors = st.list_of(st.number(positive=True))(path, value)
  if 1.0 not in factors:
    raise ConfigError(
      path,
      f"must hold 1 (the summary's table is at the landscape's own learning rate), got {value!r}",
    )
  return factors


SETTINGS = {
  "learning_rate": st.Setting(st.number(positive=True)),
  "steps": st.Setting(st.integer(minimum=1)),
}
SCHEMA = {
  "landscapes": st.Setting(st.mapping_of(st.one_of(LANDSCAPES), st.record(SETTINGS))),
  "betas": st.Setting(st.list_of(st.number(minimum=0, maximum=0.999))),
  "learning_rate_factors": st.Setting(_factors),
  "starts_per_side": st.Setting(st.integer(minimum=1)),
  "tolerance": st.Setting(st.number(positive=True)),
}


def success_fraction(landscape, settings, config) -> np.ndarray:
  """Fraction of a grid of starts reaching a global minimum, per (β, learning rate).

  One jitted program, vmapped over betas x learning rates and (in
  :func:`momentum_jax.data.reach_fraction`) the starts.
  """
  starts = landscape.start_grid(config["starts_per_side"])
  betas = jnp.asarray(config["betas"], jnp.float32)
  rates = settings["learning_rate"] * jnp.asarray(config["learning_rate_factors"], jnp.float32)

  def fraction(beta, lr):
    tx = mj.momentum(lr, beta, ema=False)
    return reach_fraction(landscape, tx, starts, settings["steps"], config["tolerance"])

  grid = jax.jit(jax.vmap(jax.vmap(fraction, in_axes=(None, 0)), in_axes=(0, None)))
  return np.asarray(grid(betas, rates))


def run(study: st.Study, out_dir: str) -> dict[str, np.ndarray]:
  """Each landscape's fractions ``[betas, learning rates]``; the summary and the figure."""
  os.makedirs(out_dir, exist_ok=True)
  config = study.settings
  fractions = {
    name: success_fraction(get_landscape(name), settings, config)
    for name, settings in config["landscapes"].items()
  }
  one = config["learning_rate_factors"].index(1.0)
  write_summary(
    out_dir,
    [
      "Fraction of starting points reaching a global minimum, at the landscape's "
      "learning rate (factor 1):",
      "",
      markdown_table(
        ["landscape", *(f"β={b:g}" for b in config["betas"])],
        [[name, *(f"{f:.2f}" for f in fraction[:, one])] for name, fraction in fractions.items()],
      ),
    ],
  )
  plot(config, fractions, out_dir)
  return fractions


def plot(config, fractions, out_dir: str) -> str:
  """Each landscape's heatmap of the fraction of starts reaching a global minimum."""
  fig, axes = panels(len(fractions), 4.6, 4.2, columns=3)
  for axis, (name, fraction) in zip(axes, fractions.items()):
    lr = config["landscapes"][name]["learning_rate"]
    image = grid_image(
      axis,
      fraction,
      [f"{f * lr:.3g}" for f in config["learning_rate_factors"]],
      [f"{b:g}" for b in config["betas"]],
      ".2f",
      vmin=0,
      vmax=1,
      cmap="viridis",
    )
    axis.set(xlabel="learning rate", ylabel="β (heavy ball; 0 is GD)")
    axis.set_title(name, fontsize=10)
  fig.colorbar(image, ax=axes.tolist(), label="fraction of starts reaching a global minimum")
  side = config["starts_per_side"]
  fig.suptitle(f"Heavy-ball momentum: β x learning rate, {side} x {side} starting points per cell")
  return write_figure(fig, out_dir, "success_fraction.png")


def main(argv: list[str] | None = None) -> None:
  _cli.main(__doc__, "landscape_success", SCHEMA, run, argv)


if __name__ == "__main__":
  main()
