"""The measured sweeps behind the chapters: one module per sweep, each run once from the command line and read by
its chapter.

    python -m minidiff results sdedit      # writes results/sdedit.json and results/sdedit.safetensors

Every sweep module has a function that measures (``sdedit.sdedit_sweep(model, schedule, judge, ...)``,
``sr3.sr3_sweep(judge, ...)``, ``edits.edit_benchmark(...)``: the models it needs and sizes, small ones for tests) and
``run(parts_folder, progress)``, which loads the shipped models and calls it with the chapter's sizes; a sweep that takes hours keeps each finished piece under ``parts_folder`` and resumes there.
Every sweep is seeded: running it again gives the same file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from ..results import RESULTS, save_results
from . import cdm, diffusion_clip, edits, ilvr, inversion, sdedit, sr3

#: each sweep's ``run(parts_folder, progress) -> (numbers, images)``, by the name of its results file
SWEEPS: dict[str, Callable] = {"sdedit": sdedit.run, "ilvr": ilvr.run, "inversion": inversion.run, "sr3": sr3.run, "cdm": cdm.run,
                               "edits": edits.run, "diffusion_clip": diffusion_clip.run}


def run_sweep(name: str, folder: Optional[Path] = None) -> None:
    """``python -m minidiff results NAME``: run sweep ``name`` and write ``results/NAME.json`` and its images."""
    if name not in SWEEPS:
        raise ValueError(f"name must be one of {sorted(SWEEPS)}, got {name!r}")
    folder = folder or RESULTS
    numbers, images = SWEEPS[name](folder / "parts" / name, print)
    numbers["command"] = f"python -m minidiff results {name}"
    save_results(name, numbers, images, folder)
    print(f"wrote {folder / name}.json in {numbers['seconds']:.0f}s")
