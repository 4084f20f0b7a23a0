#!/usr/bin/env bash
# Set up and run every test: unit tests, every notebook under nbval (fresh kernel, top to bottom,
# wall time printed per notebook), and the book build (fails on warnings and broken references).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS=0
bash scripts/setup.sh dev
. .venv/bin/activate
export HF_HUB_OFFLINE=1 PYTHONHASHSEED=0
echo "== setup took ${SECONDS}s"

start=$SECONDS
MPLBACKEND=Agg python -m pytest tests -q -p no:cacheprovider
echo "== unit tests took $((SECONDS - start))s"

start=$SECONDS
python -m pytest notebooks -q -p no:cacheprovider --nbval-lax --nbval-current-env --nbval-cell-timeout=300
echo "== notebooks took $((SECONDS - start))s"

start=$SECONDS
rm -rf _build
# no MPLBACKEND here: the kernels must use the inline backend, or the book has no figures
jupyter-book build . --config book/_config.yml --toc book/_toc.yml -W -n --keep-going
for page in _build/html/notebooks/*.html; do  # every chapter renders its figures
  n=$(grep -o '<img ' "$page" | wc -l)
  if [ "$n" -lt 3 ]; then echo "$page has $n figures: did the kernels lose the inline backend?"; exit 1; fi
done
echo "== book build took $((SECONDS - start))s"
echo "== all checks passed in ${SECONDS}s"
