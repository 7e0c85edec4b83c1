"""Any optax optimizer, any function returning one, any problem: by name, import path or object."""

from __future__ import annotations

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import _optax_optimizers
from _training_bounds import summary_bound, training_bound
import _user_optimizers
import momentum_jax as mj
from momentum_jax import cli, models, problems, results, sweep

TRAIN = {"steps": 40, "log_every": 10}


def _fixed_init_problem() -> problems.Problem:
  """The literature's 100-sample regression, its model initialized alike whatever the key.

  So a plain optax loop starts where every run of the sweep starts.
  """
  data = problems.linear_regression("uniform").data
  return problems.Problem(
    "regression_fixed_init", data, lambda rngs: models.LinearRegression(1, rngs=nnx.Rngs(0))
  )


def _plain_final_loss(problem: problems.Problem, tx: optax.GradientTransformation) -> float:
  """A live, full-batch optax loop: the mean loss of the last ``log_every`` steps."""
  graphdef, params = nnx.split(problem.make_model(nnx.Rngs(0)))
  x, y = jnp.asarray(problem.data.x_train), jnp.asarray(problem.data.y_train)
  loss_fn = lambda params: jnp.mean((nnx.merge(graphdef, params)(x) - y) ** 2)
  state, losses = tx.init(params), []
  for _ in range(TRAIN["steps"]):
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    losses.append(float(loss))
  return float(np.mean(losses[-TRAIN["log_every"] :]))


def _config(optimizer, problem=None, **rest):
  return {
    "problem": problem or {"name": "linear_regression"},
    "optimizer": optimizer,
    "train": TRAIN,
    **rest,
  }


def test_optax_adamw_swept_equals_plain_optax_loops():
  problem = _fixed_init_problem()
  config = _config(
    {"name": "optax.adamw", "learning_rate": [0.01, 0.1], "weight_decay": [0.0, 0.5]},
    problem={"name": problem},
  )
  result = sweep.run(config, quiet=True)
  summary = result.summary
  assert set(summary.optimizer) == {"optax.adamw"}
  assert results.swept_hyperparameters(summary) == ["learning_rate", "weight_decay"]
  assert sorted(zip(summary.learning_rate, summary.weight_decay)) == [
    (0.01, 0.0),
    (0.01, 0.5),
    (0.1, 0.0),
    (0.1, 0.5),
  ]
  # The engine's program and a plain loop: within the rounding's measured
  # reach (_training_bounds.summary_bound).
  adamw = lambda learning_rate, weight_decay: optax.adamw(learning_rate, weight_decay=weight_decay)
  train = sweep.load_config(config).train
  names = ["learning_rate", "weight_decay"]
  bound = summary_bound(problem, adamw, train, summary, names)["final_loss"]
  for row, limit in zip(summary.itertuples(), bound):
    plain = _plain_final_loss(
      problem, optax.adamw(row.learning_rate, weight_decay=row.weight_decay)
    )
    assert abs(row.final_loss - plain) <= limit, (row, plain, limit)
  # The manifest names the Problem object and the alias; it is JSON.
  recorded = result.manifest["config"]
  assert recorded["problem"] == {"name": "problem:regression_fixed_init"}
  assert recorded["optimizer"]["name"] == "optax.adamw"
  json.dumps(recorded)


def test_a_schedule_with_warm_up_drives_an_optax_alias():
  problem = _fixed_init_problem()
  config = _config(
    {
      "name": "optax.adamw",
      "learning_rate": 0.1,
      "weight_decay": 0.01,
      "schedule": {"name": "cosine_annealing", "t_max": 40, "warmup_steps": [5, 10]},
    },
    problem=problem,
  )
  result = sweep.run(config, quiet=True)
  assert set(result.summary.optimizer) == {"optax.adamw(schedule=cosine_annealing)"}
  finals = []
  train = sweep.load_config(config).train
  for warmup, final in zip(result.summary["schedule.warmup_steps"], result.summary.final_loss):
    adamw = lambda learning_rate, warmup=int(warmup): optax.adamw(
      mj.join(
        [mj.linear_warmup(0.0, learning_rate, warmup), mj.cosine_annealing(learning_rate, 40)],
        [warmup],
      ),
      weight_decay=0.01,
    )
    finals.append(_plain_final_loss(problem, adamw(0.1)))
    # The engine's program and a plain loop: within the rounding's measured
    # reach (_training_bounds.training_bound).
    _, bound = training_bound(
      problem, adamw, train, {"learning_rate": [0.1]}, jax.random.key(0)[None]
    )
    assert abs(final - finals[-1]) <= bound["train_loss"][0, -1]
  assert finals[0] != finals[1]


