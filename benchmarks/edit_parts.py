"""Compute chosen parts of the edit benchmark, so that two processes can share the work on two cores.

    python benchmarks/edit_parts.py "P2P + direct inversion" "Pix2Pix-Zero" "Imagic"      # every chunk of these, in order
    python benchmarks/edit_parts.py --reverse "Pix2Pix-Zero" "Imagic"                      # the same, last chunk first

Each chunk is the same part (same name, same content) that ``python -m minidiff results edits`` computes and keeps in
``results/parts/edits``; a chunk that exists already (or that another process finished meanwhile) is skipped. Run
``python -m minidiff results edits`` afterwards: it finds every part, scores the table and times each method.
"""

import argparse

from minidiff.core.checkpoint import load_text_unet
from minidiff.course import benchmark
from minidiff.course.results import RESULTS, Parts
from minidiff.course.sweeps import edits

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("methods", nargs="+", choices=sorted(benchmark.METHODS))
parser.add_argument("--reverse", action="store_true", help="last chunk first (for a second process)")
parser.add_argument("-n", type=int, default=100)
args = parser.parse_args()

model, schedule, _ = load_text_unet("base")
editor = benchmark.Editor(model, schedule, benchmark.edit_set(args.n), benchmark.STEPS)
parts = Parts(RESULTS / "parts" / "edits", exact_images=True)
todo = [(name, *chunk) for name in args.methods for chunk in edits.chunks(name, args.n)]
for name, key, lo, hi in reversed(todo) if args.reverse else todo:
    parts.get(key, lambda: edits.run_chunk(editor, benchmark.METHODS[name], lo, hi))
