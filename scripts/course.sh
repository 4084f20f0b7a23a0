#!/usr/bin/env bash
# Set up and open the course:   bash scripts/course.sh        (JupyterLab on notebooks/)
# or build the book instead:    bash scripts/course.sh book   (HTML in _build/html)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh course
. .venv/bin/activate
export HF_HUB_OFFLINE=1
if [ "${1:-lab}" = "book" ]; then
  jupyter-book build . --config book/_config.yml --toc book/_toc.yml
  echo "open _build/html/index.html"
else
  exec jupyter lab notebooks/
fi