def test_import_paths_and_callables_name_optimizers_and_problems():
  config = {
    "problem": {"name": "_user_optimizers:small_regression", "dataset": "uniform"},
    "optimizers": [
      {"name": "_user_optimizers:scaled_sgd", "learning_rate": 0.1, "scale": [0.5, 1.0]},
      # A value it branches on, given once: a static option, in the label.
      {"name": _user_optimizers.branching, "learning_rate": [0.05, 0.1], "beta": 0.9},
    ],
    "train": TRAIN,
  }
  parsed = sweep.load_config(config)
  assert [o.label for o in parsed.optimizers] == [
    "_user_optimizers:scaled_sgd",
    "_user_optimizers:branching(beta=0.9)",
  ]
  assert parsed.optimizers[1].factory is _user_optimizers.branching
  assert parsed.optimizers[1].static == {"beta": 0.9}
  assert parsed.problem == "_user_optimizers:small_regression"
  result = sweep.run(parsed, quiet=True)
  summary = result.summary
  assert result.manifest["problem"] == "linear_regression_uniform"
  # scale 0.5 at rate 0.1 is plain GD at 0.05: two programs, one exact run (summary_bound).
  scaled = summary[(summary.optimizer == "_user_optimizers:scaled_sgd") & (summary.scale == 0.5)]
  sgd = _config({"name": "sgd", "learning_rate": 0.05}, problem=config["problem"])
  reference, problem = sweep.run(sgd, quiet=True).summary, _user_optimizers.small_regression()
  bound = summary_bound(problem, mj.sgd, parsed.train, reference, ["learning_rate"])
  assert abs(scaled.final_loss.item() - reference.final_loss.item()) <= bound["final_loss"]
  assert not summary.diverged.any()
  # An importable function is recorded by its import path, as YAML would name it.
  recorded = result.manifest["config"]
  assert recorded["optimizers"][1]["name"] == "_user_optimizers:branching"
  assert recorded["problem"]["name"] == "_user_optimizers:small_regression"


def test_python_objects_are_recorded_by_name():
  factory = lambda learning_rate: optax.sgd(learning_rate)
  config = sweep.load_config(
    {
      "problem": {"name": _user_optimizers.small_regression},  # a callable problem builder
      "optimizers": [
        {"name": factory, "learning_rate": 0.1},
        {"name": optax.lion, "learning_rate": 0.1},
        {"name": mj.momentum, "learning_rate": 0.1},
      ],
      "train": TRAIN,
    }
  )
  names = [o["name"] for o in config.raw["optimizers"]]
  assert names == [
    f"python:{__name__}:test_python_objects_are_recorded_by_name.<locals>.<lambda>",
    "optax.lion",
    "momentum",
  ]
  assert [o.label for o in config.optimizers][1:] == ["optax.lion", "momentum"]
  assert config.raw["problem"] == {"name": "_user_optimizers:small_regression"}
  assert json.loads(json.dumps(config.raw)) == config.raw
  assert sweep.build_problem(config).name == "linear_regression_uniform"
  # A spec built by hand finds its factory by name.
  assert sweep.OptimizerSpec("optax.lion", {}, {}).factory is optax.lion


def test_a_problem_object_is_built_as_given():
  problem = _fixed_init_problem()
  config = sweep.load_config(_config({"name": "sgd", "learning_rate": 0.1}, problem=problem))
  assert config.problem == "regression_fixed_init"
  assert sweep.build_problem(config) is problem
  assert config.raw["problem"] == "problem:regression_fixed_init"


