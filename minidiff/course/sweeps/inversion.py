"""Inversion (chapter 6): how well each inversion reconstructs held-out scenes at each guidance scale, what an
edit by caption keeps, and how PSNR moves with the number of steps and of null-text's inner iterations.

Every batch of every row is a part (``results.Parts``): with a parts folder a stopped run resumes. The cheap rows
run first, null-text (by far the slowest) last, in batches of its own.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ...core.sampling import invert_ddim, sample_ddim
from ...core.schedule import Schedule
from ...methods.direct_inversion import add_offsets, direct_inversion
from ...methods.null_text import INNER_STEPS as NULL_TEXT_INNER_STEPS
from ...methods.null_text import null_text_inversion, per_step_null_denoiser
from ...world.captions import Tokenizer, caption
from ...world.judge import FAMILIES, Judge, agreement, targets
from ...world.metrics import masked_psnr, psnr
from ...world.scenes import COLOURS, Scenes, scenes, with_attribute
from ..results import Parts, provenance
from .common import GUIDES_START, chapter_models


INVERSION_SCALES = (1.0, 3.0, 7.5)
INVERSION_METHODS = ("ddim", "ddim, guided inversion", "null-text", "direct")
#: the scales each method is measured at in the full table. On two CPU cores null-text's 10 inner steps per
#: timestep dominate the run, so it is measured at the paper's scale only; guided inversion and plain
#: inversion coincide at scale 1; direct inversion is exact by construction, so two scales show it.
INVERSION_TABLE = {"ddim": (1.0, 3.0, 7.5), "ddim, guided inversion": (7.5,), "null-text": (7.5,), "direct": (1.0, 7.5)}


def encode_prompts(model, texts: list[str]) -> tuple[Tensor, Tensor]:
    """``(embeddings (B, L, D), mask (B, L))`` of captions, as every inversion here takes them."""
    ids, mask = Tokenizer()(texts)
    return model.encode(ids, mask), mask


def invert_and_reconstruct(method: str, model, schedule: Schedule, x0: Tensor, prompt, null, scale: float, num_steps: int,
                           target=None, inner_steps: int = NULL_TEXT_INNER_STEPS) -> dict:
    """Invert x0 with ``method``, then sample back with the source prompt (and with ``target``, if given) at ``scale``.

    prompt, null, target: (embeddings (B, L, D), mask (B, L)). Returns reconstruction, edit (or None),
    wall seconds, and the method's extras (null embeddings).
    """
    ts = schedule.timesteps(num_steps)
    (ctx, mask), (nctx, nmask) = prompt, null
    plain = model.denoiser(schedule, ctx, nctx, 1.0, mask, nmask)
    guided = model.denoiser(schedule, ctx, nctx, scale, mask, nmask)
    B, extra, edit = x0.shape[0], {}, None
    start = time.perf_counter()
    if method in ("ddim", "ddim, guided inversion"):
        with torch.no_grad():
            noise = invert_ddim(plain if method == "ddim" else guided, x0, ts, schedule)[0]
            recon = sample_ddim(guided, noise, ts, schedule)
            if target is not None:
                edit = sample_ddim(model.denoiser(schedule, target[0], nctx, scale, target[1], nmask), noise, ts, schedule)
    elif method == "null-text":
        inv = null_text_inversion(model, x0, prompt, null, scale, ts, schedule, inner_steps=inner_steps)
        with torch.no_grad():
            recon = sample_ddim(per_step_null_denoiser(model, schedule, prompt, inv.null_contexts, nmask, scale, ts), inv.noise, ts, schedule)
            if target is not None:
                edit = sample_ddim(per_step_null_denoiser(model, schedule, target, inv.null_contexts, nmask, scale, ts), inv.noise, ts, schedule)
        extra = {"null_contexts": inv.null_contexts, "iterations": inv.iterations}
    elif method == "direct":
        inv = direct_inversion(guided, x0, ts, schedule, inversion_model=plain)
        with torch.no_grad():
            if target is None:
                recon = sample_ddim(guided, inv.noise, ts, schedule, on_step=add_offsets(inv))
            else:  # one batch [source; target]: the offsets go to the source rows only
                pair = model.denoiser(schedule, torch.cat([ctx, target[0]]), nctx.expand(1, -1, -1) if nctx.shape[0] == 1 else torch.cat([nctx, nctx]),
                                      scale, torch.cat([mask, target[1]]), nmask if nmask.shape[0] == 1 else torch.cat([nmask, nmask]))
                both = sample_ddim(pair, torch.cat([inv.noise, inv.noise]), ts, schedule, on_step=add_offsets(inv, rows=slice(0, B)))
                recon, edit = both[:B], both[B:]
    else:
        raise ValueError(f"method must be one of {INVERSION_METHODS}, got {method!r}")
    return {"recon": recon, "edit": edit, "seconds": time.perf_counter() - start, **extra}


def edit_targets(source: Scenes) -> Scenes:
    """Each scene's first object recoloured to the next colour of the palette: a one-word caption edit."""
    return with_attribute(source, "colour", (source.colour[:, 0] + 1) % len(COLOURS))


