#!/usr/bin/env bash
# PyTorch reference benchmark: one SGD training step and inference for the same
# NAS-Bench-201 networks nasforge builds (see torch_step.py). Creates a venv
# (default ~/.cache/nasforge/torch-venv, override with NASFORGE_TORCH_VENV) if
# missing, installs the pinned requirements (torch from PyPI: the CUDA build, ~3 GB
# download / ~5.3 GB venv, see requirements-torch.txt; it runs on the CPU), then
# runs torch_step.py with the arguments passed through, e.g.
#   nice -n 10 benches/peer/run_torch.sh --net nb201 --threads 2 --json
#   nice -n 10 benches/peer/run_torch.sh --net digits --threads 1 --json
# NASFORGE_TORCH_SCRIPT names another script of this folder to run in the same venv
# (run_synflow.sh uses it for synflow_torch.py).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${NASFORGE_TORCH_VENV:-$HOME/.cache/nasforge/torch-venv}"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
fi
# Cheap when already satisfied; keeps an existing venv in step with the pins.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$here/requirements-torch.txt" >&2

exec "$venv/bin/python" "$here/${NASFORGE_TORCH_SCRIPT:-torch_step.py}" "$@"
