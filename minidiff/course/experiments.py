"""The measured sweeps behind the chapters, each a function that a script runs once and a chapter reads.

A sweep that takes minutes on 2 CPU cores runs from the command line and
writes ``results/NAME.json`` (numbers) and ``results/NAME.safetensors``
(a few example images as uint8), which the chapter loads:

    python -m minidiff results sdedit      # or ilvr

Every sweep is seeded: running it again gives the same file.
"""

from __future__ import annotations

import json
import platform
import re
import time
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..core.checkpoint import available_checkpoints
from ..core.sampling import Denoiser, invert_ddim, sample_ddim, sample_ddpm
from ..core.schedule import Schedule
from ..methods.direct_inversion import add_offsets, direct_inversion
from ..methods.ilvr import ilvr_hook, lowpass
from ..methods.null_text import INNER_STEPS as NULL_TEXT_INNER_STEPS
from ..methods.null_text import null_text_inversion, per_step_null_denoiser
from ..methods.sdedit import sdedit
from ..world.captions import Tokenizer, caption
from ..world.judge import FAMILIES, Judge, agreement, targets, world_fd
from ..world.scenes import COLOURS, Scenes, scenes, with_attribute
from ..world.strokes import stroke_distance, stroke_painting

RESULTS = Path(__file__).resolve().parents[2] / "results"

#: held-out scenes used as guides and references; the real set for world-FD starts after them
GUIDES_START, REAL_START, REAL_COUNT = 0, 4000, 1000


def unconditional(model, schedule: Schedule) -> Denoiser:
    """The base model with the empty caption and no guidance: the unconditional model SDEdit and ILVR assume.

    One network call per step (a guided denoiser at scale 1 would still evaluate both halves of its batch).
    """
    from ..core.denoisers import with_inputs, with_prediction

    ids, mask = Tokenizer()("")
    with torch.no_grad():
        null = model.encode(ids, mask)
    return with_prediction(with_inputs(model.unet, context=null, context_mask=mask), schedule, model.prediction)


def judge_confidence(judge: Judge, images: Tensor) -> Tensor:
    """Mean over the scene-level heads of the judge's top softmax probability, per image (B,): a realism proxy."""
    with torch.no_grad():
        logits = judge(images)
    heads = ("count", "shape", "colour", "size", "position", "tone", "pattern")
    return torch.stack([logits[h].softmax(1).max(1).values for h in heads]).mean(0)


def to_uint8(x: Tensor) -> Tensor:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def from_uint8(x: Tensor) -> Tensor:
    return x.float() / 127.5 - 1


def save_results(name: str, numbers: dict, images: dict[str, Tensor], folder: Path = RESULTS, exact: bool = False) -> None:
    """Images as uint8 (for showing) or, with ``exact``, as float16 (for scoring later); the JSON last."""
    try:  # strict JSON: a number that is not one (NaN, infinity) is an error here, not a file other readers reject
        text = json.dumps(numbers, indent=1, allow_nan=False)
    except ValueError as e:
        raise ValueError(f"the numbers of {name!r} hold NaN or infinity, which JSON cannot store; write None for a "
                         f"number that was not measured ({e})") from None
    folder.mkdir(parents=True, exist_ok=True)
    encode = (lambda v: v.detach().half()) if exact else to_uint8
    save_file({k: encode(v).contiguous() for k, v in images.items()}, str(folder / f"{name}.safetensors"))
    (folder / f"{name}.json").write_text(text + "\n")  # last: the JSON marks a finished result


