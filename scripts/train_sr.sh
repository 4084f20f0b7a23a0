#!/usr/bin/env bash
# Issue 4's models, one after another, then their sweeps. Each training resumes from runs/NAME when restarted,
# and a model or sweep already exported/written is skipped, so rerun this after any interruption.
# Measured on two cores: sr3-world, sr-regression, cdm-sr32, sr3-photo about 15 minutes each (1,500 steps of batch 32
# at ~0.6 s/step), cdm-base8 21 minutes; then `results sr3` 9 minutes and `results cdm` 42 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
for name in sr3-world sr-regression cdm-sr32 cdm-base8 sr3-photo; do
  if [ -f "minidiff/checkpoints/$name/config.json" ]; then echo "== $name: shipped, skipped"; continue; fi
  echo "== $name $(date +%T)"
  python -m minidiff train "$name" --out "runs/$name" --export "minidiff/checkpoints/$name"
done
for sweep in sr3 cdm; do
  if [ -f "results/$sweep.json" ]; then echo "== results $sweep: written, skipped"; continue; fi
  echo "== results $sweep $(date +%T)"
  python -m minidiff results "$sweep"
done
echo "== done $(date +%T)"
