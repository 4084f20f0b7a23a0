"""ILVR's control (chapter 5): the low-pass constraint, diversity and kept attributes over the factor N and the
step at which the refinement stops; and the exact filter against the paper's bicubic one."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import Tensor

from ...core.sampling import Denoiser, sample_ddpm
from ...core.schedule import Schedule
from ...methods.ilvr import ilvr_hook, lowpass
from ...world.judge import FAMILIES, Judge, agreement, targets
from ...world.scenes import Scenes, scenes
from ..results import provenance
from ..zoo import unconditional
from .common import GUIDES_START, chapter_models


ILVR_FACTORS = (2, 4, 8, 16, 32)
ILVR_STOPS = (-1, 200, 400, 600, 800)  # refine the steps that start above this t


def _ilvr_samples(denoiser: Denoiser, reference: Tensor, per: int, factor: int, schedule: Schedule, num_steps: int,
                  stop: int = -1, kind: str = "exact", seed: int = 0) -> Tensor:
    """``per`` ILVR samples for each reference (R, 3, H, W) -> (R, per, 3, H, W), not clipped to [-1, 1]
    (clipping would break the low-pass constraint the chapter measures)."""
    R = reference.shape[0]
    g = torch.Generator().manual_seed(seed)
    ref = reference.repeat_interleave(per, 0)
    noise = torch.randn(ref.shape, generator=g)
    with torch.no_grad():
        x = sample_ddpm(denoiser, noise, schedule.timesteps(num_steps), schedule, generator=g,
                        on_step=ilvr_hook(ref, factor, schedule, stop=stop, kind=kind, generator=g))
    return x.reshape(R, per, *reference.shape[1:])


def _diversity(x: Tensor) -> float:
    """Mean per-pixel standard deviation across the samples of each reference (R, per, ...)."""
    return x.std(1).mean().item()


def _coarse_kept(judge: Judge, x: Tensor, refs: Scenes) -> dict[str, float]:
    per = x.shape[1]
    truth = {k: v.repeat_interleave(per, 0) for k, v in targets(refs).items()}
    return agreement(judge.predict(x.flatten(0, 1).clamp(-1, 1)), truth)


def ilvr_sweep(model, schedule: Schedule, judge: Judge, refs: int = 12, per: int = 4, num_steps: int = 50,
               progress: Callable[[str], None] = print) -> tuple[dict, dict[str, Tensor]]:
    """Constraint error of both filters, diversity and kept attributes over N, and a stop-step sweep."""
    start = time.perf_counter()
    references = scenes("test", GUIDES_START, refs)
    denoiser = unconditional(model, schedule)
    by_factor, images = [], {"references": references.images[:4]}
    for N in ILVR_FACTORS:
        x = _ilvr_samples(denoiser, references.images, per, N, schedule, num_steps)
        error = (lowpass(x.flatten(0, 1), N) - lowpass(references.images.repeat_interleave(per, 0), N)).abs().max().item()
        kept = _coarse_kept(judge, x, references)
        by_factor.append({"N": N, "max_lowpass_error": error, "diversity": _diversity(x), **{f"kept_{f}": kept[f] for f in FAMILIES}})
        images[f"N_{N}"] = x[:4].flatten(0, 1).clamp(-1, 1)
        progress(f"ilvr N={N}: " + ", ".join(f"{k} {v:.4g}" for k, v in by_factor[-1].items() if k != "N"))
    filters = []
    for kind in ("exact", "bicubic"):
        for N in (4, 8):
            x = _ilvr_samples(denoiser, references.images[:4], 2, N, schedule, num_steps, kind=kind)
            flat, ref = x.flatten(0, 1), references.images[:4].repeat_interleave(2, 0)
            filters.append({"kind": kind, "N": N, "max_error_own_filter": (lowpass(flat, N, kind) - lowpass(ref, N, kind)).abs().max().item(),
                            "rms_error_exact_filter": (lowpass(flat, N) - lowpass(ref, N)).square().mean().sqrt().item()})
            progress(f"ilvr filter {kind} N={N}: {filters[-1]}")
    by_stop = []
    for stop in ILVR_STOPS:
        x = _ilvr_samples(denoiser, references.images, per, 4, schedule, num_steps, stop=stop)
        kept = _coarse_kept(judge, x, references)
        by_stop.append({"stop": stop, "diversity": _diversity(x), "rms_lowpass_error": (lowpass(x.flatten(0, 1), 4) - lowpass(references.images.repeat_interleave(per, 0), 4)).square().mean().sqrt().item(),
                        **{f"kept_{f}": kept[f] for f in FAMILIES}})
        images[f"stop_{stop}"] = x[:4].flatten(0, 1).clamp(-1, 1)
        progress(f"ilvr stop={stop}: " + ", ".join(f"{k} {v:.4g}" for k, v in by_stop[-1].items() if k != "stop"))
    numbers = {"refs": refs, "per_reference": per, "num_steps": num_steps, "sampler": "ddpm", "by_factor": by_factor,
               "filters": filters, "by_stop": by_stop, **provenance(time.perf_counter() - start)}
    return numbers, images


def run(parts_folder: Optional[Path] = None, progress: Callable[[str], None] = print) -> tuple[dict, dict[str, Tensor]]:
    """The sweep on the shipped models (minutes: no parts to keep)."""
    return ilvr_sweep(*chapter_models(), progress=progress)
