"""PPO on gymnax's CartPole-v1: a training run of pure JAX functions, swept like a problem.

The run is a ``problems.Trainable``: ``init(hyperparameters, key) -> state``, ``train(state,
hyperparameters, key, steps) -> (state, metrics)`` and ``evaluate(state) -> {"return": ...}``,
with the swept hyperparameters ``learning_rate``, ``b1`` (Adam's momentum) and ``clip_eps``
(PPO's clip ε) traced, so one program trains every configuration of a sweep at once. One
step is one PPO update (Schulman et al. 2017, "Proximal Policy Optimization Algorithms"):
``num_envs`` CartPoles stepped ``num_steps`` times by the current policy, advantages by GAE
(Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized Advantage
Estimation"), then ``epochs`` passes over the rollout in ``minibatches`` shuffled minibatches
of the clipped objective, the clipped value loss and an entropy bonus, stepped by
``optax.adam(learning_rate, b1=b1)`` after clipping the gradient's global norm.

``trainable(num_envs=8, ...)`` is the factory a config names
(``problem: {name: experiments.ppo_cartpole:trainable, num_envs: 8}``, see
``configs/ppo_cartpole.yaml``); ``train_one(hyperparameters, key, updates)`` is one agent's
whole run, jitted: the loop of ``benchmarks/ppo_speed.py``. gymnax comes with the ``rl``
extra (``pip install 'momentum_jax[rl]'``); this module imports without it.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

HYPERPARAMETERS = ("learning_rate", "b1", "clip_eps")


@dataclasses.dataclass(frozen=True)
class Settings:
  """What a sweep does not trace: sizes and PPO's fixed coefficients (hashable: jit-static)."""

  num_envs: int = 8
  num_steps: int = 64
  epochs: int = 4
  minibatches: int = 4
  hidden: int = 64
  gamma: float = 0.99
  gae_lambda: float = 0.95
  vf_coef: float = 0.5
  ent_coef: float = 0.01
  max_grad_norm: float = 0.5

  def __post_init__(self):
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if field.type == "int" and (not isinstance(value, int) or isinstance(value, bool)):
        raise TypeError(f"{field.name} must be a whole number, got {value!r}")
      if field.type == "int" and value < 1:
        raise ValueError(f"{field.name} must be at least 1, got {value}")
      if field.type == "float" and (not isinstance(value, int | float) or isinstance(value, bool)):
        raise TypeError(f"{field.name} must be a number, got {value!r}")
    if (self.num_envs * self.num_steps) % self.minibatches:
      raise ValueError(
        f"minibatches ({self.minibatches}) must divide a rollout of num_envs x "
        f"num_steps = {self.num_envs * self.num_steps} transitions; choose a divisor"
      )


class State(NamedTuple):
  """One agent: its networks, Adam's state, its environments and its episodes' returns.

  ``episode_return`` is each environment's return so far in its current episode; the
  episodes completed in the last ``train`` call add up in ``returns_sum`` and
  ``returns_count``; ``last_returns`` holds each environment's last completed episode.
  """

  params: dict
  opt_state: optax.OptState
  env_state: object
  obs: jax.Array
  episode_return: jax.Array
  returns_sum: jax.Array
  returns_count: jax.Array
  last_returns: jax.Array


class Transition(NamedTuple):
  """One environment step of every environment, as the update reads it."""

  obs: jax.Array
  action: jax.Array
  log_prob: jax.Array
  value: jax.Array
  reward: jax.Array
  done: jax.Array


def _cartpole():
  """gymnax's CartPole-v1 and its parameters, or an ImportError that names the extra."""
  try:
    import gymnax
  except ImportError as error:
    raise ImportError(
      f"experiments.ppo_cartpole needs gymnax ({error}); install the rl extra: "
      "pip install 'momentum_jax[rl]'"
    ) from error
  return gymnax.make("CartPole-v1")


def _mlp_init(key, sizes, last_scale):
  """Orthogonal weights (gain √2, ``last_scale`` for the output layer), zero biases."""
  keys = jax.random.split(key, len(sizes) - 1)
  gains = [jnp.sqrt(2.0)] * (len(sizes) - 2) + [last_scale]
  return [
    {"w": jax.nn.initializers.orthogonal(gain)(k, (m, n)), "b": jnp.zeros(n)}
    for k, gain, m, n in zip(keys, gains, sizes[:-1], sizes[1:])
  ]


def _mlp(layers, x):
  for layer in layers[:-1]:
    x = jnp.tanh(x @ layer["w"] + layer["b"])
  return x @ layers[-1]["w"] + layers[-1]["b"]


def _policy(params, obs):
  """Action logits and state values: separate actor and critic MLPs."""
  return _mlp(params["actor"], obs), _mlp(params["critic"], obs)[..., 0]


