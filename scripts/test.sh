#!/usr/bin/env bash
# Set up and run every test: unit tests, every notebook under nbval (fresh kernel, top to bottom,
# wall time printed per notebook), the book build (fails on warnings and broken references), and the browser
# tests (the built book and JupyterLab in Chromium, offline; skipped, with a line saying so, without a Chromium).
# Two environments: .venv has the dev tools (pytest, nbval, diffusers) and runs the tests; .venv-course has only
# what the README's course command installs, and every notebook's kernel and the book build run there, so a
# chapter that needs a package only `dev` declares fails here as it would for a student.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS=0
bash scripts/setup.sh course .venv-course
bash scripts/setup.sh dev .venv
if .venv-course/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('nbval') is None and u.find_spec('diffusers') is None)"; then
  echo ".venv-course has dev tools in it (nbval or diffusers): remove it (rm -rf .venv-course) and rerun"; exit 1
fi
.venv-course/bin/python -m ipykernel install --prefix "$PWD/.venv-course" --name minidiff-course \
  --display-name "Python 3 (minidiff course)" > /dev/null
# shellcheck disable=SC1091
. .venv/bin/activate
export HF_HUB_OFFLINE=1 PYTHONHASHSEED=0
echo "== setup took ${SECONDS}s"

start=$SECONDS
MPLBACKEND=Agg python -m pytest tests -q -p no:cacheprovider
echo "== unit tests took $((SECONDS - start))s"

start=$SECONDS
JUPYTER_PATH="$PWD/.venv-course/share/jupyter" python -m pytest notebooks -q -p no:cacheprovider --nbval-lax \
  --nbval-kernel-name=minidiff-course --nbval-cell-timeout=300
echo "== notebooks (kernels in .venv-course) took $((SECONDS - start))s"

start=$SECONDS
rm -rf _build
# the course environment's jupyter-book, as `bash scripts/course.sh book` runs it; its kernels are .venv-course's.
# No MPLBACKEND here: the kernels must use the inline backend, or the book has no figures
# (JUPYTER_PREFER_ENV_PATH: the environment's python3 kernel spec, not one of the user's, runs the chapters)
env -u JUPYTER_PATH JUPYTER_PREFER_ENV_PATH=1 \
  .venv-course/bin/jupyter-book build . --config book/_config.yml --toc book/_toc.yml -W -n --keep-going
echo "== book build took $((SECONDS - start))s"

start=$SECONDS
# the first Chromium found (MINIDIFF_CHROMIUM, if set, must be one); without one, the tests that need it skip
# themselves and the checks of the built HTML (every chapter's figures and tables, no raw Markdown or math,
# nothing loaded from outside) still run
chromium=$(command -v "${MINIDIFF_CHROMIUM:-chromium}" || command -v chromium-browser || command -v google-chrome || true)
if [ -n "${MINIDIFF_CHROMIUM:-}" ] && [ "$chromium" != "$(command -v "$MINIDIFF_CHROMIUM" || true)" ]; then
  echo "MINIDIFF_CHROMIUM=$MINIDIFF_CHROMIUM is not an executable Chromium"; exit 1
fi
# the explorer test starts JupyterLab from the course environment, as `bash scripts/course.sh` does
MINIDIFF_CHROMIUM="$chromium" MINIDIFF_LAB_PYTHON="$PWD/.venv-course/bin/python" \
  python -m pytest tests/browser -q -p no:cacheprovider
if [ -n "$chromium" ]; then
  echo "== browser tests ($chromium; screenshots in _build/screens) took $((SECONDS - start))s"
else
  echo "== browser tests SKIPPED: no Chromium on this machine (only the checks of the built HTML ran)."
  echo "   To run them: apt-get install chromium (Debian/Ubuntu), or MINIDIFF_CHROMIUM=/path/to/chrome bash scripts/test.sh"
fi
echo "== all checks passed in ${SECONDS}s"