def load_results(name: str, folder: Path = RESULTS, exact: bool = False) -> tuple[dict, dict[str, Tensor]]:
    """``(numbers, images in [-1, 1])`` written by ``python -m minidiff results NAME`` (or by ``save_results``)."""
    path = folder / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m minidiff results {name}` to compute it")
    decode = (lambda v: v.float()) if exact else from_uint8
    images = {k: decode(v) for k, v in load_file(str(folder / f"{name}.safetensors")).items()}
    return json.loads(path.read_text()), images


def _provenance(seconds: float) -> dict:
    return {"seconds": round(seconds, 1), "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
            "torch": torch.__version__}


# -- SDEdit -------------------------------------------------------------------------------------------

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
               "stroke_world_fd": world_fd(judge, strokes, real), **_provenance(time.perf_counter() - start)}
    return numbers, images


# -- ILVR ---------------------------------------------------------------------------------------------

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


def _coarse_kept(judge: Judge, x: Tensor, refs) -> dict[str, float]:
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
               "filters": filters, "by_stop": by_stop, **_provenance(time.perf_counter() - start)}
    return numbers, images


# -- inversion -------------------------------------------------------------------------------------------

INVERSION_SCALES = (1.0, 3.0, 7.5)
INVERSION_METHODS = ("ddim", "ddim, guided inversion", "null-text", "direct")
#: the scales each method is measured at in the full table. On two CPU cores null-text's 10 inner steps per
#: timestep dominate the run, so it is measured at the paper's scale only; guided inversion and plain
#: inversion coincide at scale 1; direct inversion is exact by construction, so two scales show it.
INVERSION_TABLE = {"ddim": (1.0, 3.0, 7.5), "ddim, guided inversion": (7.5,), "null-text": (7.5,), "direct": (1.0, 7.5)}


def _prompts(model, texts: list[str]) -> tuple[Tensor, Tensor]:
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


def _edit_targets(source: Scenes) -> Scenes:
    """Each scene's first object recoloured to the next colour of the palette: a one-word caption edit."""
    return with_attribute(source, "colour", (source.colour[:, 0] + 1) % len(COLOURS))


class Parts:
    """A sweep's finished pieces, one JSON file each under ``folder``, so a long sweep resumes where it stopped.

    ``parts.get(key, compute)`` returns the stored numbers of ``key`` or computes, stores and returns them;
    images go to ``key.safetensors`` beside them, as uint8 (for showing) or, with ``exact_images``,
    as float16 (for scoring later). With ``folder=None`` nothing is kept: every part is computed.
    """

    def __init__(self, folder: Optional[Path], progress: Callable[[str], None] = print, exact_images: bool = False):
        self.folder, self.progress, self.exact_images = folder, progress, exact_images
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    def get(self, key: str, compute: Callable[[], tuple[dict, dict[str, Tensor]]]) -> tuple[dict, dict[str, Tensor]]:
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("_")
        if self.folder is not None and (self.folder / f"{name}.json").exists():
            return load_results(name, self.folder, exact=self.exact_images)
        numbers, images = compute()
        if self.folder is not None:
            save_results(name, numbers, images, self.folder, exact=self.exact_images)
        self.progress(f"{key}: done ({numbers.get('seconds', 0):.0f}s)")
        return numbers, images


def _labels(predicted: dict[str, Tensor]) -> dict[str, list[int]]:
    return {k: v.tolist() for k, v in predicted.items()}


def inversion_sweep(model, schedule: Schedule, judge: Judge, n: int = 100, batch: int = 25, num_steps: int = 50,
                    small: int = 8, step_counts: tuple[int, ...] = (10, 20, 50, 100), inner_counts: tuple[int, ...] = (0, 1, 2, 5, 10),
                    null_text_batch: int = 10, parts_folder: Optional[Path] = None,
                    progress: Callable[[str], None] = print) -> tuple[dict, dict[str, Tensor]]:
    """Reconstruction PSNR, judge agreement and time of each inversion at each scale; an edit by caption;
    PSNR against steps and null-text iterations; the drift of the optimised null embeddings.

    Every batch of every row is a part (see ``Parts``): with ``parts_folder`` a stopped run resumes.
    The cheap rows run first, null-text (by far the slowest) last, in batches of ``null_text_batch``.
    """
    from ..world.metrics import masked_psnr, psnr

    start = time.perf_counter()
    parts = Parts(parts_folder, progress)
    source = scenes("test", GUIDES_START, n)
    target_scenes = _edit_targets(source)
    src_text = [caption(source, i) for i in range(n)]
    tgt_text = [caption(target_scenes, i) for i in range(n)]
    null = _prompts(model, [""])
    background = 1 - torch.nn.functional.max_pool2d(source.masks.any(1, keepdim=True).float(), 3, stride=1, padding=1)

    def row_part(method: str, scale: float, sl: slice):
        def compute():
            with_edit = scale == 7.5
            out = invert_and_reconstruct(method, model, schedule, source.images[sl], _prompts(model, src_text[sl]), null, scale,
                                         num_steps, target=_prompts(model, tgt_text[sl]) if with_edit else None)
            numbers = {"psnr": psnr(out["recon"], source.images[sl]).tolist(), "seconds": out["seconds"],
                       "predicted": _labels(judge.predict(out["recon"].clamp(-1, 1)))}
            images = {"recon": out["recon"][:6].clamp(-1, 1)}
            if out["edit"] is not None:
                numbers["edit_predicted"] = _labels(judge.predict(out["edit"].clamp(-1, 1)))
                numbers["edit_background_psnr"] = masked_psnr(out["edit"], source.images[sl], background[sl]).tolist()
                images["edit"] = out["edit"][:6].clamp(-1, 1)
            if method == "null-text":
                m = null[1][0]
                ref = null[0][0][m]
                drift = ((out["null_contexts"][:, :, m] - ref).flatten(2).norm(dim=-1) / ref.norm())  # (steps, B)
                numbers["null_drift"] = drift.mean(1).tolist()
                numbers["iterations"] = out["iterations"].float().mean().item()
            return numbers, images
        return parts.get(f"row {method} {scale} {sl.start}-{sl.stop}", compute)

    rows, images, drift = [], {"source": source.images[:6]}, None

    def table_row(method: str, scale: float) -> None:
        nonlocal drift
        size = null_text_batch if method == "null-text" else batch
        pieces = [row_part(method, scale, slice(i, min(i + size, n))) for i in range(0, n, size)]
        nums = [p[0] for p in pieces]
        per_image = torch.tensor(sum((x["psnr"] for x in nums), []))
        predicted = {k: torch.tensor(sum((x["predicted"][k] for x in nums), [])) for k in nums[0]["predicted"]}
        kept = agreement(predicted, targets(source))
        row = {"scale": scale, "method": method, "psnr": per_image.mean().item(), "psnr_min": per_image.min().item(),
               "seconds_per_image": sum(x["seconds"] for x in nums) / n, **{f"kept_{f}": kept[f] for f in FAMILIES}}
        images[f"recon_{method}_{scale}"] = pieces[0][1]["recon"]
        if "edit_predicted" in nums[0]:
            said = {k: torch.tensor(sum((x["edit_predicted"][k] for x in nums), [])) for k in nums[0]["edit_predicted"]}
            want = targets(target_scenes)
            others = [f for f in ("count", "shape", "size", "position", "tone", "pattern") if f in said]
            preserved = torch.stack([(said[f] == want[f]) for f in others]).all(0).float()
            row.update({"edit_success": (said["colour"] == want["colour"]).float().mean().item(), "edit_preserved": preserved.mean().item(),
                        "edit_background_psnr": torch.tensor(sum((x["edit_background_psnr"] for x in nums), [])).mean().item()})
            images[f"edit_{method}"] = pieces[0][1]["edit"]
        if method == "null-text" and scale == 7.5:
            drift = nums[0]["null_drift"]
            row["mean_iterations_used"] = sum(x["iterations"] for x in nums) / len(nums)
        rows.append(row)
        progress(f"inversion {method} @ {scale}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float)))

    order = [(m, w) for m in INVERSION_METHODS for w in INVERSION_SCALES if w in INVERSION_TABLE[m]]
    for method, scale in order:
        if method != "null-text":
            table_row(method, scale)
    sub = source[:small]
    sub_prompt = _prompts(model, src_text[:small])

    def small_part(key: str, method: str, scale: float, steps: int, inner: int = NULL_TEXT_INNER_STEPS):
        def compute():
            out = invert_and_reconstruct(method, model, schedule, sub.images, sub_prompt, null, scale, steps, inner_steps=inner)
            numbers = {"psnr": psnr(out["recon"], sub.images).mean().item(), "seconds_per_image": out["seconds"] / small}
            if method == "null-text":
                numbers["mean_iterations_used"] = out["iterations"].float().mean().item()
            return numbers, {"recon": out["recon"][:4].clamp(-1, 1)}
        return parts.get(key, compute)

    by_steps = []
    for steps in step_counts:
        for scale, method in ((1.0, "ddim"), (7.5, "ddim"), (7.5, "direct")):
            numbers, imgs = small_part(f"steps {steps} {method} {scale}", method, scale, steps)
            by_steps.append({"steps": steps, "scale": scale, "method": method, **numbers})
            images[f"steps_{steps}_{method}_{scale}"] = imgs["recon"]
    for method, scale in order:  # the slow one, last but one
        if method == "null-text":
            table_row(method, scale)
    rows.sort(key=lambda r: order.index((r["method"], r["scale"])))
    by_iterations = []
    for inner in inner_counts:
        numbers, imgs = small_part(f"inner {inner}", "null-text", 7.5, num_steps, inner)
        by_iterations.append({"inner_steps": inner, **numbers})
        images[f"inner_{inner}"] = imgs["recon"]
    # the parts may have run across several sessions: their own wall times add up to the sweep's cost
    compute_seconds = sum(r["seconds_per_image"] * n for r in rows) + sum(r["seconds_per_image"] * small for r in by_steps + by_iterations)
    numbers = {"n": n, "num_steps": num_steps, "small": small, "rows": rows, "by_steps": by_steps, "by_iterations": by_iterations,
               "null_drift": drift, "source_captions": src_text[:6], "target_captions": tgt_text[:6],
               "compute_seconds": compute_seconds, **_provenance(time.perf_counter() - start)}
    return numbers, images


# -- SR3 and the cascade ------------------------------------------------------------------------------------

SR3_STEP_COUNTS = (5, 10, 25, 50, 100, 200)
CDM_LEVELS = (-1, 50, 100, 200, 300, 400, 500)


def sr3_sweep(judge: Judge, n: int = 256, seeds: int = 4, progress: Callable[[str], None] = print) -> tuple[dict, dict[str, Tensor]]:
    """Bicubic vs regression vs SR3 on held-out world and photo pairs: PSNR, SSIM, consistency, judge accuracy on
    the fine attributes, world-FD; SR3 quality against its number of steps; diversity across seeds."""
    from ..methods.sr3 import upsample
    from ..world.metrics import psnr, ssim
    from .sr_recipes import HIGH, evaluate_sr, load_sr, photo_pairs, regress, super_resolve

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
               **_provenance(time.perf_counter() - start)}
    return numbers, images


def classification_accuracy_score(images: Tensor, labels: dict[str, Tensor], test, steps: int = 300, seed: int = 0) -> dict[str, float]:
    """CAS (Ravuri & Vinyals 2019): train a fresh classifier on generated images with the prompts' labels,
    report its accuracy on real held-out scenes, per attribute family."""
    from ..world.judge import HEADS, Judge as Classifier

    torch.manual_seed(seed)
    net = Classifier()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    with torch.enable_grad():
        for _ in range(steps):
            idx = torch.randint(len(images), (128,), generator=g)
            logits = net(images[idx])
            loss = sum(torch.nn.functional.cross_entropy(logits[h], labels[h][idx], ignore_index=-1) for h in HEADS)
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    return agreement(net.predict(test.images), targets(test))


def cdm_sweep(judge: Judge, n: int = 512, steps: int = 25, progress: Callable[[str], None] = print) -> tuple[dict, dict[str, Tensor]]:
    """The cascade base8 -> 32: SR trained without augmentation fed real vs generated 8 px images (the compounding
    error), and the augmented stage across the augmentation level; world-FD and CAS."""
    from ..core.checkpoint import load_text_unet
    from .recipes import sample_prompts
    from .sr_recipes import load_sr, super_resolve

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
               **_provenance(time.perf_counter() - start)}
    return numbers, images


def edits_sweep(model, schedule: Schedule, judge: Judge, progress: Callable[[str], None] = print,
                parts_folder: Optional[Path] = None) -> tuple[dict, dict[str, Tensor]]:
    from .benchmark import edit_benchmark

    numbers, images = edit_benchmark(model, schedule, judge, parts=Parts(parts_folder, progress, exact_images=True), progress=progress)
    return {**numbers, **_provenance(numbers["seconds"])}, images


# -- DiffusionCLIP -------------------------------------------------------------------------------------

#: red -> blue on one-object scenes: fine-tuned on DCLIP_TRAIN train-split scenes, tested on DCLIP_TEST held-out ones
DCLIP_TRAIN, DCLIP_TEST, DCLIP_ITERATIONS = 16, 32, 12


def clip_prefers(clip, images: Tensor, shown: Scenes, colour: str) -> Tensor:
    """(B,) bool: CLIP finds each image closer to its caption with the object in ``colour`` than with its own colour."""
    tok = Tokenizer()
    own = tok([caption(shown, i) for i in range(len(shown))])
    recoloured = with_attribute(shown, "colour", torch.full((len(shown),), COLOURS.index(colour)))
    other = tok([caption(recoloured, i) for i in range(len(shown))])
    with torch.no_grad():
        f = clip.encode_image(images)
        return F.cosine_similarity(f, clip.encode_text(*other), dim=-1) > F.cosine_similarity(f, clip.encode_text(*own), dim=-1)


def diffusion_clip_sweep(model, schedule: Schedule, judge: Judge, progress: Callable[[str], None] = print,
                         train: int = DCLIP_TRAIN, test: int = DCLIP_TEST, iterations: int = DCLIP_ITERATIONS) -> tuple[dict, dict[str, Tensor]]:
    """DiffusionCLIP's full run (the chapter runs a reduced one live): fine-tune a copy of the base model so that red
    scenes, inverted to t0 and generated back, move along CLIP's "blue caption - red caption" direction; then edit
    held-out red scenes. The small CLIP is the loss; the judge, trained separately, and CLIP itself both read the result."""
    from ..methods import diffusion_clip as dc
    from ..world.metrics import psnr
    from .recipes import load_clip

    start = time.perf_counter()
    clip, tok = load_clip(), Tokenizer()
    red = COLOURS.index("red")

    def reds(split: str, count: int) -> Scenes:
        pool = scenes(split, 0, 40 * count)
        return pool[((pool.count == 1) & (pool.colour[:, 0] == red)).nonzero().flatten()[:count]]

    train_set, test_set = reds("train", train), reds("test", test)
    blue = lambda s: with_attribute(s, "colour", torch.full((len(s),), COLOURS.index("blue")))  # noqa: E731
    null_ids, null_mask = tok("")
    with torch.no_grad():
        null = model.encode(null_ids, null_mask)

    def denoiser_maker(shown: Scenes):
        ids, mask = tok([caption(shown, i) for i in range(len(shown))])
        with torch.no_grad():
            ctx = model.encode(ids, mask)
        return lambda net: net.denoiser(schedule, ctx, null, 1.0, mask, null_mask)

    src = tok([caption(train_set, i) for i in range(len(train_set))])
    tgt = tok([caption(blue(train_set), i) for i in range(len(train_set))])
    with torch.no_grad():
        direction = (clip.encode_text(*tgt) - clip.encode_text(*src)).mean(0, keepdim=True)
    with torch.enable_grad():
        tuned = dc.diffusion_clip_finetune(model, denoiser_maker(train_set), train_set.images, clip.encode_image, direction, schedule,
                                           iterations=iterations)
    progress(f"diffusion_clip: fine-tuned in {time.perf_counter() - start:.0f}s, losses {[round(v, 3) for v in tuned.losses]}")
    make_test = denoiser_maker(test_set)
    with torch.no_grad():
        untuned = dc.diffusion_clip_edit(model, make_test, model, test_set.images, schedule)
        edited = dc.diffusion_clip_edit(model, make_test, tuned.model, test_set.images, schedule)
    truth = targets(blue(test_set))
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
    return {**numbers, **_provenance(time.perf_counter() - start)}, {"source": test_set.images[:8], "untuned": untuned[:8].clamp(-1, 1),
                                                                      "edited": edited[:8].clamp(-1, 1)}


SWEEPS = {"sdedit": sdedit_sweep, "ilvr": ilvr_sweep, "inversion": inversion_sweep, "sr3": sr3_sweep, "cdm": cdm_sweep, "edits": edits_sweep,
          "diffusion_clip": diffusion_clip_sweep}


def run_sweep(name: str, folder: Optional[Path] = None) -> None:
    from ..core.checkpoint import load_text_unet
    from .recipes import load_judge

    if name in ("sr3", "cdm"):  # these load their own models
        numbers, images = SWEEPS[name](load_judge())
    elif name in ("inversion", "edits"):  # hours on two cores: resumable, finished parts kept in results/parts/NAME
        model, schedule, _ = load_text_unet("base")
        numbers, images = SWEEPS[name](model, schedule, load_judge(), parts_folder=(folder or RESULTS) / "parts" / name)
    else:
        model, schedule, _ = load_text_unet("base")
        numbers, images = SWEEPS[name](model, schedule, load_judge())
    numbers["command"] = f"python -m minidiff results {name}"
    save_results(name, numbers, images, folder or RESULTS)
    print(f"wrote {(folder or RESULTS) / name}.json in {numbers['seconds']:.0f}s")