def _with_optimizer(**optimizer):
  return _config({"learning_rate": 0.1, **optimizer})


@pytest.mark.parametrize(
  "config, path, fragment",
  [
    (
      _with_optimizer(name="optax.adamww"),
      "optimizer.name",
      "optax has no 'adamww'; did you mean 'optax.adamw'?",
    ),
    (
      _with_optimizer(name="optax.adamw", betaa=0.9),
      "optimizer.betaa",
      "optax.adamw takes no 'betaa'; did you mean 'b1'?",
    ),
    (
      _with_optimizer(name="optax.sgd", beta=0.9),
      "optimizer.beta",
      "optax.sgd takes no 'beta'; did you mean 'momentum'?",
    ),
    (_with_optimizer(name="optax.adamw", nesterov="yes"), "optimizer.nesterov", "true or false"),
    (_config({"name": "optax.lion", "b1": 0.9}), "optimizer.learning_rate", "required"),
    (
      _config({"name": "optax.polyak_sgd", "schedule": {"name": "cosine_annealing", "t_max": 10}}),
      "optimizer.schedule",
      "takes no learning_rate",
    ),
    (_with_optimizer(name="lion"), "optimizer.name", "did you mean 'optax.lion'?"),
    (_with_optimizer(name="nadamw"), "optimizer.name", "did you mean 'adamw' or 'optax.nadamw'?"),
    (_with_optimizer(name="optax.contrib"), "optimizer.name", "is not callable"),
    (
      _with_optimizer(name="_user_optimizers:NOT_CALLABLE"),
      "optimizer.name",
      "_user_optimizers:NOT_CALLABLE is not callable (it is a int)",
    ),
    (
      _with_optimizer(name="_user_optimizers:scaled_sgdd"),
      "optimizer.name",
      "did you mean '_user_optimizers:scaled_sgd'?",
    ),
    (
      _with_optimizer(name="_user_optimizers.scaled_sgd"),
      "optimizer.name",
      "did you mean '_user_optimizers:scaled_sgd'?",
    ),
    (
      _with_optimizer(name="_no_such_module:opt"),
      "optimizer.name",
      "no module named '_no_such_module'",
    ),
    (
      _with_optimizer(name="momentum_jax.optm:adam"),
      "optimizer.name",
      "did you mean 'momentum_jax.optim'?",
    ),
    (
      _with_optimizer(name="_user_optimizers:scaled_sgd", scal=0.5),
      "optimizer.scal",
      "_user_optimizers:scaled_sgd takes no 'scal'; did you mean 'scale'?",
    ),
    (
      _with_optimizer(name="_user_optimizers:not_a_transformation"),
      "optimizer.name",
      "returned a value of type dict, not an optax.GradientTransformation",
    ),
    (
      _with_optimizer(name="_user_optimizers:branching", beta=[0.3, 0.9]),
      "optimizer.beta",
      "_user_optimizers:branching cannot take a traced value; give it one value",
    ),
    (
      {
        **_config(None),
        "optimizer": None,
        "optimizers": [
          {"name": "sgd", "learning_rate": 0.1},
          {
            "name": _user_optimizers.branching,
            "learning_rate": 0.1,
            "beta": {"linspace": [0, 0.9, 3]},
          },
        ],
      },
      "optimizers[1].beta",
      "cannot take a traced value",
    ),
    (
      _config(
        {"name": "sgd", "learning_rate": 0.1}, problem={"name": "_user_optimizers:small_regresion"}
      ),
      "problem.name",
      "did you mean '_user_optimizers:small_regression'?",
    ),
    (
      _config(
        {"name": "sgd", "learning_rate": 0.1},
        problem={"name": "_user_optimizers:small_regression", "datasett": "uniform"},
      ),
      "problem.datasett",
      "did you mean 'dataset'?",
    ),
    (
      _config(
        {"name": "sgd", "learning_rate": 0.1}, problem={"name": "_user_optimizers:NOT_CALLABLE"}
      ),
      "problem.name",
      "is not callable",
    ),
    (
      _config(
        {"name": "sgd", "learning_rate": 0.1}, problem={"name": _fixed_init_problem(), "seed": 1}
      ),
      "problem.seed",
      "a Problem object takes no options",
    ),
    (
      _config({"name": "sgd", "learning_rate": 0.1}, problem={"name": "linear_regresion"}),
      "problem.name",
      "or 'package.module:function' returning a Problem",
    ),
  ],
)
def test_bad_names_are_config_errors_naming_the_field(config, path, fragment):
  if "optimizers" in config and config["optimizer"] is None:
    del config["optimizer"]
  with pytest.raises(sweep.ConfigError) as error:
    sweep.load_config(config)
  assert error.value.path == path
  assert fragment in str(error.value)