def _labels(predicted: dict[str, Tensor]) -> dict[str, list[int]]:
    return {k: v.tolist() for k, v in predicted.items()}


class InversionRun:
    """One inversion sweep's fixed inputs and its parts; each method below computes, or reloads, one piece."""

    def __init__(self, model, schedule: Schedule, judge: Judge, n: int, num_steps: int, parts: Parts,
                 progress: Callable[[str], None]) -> None:
        self.model, self.schedule, self.judge, self.n, self.num_steps = model, schedule, judge, n, num_steps
        self.parts, self.progress = parts, progress
        self.source = scenes("test", GUIDES_START, n)
        self.target_scenes = edit_targets(self.source)
        self.src_text = [caption(self.source, i) for i in range(n)]
        self.tgt_text = [caption(self.target_scenes, i) for i in range(n)]
        self.null = encode_prompts(model, [""])
        self.background = 1 - F.max_pool2d(self.source.masks.any(1, keepdim=True).float(), 3, stride=1, padding=1)

    def row_part(self, method: str, scale: float, sl: slice) -> tuple[dict, dict[str, Tensor]]:
        """Reconstructions of the scenes ``sl`` (and, at scale 7.5, their colour edit): per-image PSNR and judge labels."""
        def compute():
            src, model = self.source, self.model
            with_edit = scale == 7.5
            out = invert_and_reconstruct(method, model, self.schedule, src.images[sl], encode_prompts(model, self.src_text[sl]), self.null,
                                         scale, self.num_steps, target=encode_prompts(model, self.tgt_text[sl]) if with_edit else None)
            numbers = {"psnr": psnr(out["recon"], src.images[sl]).tolist(), "seconds": out["seconds"],
                       "predicted": _labels(self.judge.predict(out["recon"].clamp(-1, 1)))}
            images = {"recon": out["recon"][:6].clamp(-1, 1)}
            if out["edit"] is not None:
                numbers["edit_predicted"] = _labels(self.judge.predict(out["edit"].clamp(-1, 1)))
                numbers["edit_background_psnr"] = masked_psnr(out["edit"], src.images[sl], self.background[sl]).tolist()
                images["edit"] = out["edit"][:6].clamp(-1, 1)
            if method == "null-text":
                m = self.null[1][0]
                ref = self.null[0][0][m]
                drift = ((out["null_contexts"][:, :, m] - ref).flatten(2).norm(dim=-1) / ref.norm())  # (steps, B)
                numbers["null_drift"] = drift.mean(1).tolist()
                numbers["iterations"] = out["iterations"].float().mean().item()
            return numbers, images
        return self.parts.get(f"row {method} {scale} {sl.start}-{sl.stop}", compute)

    def table_row(self, method: str, scale: float, size: int) -> tuple[dict, dict[str, Tensor], Optional[list[float]]]:
        """One row of the full table from its parts of ``size`` scenes: the row, its example images, and the null
        embeddings' drift (null-text at 7.5 only, else None)."""
        n = self.n
        pieces = [self.row_part(method, scale, slice(i, min(i + size, n))) for i in range(0, n, size)]
        nums = [p[0] for p in pieces]
        per_image = torch.tensor(sum((x["psnr"] for x in nums), []))
        predicted = {k: torch.tensor(sum((x["predicted"][k] for x in nums), [])) for k in nums[0]["predicted"]}
        kept = agreement(predicted, targets(self.source))
        row = {"scale": scale, "method": method, "psnr": per_image.mean().item(), "psnr_min": per_image.min().item(),
               "seconds_per_image": sum(x["seconds"] for x in nums) / n, **{f"kept_{f}": kept[f] for f in FAMILIES}}
        images = {f"recon_{method}_{scale}": pieces[0][1]["recon"]}
        drift = None
        if "edit_predicted" in nums[0]:
            said = {k: torch.tensor(sum((x["edit_predicted"][k] for x in nums), [])) for k in nums[0]["edit_predicted"]}
            want = targets(self.target_scenes)
            others = [f for f in FAMILIES if f != "colour" and f in said]
            preserved = torch.stack([(said[f] == want[f]) for f in others]).all(0).float()
            row.update({"edit_success": (said["colour"] == want["colour"]).float().mean().item(), "edit_preserved": preserved.mean().item(),
                        "edit_background_psnr": torch.tensor(sum((x["edit_background_psnr"] for x in nums), [])).mean().item()})
            images[f"edit_{method}"] = pieces[0][1]["edit"]
        if method == "null-text" and scale == 7.5:
            drift = nums[0]["null_drift"]
            row["mean_iterations_used"] = sum(x["iterations"] for x in nums) / len(nums)
        self.progress(f"inversion {method} @ {scale}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float)))
        return row, images, drift

    def small_part(self, key: str, small: int, method: str, scale: float, steps: int,
                   inner: int = NULL_TEXT_INNER_STEPS) -> tuple[dict, dict[str, Tensor]]:
        """Reconstruction PSNR of the first ``small`` scenes with ``steps`` steps (and ``inner`` null-text iterations)."""
        def compute():
            sub = self.source[:small]
            out = invert_and_reconstruct(method, self.model, self.schedule, sub.images, encode_prompts(self.model, self.src_text[:small]),
                                         self.null, scale, steps, inner_steps=inner)
            numbers = {"psnr": psnr(out["recon"], sub.images).mean().item(), "seconds_per_image": out["seconds"] / small}
            if method == "null-text":
                numbers["mean_iterations_used"] = out["iterations"].float().mean().item()
            return numbers, {"recon": out["recon"][:4].clamp(-1, 1)}
        return self.parts.get(key, compute)


def inversion_sweep(model, schedule: Schedule, judge: Judge, n: int = 100, batch: int = 25, num_steps: int = 50,
                    small: int = 8, step_counts: tuple[int, ...] = (10, 20, 50, 100), inner_counts: tuple[int, ...] = (0, 1, 2, 5, 10),
                    null_text_batch: int = 10, parts_folder: Optional[Path] = None,
                    progress: Callable[[str], None] = print) -> tuple[dict, dict[str, Tensor]]:
    """Reconstruction PSNR, judge agreement and time of each inversion at each scale; an edit by caption;
    PSNR against steps and null-text iterations; the drift of the optimised null embeddings.

    Every batch of every row is a part (see ``Parts``): with ``parts_folder`` a stopped run resumes.
    The cheap rows run first, null-text (by far the slowest) last, in batches of ``null_text_batch``.
    """
    start = time.perf_counter()
    run = InversionRun(model, schedule, judge, n, num_steps, Parts(parts_folder, progress), progress)
    rows, images = [], {"source": run.source.images[:6]}
    order = [(m, w) for m in INVERSION_METHODS for w in INVERSION_SCALES if w in INVERSION_TABLE[m]]

    drifts = []  # the null embeddings' drift, from the one row that measures it

    def add_row(method: str, scale: float) -> None:
        row, imgs, drift = run.table_row(method, scale, null_text_batch if method == "null-text" else batch)
        rows.append(row)
        images.update(imgs)
        drifts.extend([drift] if drift is not None else [])

    for method, scale in order:
        if method != "null-text":
            add_row(method, scale)
    by_steps = []
    for steps in step_counts:
        for scale, method in ((1.0, "ddim"), (7.5, "ddim"), (7.5, "direct")):
            numbers, imgs = run.small_part(f"steps {steps} {method} {scale}", small, method, scale, steps)
            by_steps.append({"steps": steps, "scale": scale, "method": method, **numbers})
            images[f"steps_{steps}_{method}_{scale}"] = imgs["recon"]
    for method, scale in order:  # the slow one, last but one
        if method == "null-text":
            add_row(method, scale)
    rows.sort(key=lambda r: order.index((r["method"], r["scale"])))
    by_iterations = []
    for inner in inner_counts:
        numbers, imgs = run.small_part(f"inner {inner}", small, "null-text", 7.5, num_steps, inner)
        by_iterations.append({"inner_steps": inner, **numbers})
        images[f"inner_{inner}"] = imgs["recon"]
    # the parts may have run across several sessions: their own wall times add up to the sweep's cost
    compute_seconds = sum(r["seconds_per_image"] * n for r in rows) + sum(r["seconds_per_image"] * small for r in by_steps + by_iterations)
    numbers = {"n": n, "num_steps": num_steps, "small": small, "rows": rows, "by_steps": by_steps, "by_iterations": by_iterations,
               "null_drift": drifts[0] if drifts else None, "source_captions": run.src_text[:6], "target_captions": run.tgt_text[:6],
               "compute_seconds": compute_seconds, **provenance(time.perf_counter() - start)}
    return numbers, images


def run(parts_folder: Optional[Path] = None, progress: Callable[[str], None] = print) -> tuple[dict, dict[str, Tensor]]:
    """The sweep on the shipped models; hours on two cores, so every part is kept in ``parts_folder``."""
    return inversion_sweep(*chapter_models(), parts_folder=parts_folder, progress=progress)
