"""The edit benchmark's run (chapter 8's table): every method on the benchmark's edits, in resumable chunks.

    python -m minidiff results edits        # writes results/edits.json and results/edits.safetensors

The edits, the methods and the scores are ``minidiff.course.benchmark``'s; this module runs them in chunks of
``CHUNK`` edits (each kept in ``results/parts/edits``, so a stopped run resumes) and times each method again at the end.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import Tensor

from ...core.schedule import Schedule
from ...world.judge import Judge
from ...world.scenes import scenes
from ..benchmark import METHODS, STEPS, SCALE, Editor, edit_set, score
from ..results import Parts, provenance
from .common import REAL_COUNT, REAL_START, chapter_models


#: the slow methods run on a range of the edits only (their tables say how many): Imagic optimises an embedding and
#: fine-tunes a copy of the model per edit (minutes each on one core); null-text optimises 50 null embeddings per edit
#: (41 s each on two cores). Imagic's range is edits 10-19 (two of each edit type, like any 10 consecutive edits),
#: the chunk that finished first when the work was shared between two processes (benchmarks/edit_parts.py).
#: Widen a range and rerun to extend: finished chunks are kept.
SUBSET = {"P2P + null-text": range(0, 60), "Imagic": range(10, 20)}


def edit_range(name: str, n: int, subset: Optional[dict] = None) -> range:
    """The edits (indices into ``edit_set(n)``) that method ``name`` runs on."""
    chosen = (subset or SUBSET).get(name, range(n))
    return range(chosen.start, min(chosen.stop, n))


#: edits per resumable part
CHUNK = 10
#: edits per method timed again, one method after the other, at the end of a run: a run that takes hours shares the
#: machine at times, so its own chunk times (kept as ``seconds_per_edit_in_run``) are not a fair comparison
TIMING_EDITS = 2


def chunks(name: str, n: int, subset: Optional[dict] = None) -> list[tuple[str, int, int]]:
    """The resumable parts of method ``name``: ``(part key, first edit, end)`` for each ``CHUNK`` of its edits."""
    span = edit_range(name, n, subset)
    return [(f"{name} {lo}-{min(lo + CHUNK, span.stop)}", lo, min(lo + CHUNK, span.stop)) for lo in range(span.start, span.stop, CHUNK)]


def run_chunk(editor: Editor, run: Callable[[Editor, int], Tensor], lo: int, hi: int) -> tuple[dict, dict[str, Tensor]]:
    """One part: method ``run`` on edits ``lo .. hi - 1``, timed; what ``Parts.get`` keeps."""
    t0 = time.perf_counter()
    out = torch.cat([run(editor, i) for i in range(lo, hi)])
    return {"seconds": time.perf_counter() - t0}, {"edited": out}


def edit_benchmark(model, schedule: Schedule, judge: Judge, n: int = 100, steps: int = STEPS,
                   methods: Optional[dict] = None, subset: Optional[dict] = None, parts: Optional[Parts] = None,
                   progress: Callable[[str], None] = print, timing_edits: int = TIMING_EDITS) -> tuple[dict, dict[str, Tensor]]:
    """Every method on the first ``n`` edits of ``edit_set``; one table. ``parts``
    (``results.Parts`` with exact images) keeps each chunk of ``CHUNK`` edits, so a stopped run resumes.
    ``seconds_per_edit`` is timed at the end on ``timing_edits`` edits per method, back to back (0: keep the run's own)."""
    parts = parts if parts is not None else Parts(None, progress=lambda line: None)
    start = time.perf_counter()
    edits = edit_set(n)
    editor = Editor(model, schedule, edits, steps)
    real = scenes("test", REAL_START, REAL_COUNT).images
    rows, images = [], {"source": edits.source.images}  # every source; each method keeps its first 10 edits
    for name, run in (methods or METHODS).items():
        span = edit_range(name, n, subset)
        pieces = [parts.get(key, lambda run=run, lo=lo, hi=hi: run_chunk(editor, run, lo, hi)) for key, lo, hi in chunks(name, n, subset)]
        edited = torch.cat([p[1]["edited"] for p in pieces])
        seconds = sum(p[0]["seconds"] for p in pieces)
        rows.append({"method": name, "first_edit": span.start, **score(edited, edits, list(span), judge, real, seconds)})
        rows[-1]["seconds_per_edit_in_run"] = rows[-1]["seconds_per_edit"]
        images[name] = edited[:10].clamp(-1, 1)  # its first 10 edits: from edit first_edit on
        progress(f"edits {rows[-1]}")
    for row, run in zip(rows, (methods or METHODS).values()):
        if timing_edits > 0:
            t0 = time.perf_counter()
            for i in range(row["first_edit"], row["first_edit"] + min(timing_edits, row["edits"])):
                run(editor, i)
            row["seconds_per_edit"] = (time.perf_counter() - t0) / min(timing_edits, row["edits"])
            progress(f"timed {row['method']}: {row['seconds_per_edit']:.2f}s per edit (in the run: {row['seconds_per_edit_in_run']:.2f}s)")
    numbers = {"n": n, "steps": steps, "scale": SCALE, "rows": rows, "timing_edits": timing_edits, "families": edits.family,
               "source_text": edits.source_text, "target_text": edits.target_text,
               "seconds": round(time.perf_counter() - start, 1)}
    return numbers, images


def run(parts_folder: Optional[Path] = None, progress: Callable[[str], None] = print) -> tuple[dict, dict[str, Tensor]]:
    """The benchmark on the shipped models; hours on two cores, so every chunk is kept in ``parts_folder``."""
    numbers, images = edit_benchmark(*chapter_models(), parts=Parts(parts_folder, progress, exact_images=True), progress=progress)
    return {**numbers, **provenance(numbers["seconds"])}, images
