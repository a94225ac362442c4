#!/usr/bin/env bash
# PyTorch peer of `nasforge proxies --proxies synflow` (see synflow_torch.py), in the venv that
# run_torch.sh sets up; arguments pass through, e.g.
#   nasforge proxies --table ../shared/benchmarks/nb201/cifar10.csv --sample 1000 \
#       --proxies synflow --out /tmp/synflow_sample.csv
#   benches/peer/run_synflow.sh /tmp/synflow_sample.csv --threads 2
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NASFORGE_TORCH_SCRIPT=synflow_torch.py exec "$here/run_torch.sh" "$@"
