#!/usr/bin/env bash
# Create a virtual environment (if needed) and install minidiff with the given extras:
#   bash scripts/setup.sh course|dev [VENV]      (VENV defaults to .venv)
# torch is installed first, as the CPU build 2.13.0, unless the venv already has a torch that
# satisfies pyproject's range (install your own GPU build into .venv first to use it instead).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-course}"
venv="${2:-.venv}"
python3 -m venv "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
python -m pip install --quiet --upgrade pip
if ! python -c "import torch, sys; v = tuple(int(p) for p in torch.__version__.split('+')[0].split('.')[:2]); sys.exit(not ((2, 4) <= v < (2, 15)))" 2>/dev/null; then
  python -m pip install --quiet "torch==${MINIDIFF_TORCH_VERSION:-2.13.0}"
fi
python -m pip install --quiet -e ".[${extras}]"
python -c "import torch, minidiff; print(f'minidiff {minidiff.__version__}, torch {torch.__version__}, ready in $venv ($extras)')"
