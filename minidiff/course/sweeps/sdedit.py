"""SDEdit's trade-off (chapter 4): faithfulness to a stroke painting against realism, over the strength."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import Tensor

from ...core.schedule import Schedule
from ...methods.sdedit import sdedit
from ...world.judge import FAMILIES, Judge, agreement, judge_confidence, targets, world_fd
from ...world.scenes import scenes
from ...world.strokes import stroke_distance, stroke_painting
from ..results import provenance
from ..zoo import unconditional
from .common import GUIDES_START, REAL_COUNT, REAL_START, chapter_models


SDEDIT_STRENGTHS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def sdedit_sweep(model, schedule: Schedule, judge: Judge, n: int = 96, num_steps: int = 50, examples: int = 6,
                 progress: Callable[[str], None] = print) -> tuple[dict, dict[str, Tensor]]:
    """Faithfulness (stroke distance) and realism (world-FD, judge confidence) of SDEdit over the strength."""
    start = time.perf_counter()
    guides = scenes("test", GUIDES_START, n)
    strokes = stroke_painting(guides.images)
    real = scenes("test", REAL_START, REAL_COUNT).images
    denoiser = unconditional(model, schedule)
    rows, images = [], {"scenes": guides.images[:examples], "strokes": strokes[:examples]}
    for s in SDEDIT_STRENGTHS:
        with torch.no_grad():
            out = sdedit(denoiser, strokes, s, schedule, num_steps=num_steps, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
        kept = agreement(judge.predict(out), targets(guides))  # does the output still show the painted scene?
        rows.append({"strength": s, "stroke_distance": stroke_distance(out, strokes).mean().item(),
                     "world_fd": world_fd(judge, out, real), "judge_confidence": judge_confidence(judge, out).mean().item(),
                     **{f"kept_{f}": kept[f] for f in FAMILIES}})
        images[f"strength_{s:.1f}"] = out[:examples]
        progress(f"sdedit strength {s:.1f}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[-1].items() if k != "strength"))
    floor = world_fd(judge, scenes("test", REAL_START + REAL_COUNT, n).images, real)
    numbers = {"n": n, "num_steps": num_steps, "sampler": "ddpm", "rows": rows, "world_fd_floor": floor,
               "stroke_world_fd": world_fd(judge, strokes, real), **provenance(time.perf_counter() - start)}
    return numbers, images


def run(parts_folder: Optional[Path] = None, progress: Callable[[str], None] = print) -> tuple[dict, dict[str, Tensor]]:
    """The sweep on the shipped models (minutes: no parts to keep)."""
    return sdedit_sweep(*chapter_models(), progress=progress)
