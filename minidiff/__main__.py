"""Command line: ``python -m minidiff train RECIPE --out FOLDER [--export FOLDER] [--steps N] [--device cuda]``, ``results NAME``.

Training prints progress, checkpoints to ``--out`` as it goes, and resumes
from there when run again. ``python -m minidiff list`` shows the shipped
checkpoints.
"""

from __future__ import annotations

import argparse
import functools
import sys

from .core.checkpoint import available_checkpoints
from .course import experiments, recipes, sr_recipes
from .course.train import training_device

RECIPES = {"toy2d": recipes.train_toy2d, "base": recipes.train_base, "base-xattn": recipes.train_base_xattn,
           "base-detail": recipes.train_base_detail, "judge": recipes.train_judge,
           "judge-detail": functools.partial(recipes.train_judge, detail="random", name="judge-detail"), "clip": recipes.train_clip,
           **sr_recipes.SR_RECIPES}


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
    r.add_argument("name", choices=sorted(experiments.SWEEPS))
    sub.add_parser("list", help="list the shipped checkpoints")
    args = parser.parse_args(argv)
    if args.command == "list":
        print("\n".join(available_checkpoints()))
        return 0
    if args.command == "results":
        experiments.run_sweep(args.name)
        return 0
    try:
        device = training_device(args.device)
    except ValueError as e:
        parser.error(str(e))
    RECIPES[args.recipe](args.out, export=args.export, steps=args.steps, progress=args.progress, device=str(device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
