#!/usr/bin/env bash
# Installs the lowest versions pyproject.toml allows and runs the fast tests on them.
#
#   [LOWEST_VENV=folder] tests/lowest_versions.sh [PYTEST_ARGS...]
#
# Every `name>=X` of the dependencies and of the `test` extra becomes
# `name==X`, installed from wheels into a fresh virtual environment
# (LOWEST_VENV, kept; by default a temporary folder, removed afterwards) with the Python that runs
# `python3`; pip picks the other packages those need. The `test` extra holds
# every optional extra's packages (the trackers, the dashboard, selenium), so
# those are at their lowest too. Then the tests that check numbers and the
# config layer run there (FAST_TESTS below), and those of the extras
# (EXTRA_TESTS: the trackers read back, report.html and the dashboard in
# Chromium); a few minutes on 2 cores; or PYTEST_ARGS if given. A bound this
# fails on is a bound to raise: the suite must have run at least once on what
# a fresh install may get.
set -euo pipefail
cd "$(dirname "$0")/.."

FAST_TESTS=(
  tests/test_torch_reference.py tests/test_torch_schedules.py tests/test_optax_equivalence.py
  tests/test_schedules.py tests/test_composition.py tests/test_optimizer_arguments.py
  tests/test_hyperparameters.py tests/test_search_space.py tests/test_config_imports.py
  tests/test_train.py tests/test_results.py tests/test_checkpoint.py
  tests/test_checkpoint_killed.py
)
EXTRA_TESTS=(
  tests/test_exports.py tests/test_exports_live.py tests/test_dashboard_journal.py
  tests/test_dashboard_browser.py
)

venv="${LOWEST_VENV:-}"
if [[ -z "$venv" ]]; then
  venv="$(mktemp -d)/venv"
  trap 'rm -rf "$(dirname "$venv")"' EXIT
fi

pins=$(python3 - <<'EOF'
import re, tomllib
with open("pyproject.toml", "rb") as f:
  project = tomllib.load(f)["project"]
for requirement in project["dependencies"] + project["optional-dependencies"]["test"]:
  print(re.sub(r">=", "==", requirement))
EOF
)
echo "lowest allowed versions:" $pins
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
# shellcheck disable=SC2086  # one argument per pin
"$venv/bin/python" -m pip install -q --only-binary=:all: $pins
"$venv/bin/python" -m pip install -q --no-deps .
"$venv/bin/python" -m pip list 2>/dev/null | grep -iE "^(jax|jaxlib|optax|flax|chex|numpy|scipy|pandas|pyarrow|orbax-checkpoint|ml.dtypes|scikit-learn|matplotlib|pyyaml|tqdm|pytest|pytest-xdist|hypothesis|optuna|cmaes|tensorboardX|tensorboard|mlflow-skinny|sqlalchemy|alembic|wandb|plotly|optuna-dashboard|selenium) "
if [[ $# -gt 0 ]]; then
  "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
else
  "$venv/bin/python" -m pytest -q -p no:cacheprovider "${FAST_TESTS[@]}" "${EXTRA_TESTS[@]}"
fi
