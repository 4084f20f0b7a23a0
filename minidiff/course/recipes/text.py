"""The text-conditioned base models of the plain world: ``base`` (the pooled path) and ``base-xattn`` (text only
through cross-attention), and what every text model's export shares (the text encoder's shape, the data, the
guidance sweep and card).

    python -m minidiff train base --out runs/base --export minidiff/checkpoints/base
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ...core.checkpoint import load_text_unet, round_to_half, save_checkpoint
from ...core.schedule import linear_schedule
from ...core.text_encoder import TextConditionedUNet, TextEncoderConfig
from ...core.unet import UNetConfig
from ...world.captions import Tokenizer, captions
from ...world.judge import FAMILIES, targets
from ...world.scenes import Detail, scenes
from ..cards import model_card, table, training_facts
from ..probes import BASE_EVAL_SIZE, attention_report, evaluate_base
from ..train import TrainConfig, train
from ..zoo import load_judge


# -- the data and the text encoder every text model here shares ---------------------------------------

#: 3.2 M parameters: cross-attention at 8x8 only, plus the pooled caption added to the time embedding
BASE_UNET = UNetConfig(
    image_size=32, channels=48, channel_mults=(1, 2, 2), num_res_blocks=1, attention_resolutions=(8,),
    heads=4, context_dim=64, pooled_context=True,
)
#: v-prediction (Salimans & Ho 2022): with eps-prediction and the linear schedule, x0 = (x_t - sqrt(1-a) eps) / sqrt(a)
#: multiplies the net's eps error by up to 1/sqrt(alpha_bar_999) ~ 140, and deterministic DDIM from pure noise
#: committed to saturated black or white images (measured on an eps model at 2,250 steps; DDPM-1000 was clean).
BASE_TRAIN = TrainConfig(steps=7000, batch_size=64, lr=1e-3, warmup=500, cooldown=1000, ema_decay=0.999, checkpoint_every=250, mixed_precision=True, prediction="v")
#: how often the caption is replaced by the empty one, so the model is also unconditional (Ho & Salimans 2022)
CAPTION_DROPOUT = 0.1


def text_encoder_config() -> TextEncoderConfig:
    """The shape of every text encoder here (base models, CDM's base, the small CLIP): the world's vocabulary and
    token limit, width 64."""
    tokenizer = Tokenizer()
    return TextEncoderConfig(vocab_size=len(tokenizer), max_tokens=tokenizer.max_tokens, width=BASE_UNET.context_dim,
                             pad_id=tokenizer.pad_id, start_id=tokenizer.start_id, end_id=tokenizer.end_id)


def probe_data(batch_size: int, seed: int, start: int = 0, detail: Detail = "none"):
    """Training batches (images, token ids of a random phrasing, 10% empty captions) plus ``label_<head>``: the judge's labels of the scene each caption names (-1 where
    the caption was dropped, so there is nothing to read). ``start``: the step this stream begins at, so a second
    stage continues the first's stream instead of repeating it. ``detail``: the world's unnamed detail (``scenes``)."""
    tokenizer = Tokenizer()

    def data(step: int) -> dict[str, torch.Tensor]:
        step += start
        batch = scenes("train", step * batch_size, batch_size, detail=detail)
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        texts = captions(batch, g)
        drop = torch.rand(batch_size, generator=g) < CAPTION_DROPOUT
        ids, mask = tokenizer(["" if d else c for c, d in zip(texts, drop)])
        labels = {f"label_{k}": torch.where(drop, -1, v) for k, v in targets(batch).items()}
        return {"x0": batch.images, "ids": ids, "mask": mask, **labels}

    return data


def base_data(batch_size: int, seed: int = 0, detail: Detail = "none"):
    """Training batches of world scenes: images, token ids of a random phrasing, 10% empty captions
    (``probe_data``'s batches without their labels)."""
    labelled = probe_data(batch_size, seed, detail=detail)

    def data(step: int) -> dict[str, torch.Tensor]:
        return {k: v for k, v in labelled(step).items() if not k.startswith("label_")}

    return data


# -- exporting a text model: guidance sweep, prompt-following at the chosen scale, card --------------------

BASE_SWEEP_SCALES = (1.0, 3.0, 5.0)
BASE_SWEEP_SIZE = 128
BASE_SWEEP_STEPS = 25  # the sweep only picks the scale; 25 DDIM steps halve its cost on 2 CPU cores


def export_text_unet(result, config: TrainConfig, unet: UNetConfig, export: str, name: str, about: str, command: str,
                     half: bool = False, extra: str | Callable[[dict], str] = "", metrics: dict | None = None,
                     judge: str = "judge", detail: Detail = "none") -> None:
    """Evaluate a trained text-conditioned model (guidance sweep, then the recommended scale on ``BASE_EVAL_SIZE``
    samples) and write it with its model card: ``about`` opens the card ({parameters} is filled in), ``extra`` ends it,
    ``metrics`` are stored in the config beside the judge's. half: store float16 weights; the model is rounded first,
    so the card's numbers are those of the file. ``judge`` names the judge checkpoint that scores it, ``detail`` the
    world its real scenes (world-FD) come from."""
    model = result.ema.cpu().eval()
    if half:
        round_to_half(model)
    judge_name, judge = judge, load_judge(judge)
    sweep = {s: evaluate_base(model, judge, n=BASE_SWEEP_SIZE, scale=s, steps=BASE_SWEEP_STEPS, detail=detail) for s in BASE_SWEEP_SCALES}
    for s_, m in sweep.items():
        print(f"scale {s_}: " + ", ".join(f"{k} {v:.3f}" for k, v in m.items()), flush=True)
    best = max(BASE_SWEEP_SCALES, key=lambda s_: min(sweep[s_][f] for f in FAMILIES if f != "count"))
    main = evaluate_base(model, judge, n=BASE_EVAL_SIZE, scale=best, detail=detail)
    print(f"recommended scale {best}: {main}", flush=True)
    if callable(extra):
        extra = extra(main)
    world = "the plain world" if detail == "none" else f"the world with unnamed detail (`detail={detail!r}`)"
    measured = f"""## Measured (`minidiff.course.probes.evaluate_base`, DDIM 50 steps, prompts = captions of held-out scenes)

Scored by the `{judge_name}` judge; world-FD against held-out scenes of {world}.

At the recommended scale, {BASE_EVAL_SIZE} samples: the judge agrees with the prompt's attributes

""" + table([*FAMILIES, "world-FD", "world-FD floor (real vs real)"],
            [[*(f"{100 * main[f]:.1f}%" for f in FAMILIES), f"{main['world_fd']:.2f}", f"{main['world_fd_floor']:.2f}"]]) + f"""

Guidance sweep, {BASE_SWEEP_SIZE} samples each, DDIM {BASE_SWEEP_STEPS} steps (world-FD of so few samples sits higher than for 512):

""" + table(["scale", *FAMILIES, "world-FD"],
            [*([s_, *(f"{100 * m[f]:.1f}%" for f in FAMILIES), f"{m['world_fd']:.2f}"] for s_, m in sweep.items()),
             [f"floor ({BASE_SWEEP_SIZE} real vs {BASE_SWEEP_SIZE} real)", *([""] * len(FAMILIES)), f"{sweep[best]['world_fd_floor']:.2f}"]])
    facts = training_facts(config, result, command)
    facts.insert(-1, f"Recommended guidance scale: {best} (the scale whose worst attribute family is best, below)")
    card = model_card(name, about.format(parameters=f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}"), facts, measured, extra)
    save_checkpoint(
        export, model,
        {"kind": "text_unet", "unet": unet.to_dict(), "text_encoder": model.text.config.to_dict(), "prediction": model.prediction,
         "schedule": {"kind": "linear", "T": 1000}, "guidance_scale": best, "metrics": {**main, **(metrics or {})},
         "judge": judge_name, "world_detail": detail,
         "sweep": {str(k): v for k, v in sweep.items()}},
        card, half=half,
    )
    print(f"exported to {Path(export).resolve()}")


# -- the first base model: the pooled caption plus cross-attention at 8x8 ------------------------------

def make_base_model():
    return TextConditionedUNet(BASE_UNET, text_encoder_config(), BASE_TRAIN.prediction)


def train_base(out: str, export: str | None = None, steps: int | None = None, progress: bool = False, device: str = "cpu") -> None:
    config = BASE_TRAIN if steps is None else TrainConfig(**{**BASE_TRAIN.__dict__, "steps": steps})
    torch.manual_seed(config.seed)
    model = make_base_model()
    print(f"base model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters", flush=True)
    result = train(model, base_data(config.batch_size, config.seed), linear_schedule(), config, out, progress=progress, log_every=50, device=device)
    print(f"trained to step {result.step} ({result.seconds:.0f}s in this call)", flush=True)
    if export is None:
        return
    about = f"""The text-conditioned base model of the world: a `CLIPTextModel` (2 layers, width 64) and a UNet
({BASE_UNET.channels} channels, levels {list(BASE_UNET.channel_mults)}, cross-attention at 8x8, pooled caption added to the time
embedding), trained together from scratch on 32 px scenes with {CAPTION_DROPOUT:.0%} of captions dropped to the
empty caption, so classifier-free guidance works. {{parameters}} M parameters,
v-prediction (Salimans & Ho 2022), linear schedule with T = 1000. Use `model.denoiser(...)`, which returns eps.
An earlier eps-prediction run was abandoned at 2,250 steps: its DDIM samples from pure noise saturated to black or
white, because x0 = (x_t - sqrt(1 - a) eps) / sqrt(a) multiplies the eps error by up to 140 at t = 999.
"""
    export_text_unet(result, config, BASE_UNET, export, "base", about, "python -m minidiff train base --out runs/base --export minidiff/checkpoints/base")


# -- its successor: text through cross-attention only -----------------------------------------------

#: the base model without the pooled path, with cross-attention at 16x16 as well as 8x8: the words reach the
#: pixels only through attention, as in Stable Diffusion, so the attention-editing methods (chapter 7) have
#: maps to work with. Chapter 7 measured that the pooled base model leaves its attention idle.
BASE_XATTN_UNET = UNetConfig(**{**BASE_UNET.to_dict(), "attention_resolutions": (16, 8), "pooled_context": False})
#: warm-started from the shipped base model (7,000 steps), so its drawing is kept and only the text route is relearned;
#: 1,200 steps is what fitted one working session on 2 CPU cores (about 4 s per step there)
BASE_XATTN_TRAIN = TrainConfig(steps=1200, batch_size=64, lr=5e-4, warmup=200, cooldown=300, ema_decay=0.999, checkpoint_every=100,
                               mixed_precision=True, prediction="v")


def make_base_xattn_model():
    return TextConditionedUNet(BASE_XATTN_UNET, text_encoder_config(), BASE_XATTN_TRAIN.prediction)


@torch.no_grad()
def warm_start_from_pooled(model, source, batches: int = 16, seed: int = 0) -> list[str]:
    """Copy every weight of the pooled base model ``source`` into ``model`` (which has no pooled path and more
    attention blocks); returns the names of the new weights, which keep their initialisation (the new attention
    blocks' output projections start at zero, so each begins as the identity).

    The pooled path added ``pool_proj(mean token embedding)`` to the time embedding. Dropping it would move every
    embedding the copied layers see; so its mean over training captions is folded into the time MLP's last bias,
    and the network starts from "the pooled model, told the average caption".
    """
    own = model.state_dict()
    theirs = {k: v for k, v in source.state_dict().items() if not k.startswith("unet.pool_proj.")}
    missing = sorted(set(theirs) - set(own))
    if missing:
        raise ValueError(f"the new model lacks weights of the source model: {missing[:5]}")
    for k, v in theirs.items():
        if own[k].shape != v.shape:
            raise ValueError(f"{k}: shape {tuple(v.shape)} in the source, {tuple(own[k].shape)} in the new model")
        own[k].copy_(v)
    data = base_data(64, seed)
    pooled = []
    for step in range(batches):
        b = data(step)
        ctx, w = source.encode(b["ids"], b["mask"]), b["mask"].to(torch.float32)[..., None]
        pooled.append(source.unet.pool_proj((ctx * w).sum(1) / w.sum(1).clamp(min=1)))
    model.unet.time_mlp[2].bias.add_(torch.cat(pooled).mean(0))
    return sorted(set(own) - set(theirs))


def train_base_xattn(out: str, export: str | None = None, steps: int | None = None, progress: bool = False, device: str = "cpu") -> None:
    """``python -m minidiff train base-xattn``: warm start from ``base``, then train with text through cross-attention only."""
    config = BASE_XATTN_TRAIN if steps is None else TrainConfig(**{**BASE_XATTN_TRAIN.__dict__, "steps": steps})
    torch.manual_seed(config.seed)
    model = make_base_xattn_model()
    source, _, _ = load_text_unet("base")
    new = warm_start_from_pooled(model, source)
    print(f"base-xattn: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; warm start from base, "
          f"{len(new)} new tensors ({', '.join(sorted({k.rsplit('.attn', 1)[0] for k in new}))})", flush=True)
    result = train(model, base_data(config.batch_size, config.seed), linear_schedule(), config, out, progress=progress, log_every=25, device=device)
    print(f"trained to step {result.step} ({result.seconds:.0f}s in this call)", flush=True)
    if export is None:
        return
    round_to_half(result.ema.cpu().eval())  # what ships, so the gates below measure the file
    report, gates = attention_report(result.ema, linear_schedule(), load_judge())
    print(report, flush=True)
    about = """The base model's successor, for the attention-editing chapters: the same UNet and text encoder as `base`, but the
caption reaches the UNet **only through cross-attention** (no pooled path), at 16x16 as well as 8x8, as in Stable Diffusion.
{parameters} M parameters, v-prediction, linear schedule with T = 1000, float16 weights. Use `model.denoiser(...)`.
Warm-started from `base` (its 7,000 steps; see its card): every weight copied, the pooled path's mean over training
captions folded into the time embedding's bias, the new attention blocks starting as identities; then trained with
the base recipe's data (10% empty captions).
"""
    export_text_unet(result, config, BASE_XATTN_UNET, export, "base-xattn", about,
                     "python -m minidiff train base-xattn --out runs/base-xattn --export minidiff/checkpoints/base-xattn",
                     half=True, extra=report, metrics=gates)
