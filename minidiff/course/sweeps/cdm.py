"""The cascade (chapter 3): base8 -> 32 px, with and without conditioning augmentation; world-FD and CAS."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import Tensor

from ...core.checkpoint import load_text_unet
from ...world.captions import caption
from ...world.judge import FAMILIES, Judge, agreement, classification_accuracy_score, targets, world_fd
from ...world.scenes import scenes
from ..results import provenance
from ..zoo import load_judge, load_sr, sample_prompts, super_resolve
from .common import GUIDES_START, REAL_COUNT, REAL_START


CDM_LEVELS = (-1, 50, 100, 200, 300, 400, 500)


def cdm_sweep(judge: Judge, n: int = 512, steps: int = 25, progress: Callable[[str], None] = print) -> tuple[dict, dict[str, Tensor]]:
    """The cascade base8 -> 32: SR trained without augmentation fed real vs generated 8 px images (the compounding
    error), and the augmented stage across the augmentation level; world-FD and CAS."""
    start = time.perf_counter()
    base8, schedule, ckpt = load_text_unet("cdm-base8")
    plain, augmented = load_sr("sr3-world"), load_sr("cdm-sr32")
    prompt_scenes = scenes("test", GUIDES_START, n)
    labels = targets(prompt_scenes)
    prompts = [caption(prompt_scenes, i) for i in range(n)]
    low_generated = sample_prompts(base8, schedule, prompts, scale=3.0, steps=steps)
    low_real = prompt_scenes.at_resolution(8)
    real = scenes("test", REAL_START, REAL_COUNT).images
    test = scenes("test", REAL_START + REAL_COUNT, 1000)
    rows = []

    def measure(name: str, level, out: Tensor) -> None:
        cas = classification_accuracy_score(out, labels, test)
        rows.append({"setting": name, "level": level, "world_fd": world_fd(judge, out, real),
                     **{f"cas_{f}": cas[f] for f in FAMILIES}, **{f"judge_{f}": v for f, v in agreement(judge.predict(out), labels).items()}})
        progress(f"cdm {rows[-1]}")

    measure("no augmentation, real 8 px input", None, super_resolve(plain, low_real, steps=steps))
    measure("no augmentation, generated 8 px input", None, super_resolve(plain, low_generated, steps=steps))
    images = {"low_generated": torch.nn.functional.interpolate(low_generated[:8], size=32, mode="nearest")}
    for level in CDM_LEVELS:
        out = super_resolve(augmented, low_generated, steps=steps, augment_level=level)
        measure("augmented stage, generated 8 px input", level, out)
        images[f"level_{level}"] = out[:8]
    measure("real 32 px scenes", None, prompt_scenes.images)
    numbers = {"n": n, "steps": steps, "rows": rows, "world_fd_floor": world_fd(judge, scenes("test", 0, n).images, real),
               **provenance(time.perf_counter() - start)}
    return numbers, images


def run(parts_folder: Optional[Path] = None, progress: Callable[[str], None] = print) -> tuple[dict, dict[str, Tensor]]:
    """The sweep on the shipped cascade, scored by the judge."""
    return cdm_sweep(load_judge(), progress=progress)