def test_a_problem_builder_that_returns_no_problem_is_refused_before_compiling():
  config = sweep.load_config(
    _config(
      {"name": "sgd", "learning_rate": 0.1}, problem={"name": "_user_optimizers:not_a_problem"}
    )
  )
  with pytest.raises(
    sweep.ConfigError,
    match=r"^problem.name: _user_optimizers:not_a_problem "
    r"returned a value of type str, not a momentum_jax.problems.Problem",
  ):
    sweep.run(config, quiet=True)
  bad_option = sweep.load_config(
    _config(
      {"name": "sgd", "learning_rate": 0.1},
      problem={"name": "_user_optimizers:small_regression", "dataset": "normall"},
    )
  )
  with pytest.raises(sweep.ConfigError, match=r"^problem\.dataset: dataset must be one of"):
    sweep.build_problem(bad_option)


def test_a_module_in_the_current_directory_is_found(tmp_path, monkeypatch):
  (tmp_path / "_opts_here.py").write_text(
    "import optax\n\ndef opt(learning_rate):\n  return optax.sgd(learning_rate)\n"
  )
  monkeypatch.chdir(tmp_path)
  # As the `momentum-jax` command starts: the current directory not on the path.
  monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
  monkeypatch.delitem(sys.modules, "_opts_here", raising=False)
  config = sweep.load_config(_with_optimizer(name="_opts_here:opt"))
  assert config.optimizers[0].factory(0.1).init is not None
  monkeypatch.delitem(sys.modules, "_opts_here")


def test_cli_reports_a_bad_import_path_in_one_line_with_status_2(tmp_path, capsys):
  config = tmp_path / "bad.yaml"
  config.write_text(
    "problem: {name: linear_regression}\n"
    "optimizer: {name: optax.adamww, learning_rate: 0.1}\n"
    "train: {steps: 10}\n"
  )
  assert cli.main(["sweep", str(config), "--quiet"]) == 2
  err = capsys.readouterr().err
  assert err == (
    "momentum-jax sweep: error: optimizer.name: optax has no 'adamww'; "
    "did you mean 'optax.adamw'?\n"
  )


# The optimizers that must sweep every float hyperparameter traced: ours, and
# every optax optimizer a config names alone (read from optax, see _optax_optimizers).
SWEEPABLE = [*sweep.OPTIMIZERS, *_optax_optimizers.by_name()]


@pytest.mark.filterwarnings("ignore:Specifying a key")  # optax.noisy_sgd
@pytest.mark.filterwarnings("ignore:.*optimistic_adam_v2")  # optax.optimistic_adam, deprecated
@pytest.mark.parametrize("name", SWEEPABLE)
def test_every_float_hyperparameter_can_be_swept(name):
  factory, _ = sweep._optimizers.resolve_optimizer("name", name)
  parameters, _ = sweep._optimizers.keyword_parameters(factory)
  swept = {
    key: [p.default, p.default / 2]
    for key, p in parameters.items()
    if isinstance(p.default, float) and p.default > 0
  }
  if "learning_rate" in parameters:  # (optax.polyak_sgd takes a max_learning_rate)
    swept["learning_rate"] = [0.01, 0.1]
  if name == "optax.sgd":
    swept["momentum"] = [0.5, 0.9]
  config = sweep.load_config(_config({"name": name, **swept}))
  assert sorted(config.optimizers[0].grid) == sorted(swept)
  assert config.optimizers[0].label == name
