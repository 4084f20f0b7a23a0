"""Command line: ``python -m minidiff train RECIPE --out FOLDER [--export FOLDER] [--steps N] [--device cuda]``, ``results NAME``.

Training prints progress, checkpoints to ``--out`` as it goes, and resumes
from there when run again. ``python -m minidiff list`` shows the shipped
checkpoints.
"""

from __future__ import annotations

import argparse
import sys

from .core.checkpoint import available_checkpoints
from .course.recipes import RECIPES
from .course.sweeps import SWEEPS, run_sweep
from .course.train import training_device


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minidiff", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train (or resume) one of the shipped models")
    t.add_argument("recipe", choices=sorted(RECIPES))
    t.add_argument("--out", required=True, help="folder for the resumable training state and the loss history")
    t.add_argument("--export", help="write a shipped checkpoint (weights, config, model card) here when done")
    t.add_argument("--steps", type=int, help="override the recipe's number of steps")
    t.add_argument("--progress", action="store_true", help="show a progress bar instead of log lines")
    t.add_argument("--device", default="cpu", help="where to train: cpu (default), cuda, cuda:N or mps; a run resumes on the device it began on")
    r = sub.add_parser("results", help="compute a chapter's measured sweep into results/NAME.json")
    r.add_argument("name", choices=sorted(SWEEPS))
    sub.add_parser("list", help="list the shipped checkpoints")
    args = parser.parse_args(argv)
    if args.command == "list":
        print("\n".join(available_checkpoints()))
        return 0
    if args.command == "results":
        run_sweep(args.name)
        return 0
    try:
        device = training_device(args.device)
    except ValueError as e:
        parser.error(str(e))
    RECIPES[args.recipe](args.out, export=args.export, steps=args.steps, progress=args.progress, device=str(device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
