"""SR3 against bicubic and regression (chapter 2): PSNR, SSIM, consistency, the judge's fine attributes and
world-FD; SR3's quality against its number of steps; its diversity across seeds."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import Tensor

from ...core.checkpoint import available_checkpoints
from ...methods.sr3 import upsample
from ...world.judge import FAMILIES, Judge, agreement, targets, world_fd
from ...world.metrics import psnr, ssim
from ...world.scenes import scenes
from ..recipes.sr import evaluate_sr, photo_pairs
from ..results import provenance
from ..zoo import HIGH, load_judge, load_sr, regress, super_resolve
from .common import GUIDES_START, REAL_COUNT, REAL_START


SR3_STEP_COUNTS = (5, 10, 25, 50, 100, 200)


def sr3_sweep(judge: Judge, n: int = 256, seeds: int = 4, progress: Callable[[str], None] = print) -> tuple[dict, dict[str, Tensor]]:
    """Bicubic vs regression vs SR3 on held-out world and photo pairs: PSNR, SSIM, consistency, judge accuracy on
    the fine attributes, world-FD; SR3 quality against its number of steps; diversity across seeds."""
    start = time.perf_counter()
    sr3, reg = load_sr("sr3-world"), load_sr("sr-regression")
    test = scenes("test", GUIDES_START, n)
    high, low = test.images, test.at_resolution(8)
    real = scenes("test", REAL_START, REAL_COUNT).images
    outputs = {"bicubic": upsample(low, HIGH).clamp(-1, 1), "regression": regress(reg, low), "SR3": super_resolve(sr3, low, steps=50)}
    methods = []
    for name, out in outputs.items():
        kept = agreement(judge.predict(out), targets(test))
        methods.append({"method": name, "psnr": psnr(out, high).mean().item(), "ssim": ssim(out, high).mean().item(),
                        "consistency_rmse": (torch.nn.functional.avg_pool2d(out, 4) - low).square().mean().sqrt().item(),
                        "world_fd": world_fd(judge, out, real), **{f"judge_{f}": kept[f] for f in FAMILIES}})
        progress(f"sr3 {methods[-1]}")
    floor = world_fd(judge, high, real)
    by_steps = []
    for steps in SR3_STEP_COUNTS:
        t0 = time.perf_counter()
        out = super_resolve(sr3, low[:64], steps=steps)
        kept = agreement(judge.predict(out), targets(test[:64]))
        by_steps.append({"steps": steps, "psnr": psnr(out, high[:64]).mean().item(), "ssim": ssim(out, high[:64]).mean().item(),
                         "judge_shape": kept["shape"], "judge_pattern": kept["pattern"], "seconds_per_image": (time.perf_counter() - t0) / 64})
        progress(f"sr3 steps {by_steps[-1]}")
    draws = torch.stack([super_resolve(sr3, low[:32], steps=50, seed=s) for s in range(seeds)])  # (seeds, 32, 3, 32, 32)
    diversity = {"sr3_pixel_std_across_seeds": draws.std(0).mean().item()}
    photos = {}
    if "sr3-photo" in available_checkpoints():
        photo = load_sr("sr3-photo")
        photos = {"bicubic": evaluate_sr(lambda l: upsample(l, HIGH).clamp(-1, 1), photo_pairs, n=128),
                  "SR3": evaluate_sr(lambda l: super_resolve(photo, l), photo_pairs, n=128)}
        progress(f"sr3 photos {photos}")
    images = {"high": high[:8], "low": upsample(low[:8], HIGH).clamp(-1, 1), **{k: v[:8] for k, v in outputs.items()},
              "seeds": draws[:, :4].flatten(0, 1), **{f"steps_{r['steps']}": super_resolve(sr3, low[:8], steps=r["steps"]) for r in by_steps}}
    numbers = {"n": n, "methods": methods, "world_fd_floor": floor, "by_steps": by_steps, "diversity": diversity, "photos": photos,
               **provenance(time.perf_counter() - start)}
    return numbers, images


def run(parts_folder: Optional[Path] = None, progress: Callable[[str], None] = print) -> tuple[dict, dict[str, Tensor]]:
    """The sweep on the shipped SR models, scored by the judge."""
    return sr3_sweep(load_judge(), progress=progress)
