#!/usr/bin/env bash
# Set up and open the course:   bash scripts/course.sh        (JupyterLab on notebooks/, prints the address to open)
# or build the book instead:    bash scripts/course.sh book   (HTML in _build/html)
# or check it without a person: bash scripts/course.sh check  (starts JupyterLab, runs one chapter, stops; CI runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-lab}"
case "$mode" in
  lab|book|check) ;;
  *) echo "usage: bash scripts/course.sh [lab|book|check]  (got '$mode')" >&2; exit 2 ;;
esac
bash scripts/setup.sh course
# shellcheck disable=SC1091
. .venv/bin/activate
export HF_HUB_OFFLINE=1
case "$mode" in
  book)
    jupyter-book build . --config book/_config.yml --toc book/_toc.yml
    echo
    echo "The book is built. Open it in a browser:"
    echo "    $(python -c 'import pathlib; print(pathlib.Path("_build/html/index.html").resolve().as_uri())')"
    echo "On a machine without a display, serve it and open http://127.0.0.1:8000 (from another computer, forward"
    echo "the port first: ssh -N -L 8000:127.0.0.1:8000 <you>@<this machine>):"
    echo "    .venv/bin/python -m http.server --bind 127.0.0.1 --directory _build/html 8000"
    ;;
  check)
    # a chapter with a text-conditioned model, so the text encoder's dependencies (transformers) are exercised
    python scripts/lab.py --check 03_cdm.ipynb
    ;;
  lab)
    exec python scripts/lab.py
    ;;
esac