def _optimizer(hyperparameters, settings: Settings):
  return optax.chain(
    optax.clip_by_global_norm(settings.max_grad_norm),
    optax.adam(hyperparameters["learning_rate"], b1=hyperparameters["b1"]),
  )


def init(hyperparameters, key, settings: Settings = Settings()) -> State:
  """A fresh agent: networks (small last layers, as in PPO's reference code), reset envs."""
  missing = [name for name in HYPERPARAMETERS if name not in hyperparameters]
  if missing:
    raise ValueError(
      f"hyperparameters: ppo_cartpole needs {', '.join(HYPERPARAMETERS)}; missing "
      f"{', '.join(missing)} (give each a value or a range under hyperparameters:)"
    )
  env, env_params = _cartpole()
  actor_key, critic_key, env_key = jax.random.split(key, 3)
  n_obs, h = env.observation_space(env_params).shape[0], settings.hidden
  params = {
    "actor": _mlp_init(actor_key, (n_obs, h, h, env.num_actions), 0.01),
    "critic": _mlp_init(critic_key, (n_obs, h, h, 1), 1.0),
  }
  env_keys = jax.random.split(env_key, settings.num_envs)
  obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(env_keys, env_params)
  zeros = jnp.zeros(settings.num_envs)
  return State(
    params, _optimizer(hyperparameters, settings).init(params), env_state, obs,
    zeros, jnp.zeros(()), jnp.zeros(()), zeros,
  )  # fmt: skip


def _rollout(state: State, key, settings: Settings):
  """``num_steps`` steps of every environment by the current policy (gymnax auto-resets)."""
  env, env_params = _cartpole()
  step_env = jax.vmap(env.step, in_axes=(0, 0, 0, None))

  def step(state, key):
    action_key, env_key = jax.random.split(key)
    logits, value = _policy(state.params, state.obs)
    action = jax.random.categorical(action_key, logits)
    log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], 1)[:, 0]
    env_keys = jax.random.split(env_key, settings.num_envs)
    obs, env_state, reward, terminated, truncated, info = step_env(
      env_keys, state.env_state, action, env_params
    )
    done = jnp.logical_or(terminated, truncated)
    # An episode cut by the time limit did not end: its last reward is bootstrapped with
    # the value of the state it was cut at (Pardo et al. 2018, "Time Limits in RL").
    cut = jnp.logical_and(truncated, jnp.logical_not(terminated))
    _, final_value = _policy(state.params, info["final_observation"])
    target_reward = reward + settings.gamma * jnp.where(cut, final_value, 0.0)
    episode_return = state.episode_return + reward
    transition = Transition(state.obs, action, log_prob, value, target_reward, done)
    state = state._replace(
      env_state=env_state,
      obs=obs,
      episode_return=jnp.where(done, 0.0, episode_return),
      returns_sum=state.returns_sum + jnp.sum(jnp.where(done, episode_return, 0.0)),
      returns_count=state.returns_count + jnp.sum(done),
      last_returns=jnp.where(done, episode_return, state.last_returns),
    )
    return state, transition

  state, rollout = jax.lax.scan(step, state, jax.random.split(key, settings.num_steps))
  return state, rollout, _policy(state.params, state.obs)[1]


def _advantages(rollout: Transition, last_value, settings: Settings):
  """GAE(γ, λ) advantages and the value targets (advantage + value), backwards in time."""

  def back(carry, step):
    advantage, next_value = carry
    reward, value, done = step
    live = 1.0 - done
    delta = reward + settings.gamma * next_value * live - value
    advantage = delta + settings.gamma * settings.gae_lambda * live * advantage
    return (advantage, value), advantage

  steps = (rollout.reward, rollout.value, rollout.done.astype(jnp.float32))
  start = (jnp.zeros_like(last_value), last_value)
  _, advantages = jax.lax.scan(back, start, steps, reverse=True)
  return advantages, advantages + rollout.value


def _loss(params, batch, clip_eps, settings: Settings):
  """PPO's clipped surrogate, the clipped value loss and the entropy bonus, as one loss."""
  transition, advantage, target = batch
  logits, value = _policy(params, transition.obs)
  log_probs = jax.nn.log_softmax(logits)
  log_prob = jnp.take_along_axis(log_probs, transition.action[:, None], 1)[:, 0]
  ratio = jnp.exp(log_prob - transition.log_prob)
  advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
  clipped_ratio = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
  policy_loss = -jnp.mean(jnp.minimum(ratio * advantage, clipped_ratio * advantage))
  clipped_value = transition.value + jnp.clip(value - transition.value, -clip_eps, clip_eps)
  value_loss = 0.5 * jnp.mean(
    jnp.maximum(jnp.square(value - target), jnp.square(clipped_value - target))
  )
  entropy = -jnp.mean(jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1))
  loss = policy_loss + settings.vf_coef * value_loss - settings.ent_coef * entropy
  return loss, {"value_loss": value_loss, "entropy": entropy}


