#!/usr/bin/env bash
# Python peer benchmark: multi-objective Optuna (NSGA-II / TPE / random) on the NAS-Bench-201
# table, maximising accuracy and minimising parameters.
# Creates a venv (default ~/.cache/nasforge/peer-venv, override with NASFORGE_VENV)
# if missing, installs the pinned requirements, then runs optuna_mo_nb201.py with the
# arguments passed through. The costs CSV comes from the nb201_costs example, e.g.
#   cargo run -p nasforge-core --example nb201_costs -- /tmp/nb201_costs.csv
#   benches/peer/run_mo.sh --table ../shared/benchmarks/nb201/cifar10.csv \
#       --costs /tmp/nb201_costs.csv --objective test_acc_200ep \
#       --queries 50,100,200 --seeds 50 --sampler nsga2,tpe,random --json
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${NASFORGE_VENV:-$HOME/.cache/nasforge/peer-venv}"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
fi
# Cheap when already satisfied; keeps an existing venv in step with the pins.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$here/requirements.txt" >&2

exec "$venv/bin/python" "$here/optuna_mo_nb201.py" "$@"
