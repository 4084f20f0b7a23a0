"""DiffusionCLIP's full run (chapter 8): fine-tune a copy of the base model towards a CLIP direction, then edit."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import Tensor

from ...core.schedule import Schedule
from ...methods import diffusion_clip as dc
from ...world.captions import Tokenizer, caption
from ...world.clip import clip_prefers
from ...world.judge import Judge, agreement, targets
from ...world.metrics import psnr
from ...world.scenes import COLOURS, Scenes, scenes, with_attribute
from ..results import provenance
from ..zoo import load_clip
from .common import chapter_models


#: red -> blue on one-object scenes: fine-tuned on DCLIP_TRAIN train-split scenes, tested on DCLIP_TEST held-out ones
DCLIP_TRAIN, DCLIP_TEST, DCLIP_ITERATIONS = 16, 32, 12


def red_scenes(split: str, count: int) -> Scenes:
    """The first ``count`` one-object scenes with a red object of ``split``: what the sweep edits to blue."""
    pool = scenes(split, 0, 40 * count)
    return pool[((pool.count == 1) & (pool.colour[:, 0] == COLOURS.index("red"))).nonzero().flatten()[:count]]


def as_blue(shown: Scenes) -> Scenes:
    """The same scenes described with a blue object: the edit's target."""
    return with_attribute(shown, "colour", torch.full((len(shown),), COLOURS.index("blue")))


def caption_denoiser(model, schedule: Schedule, shown: Scenes) -> Callable:
    """``make(net)``: the unguided denoiser of ``net`` (the base model or its fine-tuned copy) for the scenes' own
    captions, as DiffusionCLIP inverts and regenerates them."""
    tok = Tokenizer()
    null_ids, null_mask = tok("")
    ids, mask = tok([caption(shown, i) for i in range(len(shown))])
    with torch.no_grad():
        null, ctx = model.encode(null_ids, null_mask), model.encode(ids, mask)
    return lambda net: net.denoiser(schedule, ctx, null, 1.0, mask, null_mask)


def diffusion_clip_sweep(model, schedule: Schedule, judge: Judge, progress: Callable[[str], None] = print,
                         train: int = DCLIP_TRAIN, test: int = DCLIP_TEST, iterations: int = DCLIP_ITERATIONS) -> tuple[dict, dict[str, Tensor]]:
    """DiffusionCLIP's full run (the chapter runs a reduced one live): fine-tune a copy of the base model so that red
    scenes, inverted to t0 and generated back, move along CLIP's "blue caption - red caption" direction; then edit
    held-out red scenes. The small CLIP is the loss; the judge, trained separately, and CLIP itself both read the result."""
    start = time.perf_counter()
    clip, tok = load_clip(), Tokenizer()
    train_set, test_set = red_scenes("train", train), red_scenes("test", test)
    src = tok([caption(train_set, i) for i in range(len(train_set))])
    tgt = tok([caption(as_blue(train_set), i) for i in range(len(train_set))])
    with torch.no_grad():
        direction = (clip.encode_text(*tgt) - clip.encode_text(*src)).mean(0, keepdim=True)
    with torch.enable_grad():
        tuned = dc.diffusion_clip_finetune(model, caption_denoiser(model, schedule, train_set), train_set.images, clip.encode_image, direction, schedule,
                                           iterations=iterations)
    progress(f"diffusion_clip: fine-tuned in {time.perf_counter() - start:.0f}s, losses {[round(v, 3) for v in tuned.losses]}")
    make_test = caption_denoiser(model, schedule, test_set)
    with torch.no_grad():
        untuned = dc.diffusion_clip_edit(model, make_test, model, test_set.images, schedule)
        edited = dc.diffusion_clip_edit(model, make_test, tuned.model, test_set.images, schedule)
    truth = targets(as_blue(test_set))
    read, read_before = judge.predict(edited.clamp(-1, 1)), judge.predict(untuned.clamp(-1, 1))
    kept = agreement(read, truth)
    numbers = {"train": len(train_set), "test": len(test_set), "iterations": iterations, "t0": dc.T0, "learning_rate": dc.LEARNING_RATE,
               "clip_weight": dc.CLIP_WEIGHT, "l1_weight": dc.L1_WEIGHT, "train_steps": dc.TRAIN_STEPS, "test_steps": dc.TEST_STEPS,
               "losses": tuned.losses,
               "judge_blue": float((read["colour"] == COLOURS.index("blue")).float().mean()),
               "judge_blue_untuned": float((read_before["colour"] == COLOURS.index("blue")).float().mean()),
               "judge_colours": {c: float((read["colour"] == k).float().mean()) for k, c in enumerate(COLOURS)},
               "clip_blue": float(clip_prefers(clip, edited.clamp(-1, 1), test_set, "blue").float().mean()),
               "clip_blue_untuned": float(clip_prefers(clip, untuned.clamp(-1, 1), test_set, "blue").float().mean()),
               "kept": {f: kept[f] for f in ("shape", "size", "position", "tone", "pattern")},
               "psnr_to_source": float(psnr(edited.clamp(-1, 1), test_set.images).mean())}
    progress(f"diffusion_clip: {numbers}")
    return {**numbers, **provenance(time.perf_counter() - start)}, {"source": test_set.images[:8], "untuned": untuned[:8].clamp(-1, 1),
                                                                      "edited": edited[:8].clamp(-1, 1)}


def run(parts_folder: Optional[Path] = None, progress: Callable[[str], None] = print) -> tuple[dict, dict[str, Tensor]]:
    """The full run on the shipped models (the chapter runs a reduced one live)."""
    return diffusion_clip_sweep(*chapter_models(), progress=progress)