def _update(params, opt_state, batch, hyperparameters, key, settings: Settings):
  """``epochs`` passes over the rollout, each in ``minibatches`` shuffled minibatches."""
  tx = _optimizer(hyperparameters, settings)
  grad_fn = jax.value_and_grad(_loss, has_aux=True)
  size = settings.num_envs * settings.num_steps
  flat = jax.tree.map(lambda x: x.reshape((size,) + x.shape[2:]), batch)

  def minibatch_step(carry, minibatch):
    params, opt_state = carry
    (loss, aux), grads = grad_fn(params, minibatch, hyperparameters["clip_eps"], settings)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), {"loss": loss, **aux}

  def epoch(carry, key):
    order = jax.random.permutation(key, size).reshape(settings.minibatches, -1)
    return jax.lax.scan(minibatch_step, carry, jax.tree.map(lambda x: x[order], flat))

  keys = jax.random.split(key, settings.epochs)
  (params, opt_state), metrics = jax.lax.scan(epoch, (params, opt_state), keys)
  return params, opt_state, jax.tree.map(jnp.mean, metrics)


def _ppo_step(state: State, hyperparameters, key, settings: Settings):
  """One PPO update: a rollout, its advantages, the epochs of minibatch steps."""
  rollout_key, update_key = jax.random.split(key)
  state, rollout, last_value = _rollout(state, rollout_key, settings)
  advantages, targets = _advantages(rollout, last_value, settings)
  params, opt_state, metrics = _update(
    state.params, state.opt_state, (rollout, advantages, targets), hyperparameters,
    update_key, settings,
  )  # fmt: skip
  metrics["episode_return"] = state.last_returns.mean()
  return state._replace(params=params, opt_state=opt_state), metrics


def train(state: State, hyperparameters, key, steps: int, settings: Settings = Settings()):
  """``steps`` PPO updates; metrics per update: ``loss``, ``value_loss``, ``entropy`` (means
  over the update's minibatch steps) and ``episode_return`` (the mean over environments of
  each one's last completed episode).

  The episode returns are counted afresh for this call, so that ``evaluate`` reports the
  episodes completed in it.
  """
  state = state._replace(returns_sum=jnp.zeros(()), returns_count=jnp.zeros(()))
  keys = jax.vmap(functools.partial(jax.random.fold_in, key))(jnp.arange(steps))
  step = functools.partial(_ppo_step, hyperparameters=hyperparameters, settings=settings)
  return jax.lax.scan(lambda state, key: step(state, key=key), state, keys)


def evaluate(state: State) -> dict:
  """``return``: the mean return of the episodes completed in the last ``train`` call.

  When none was (a call shorter than an episode), the mean of each environment's last
  completed episode; 0 before any episode ended.
  """
  interval_mean = state.returns_sum / jnp.maximum(state.returns_count, 1.0)
  return {"return": jnp.where(state.returns_count > 0, interval_mean, state.last_returns.mean())}


@functools.partial(jax.jit, static_argnames=("updates", "log_every", "settings"))
def train_one(
  hyperparameters, key, updates: int, log_every: int | None = None, settings: Settings = Settings()
):
  """One agent trained ``updates`` PPO updates from ``key``: ``(state, metrics, evaluation)``.

  Segmented as a sweep segments a run: ``init`` from ``key``, then ``train`` once per
  interval of ``log_every`` updates (all of them by default) with ``key`` folded with the
  interval's first update (the engine folds a key of its own, apart from init's);
  ``evaluation`` is ``evaluate`` after the last interval, ``metrics`` per update.
  ``jax.jit(jax.vmap(train_one))`` trains many agents in one program.
  """
  log_every = log_every or updates
  if updates % log_every:
    raise ValueError(f"updates ({updates}) must be a multiple of log_every ({log_every})")

  def interval(state, first):
    return train(state, hyperparameters, jax.random.fold_in(key, first), log_every, settings)

  firsts = jnp.arange(0, updates, log_every)
  state, metrics = jax.lax.scan(interval, init(hyperparameters, key, settings), firsts)
  return state, jax.tree.map(lambda x: x.reshape(updates), metrics), evaluate(state)


def trainable(**settings):
  """The PPO run as a ``problems.Trainable``; keyword arguments override ``Settings``."""
  from momentum_jax import problems

  names = [field.name for field in dataclasses.fields(Settings)]
  for name in settings:
    if name not in names:
      close = difflib.get_close_matches(name, names, n=1)
      hint = f"did you mean {close[0]!r}?" if close else f"it takes {', '.join(names)}"
      raise TypeError(f"{name} is not an option of ppo_cartpole; {hint}")
  _cartpole()  # the missing extra is reported when the config is read, not when it trains
  fixed = Settings(**settings)
  return problems.Trainable(
    "ppo_cartpole",
    functools.partial(init, settings=fixed),
    functools.partial(train, settings=fixed),
    evaluate=evaluate,
    model=lambda state: state.params,
  )
