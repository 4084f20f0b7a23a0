"""Recipes for super-resolution and the cascade: SR3 on the world and on photos, a regression baseline,
and CDM's small base model and augmented super-resolution stage.

    python -m minidiff train sr3-world --out runs/sr3-world --export minidiff/checkpoints/sr3-world

Every SR model maps 8 px to 32 px (x4): the low-resolution image is an exact area average
(``Scenes.at_resolution(8)`` or ``avg_pool2d(4)``), bicubic-upsampled and concatenated to the input.

The diffusion SR models predict v, not eps as in SR3's paper: with eps and this training budget the model's
implied x0 ignores the low-res input at high noise, so the first sampling steps commit wrong global colours
(measured in ``benchmarks/sr3_prediction_ablation.py``, explained in chapter 2).
"""

from __future__ import annotations

from pathlib import Path
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.checkpoint import load_checkpoint, load_weights, round_to_half, save_checkpoint
from ..core.sampling import sample_ddpm
from ..core.schedule import linear_schedule
from ..core.unet import UNet, UNetConfig
from ..methods.cascade import augmented_condition, check_augment, random_levels
from ..methods.sr3 import check_low, sr3_denoiser, sr3_loss, upsample
from ..world.captions import Tokenizer, captions
from ..world.metrics import psnr, ssim
from ..world.photos import crops
from ..world.scenes import scenes
from .train import TrainConfig, train

LOW, HIGH = 8, 32

#: the SR3 network: noise-level input, the upsampled low-res image as 3 extra input channels
SR_UNET = UNetConfig(image_size=HIGH, cond_channels=3, channels=32, channel_mults=(1, 2, 2), num_res_blocks=1,
                     attention_resolutions=(8,), heads=4, time_input="noise_level")
#: CDM's stage: the same plus the augmentation level as one more constant channel
CDM_SR_UNET = UNetConfig(**{**SR_UNET.to_dict(), "cond_channels": 4})
#: the regression baseline: the same UNet body, input = the upsampled image, output = the high-res image
REGRESSION_UNET = UNetConfig(**{**SR_UNET.to_dict(), "cond_channels": 0})
SR_TRAIN = TrainConfig(steps=1500, batch_size=32, lr=5e-4, warmup=100, cooldown=300, ema_decay=0.999, checkpoint_every=250, mixed_precision=True)
#: what the diffusion SR nets output (stored in their checkpoints; chapter 2 says why not the paper's eps)
SR_PREDICTION = "v"
SR_EVAL_SIZE = 256
SR_EVAL_STEPS = 50


def world_pairs(split: str, start: int, count: int) -> tuple[Tensor, Tensor]:
    """(high (B, 3, 32, 32), low (B, 3, 8, 8)) of world scenes."""
    s = scenes(split, start, count)
    return s.images, s.at_resolution(LOW)


def photo_pairs(split: str, start: int, count: int) -> tuple[Tensor, Tensor]:
    high = crops(split, start, count, size=HIGH)
    return high, F.avg_pool2d(high, HIGH // LOW)


def _sr_data(pairs: Callable[[str, int, int], tuple[Tensor, Tensor]], batch_size: int, augment: bool):
    schedule = linear_schedule()

    def data(step: int) -> dict[str, Tensor]:
        high, low = pairs("train", step * batch_size, batch_size)
        if augment:
            g = torch.Generator().manual_seed(step)
            cond = augmented_condition(low, HIGH, random_levels(batch_size, g), schedule, generator=g)
        else:
            cond = upsample(low, HIGH)
        return {"x0": high, "cond": cond}

    return data


def regression_loss(net: UNet, batch: dict[str, Tensor], schedule, generator) -> Tensor:
    """Plain MSE from the upsampled image to the high-res one (the time input is fixed at level 1)."""
    level = torch.ones(batch["x0"].shape[0], device=batch["x0"].device)
    return (net(batch["cond"], level) - batch["x0"]).square().mean()


def check_sr_input(low: Tensor) -> None:
    """Every SR model here takes (B, 3, 8, 8) images in [-1, 1] and returns (B, 3, 32, 32)."""
    check_low(None, low, HIGH, 3)
    if low.shape[-1] != LOW:
        raise ValueError(f"low-resolution input is {low.shape[-2]}x{low.shape[-1]}; these SR models were trained on "
                         f"{LOW}x{LOW} inputs (x{HIGH // LOW} to {HIGH}x{HIGH}): average-pool your image to {LOW} px first")


@torch.no_grad()
def super_resolve(net: UNet, low: Tensor, steps: int = SR_EVAL_STEPS, seed: int = 0, augment_level: int | None = None,
                  prediction: str | None = None) -> Tensor:
    """SR3 samples (B, 3, 32, 32) for low-res inputs (B, 3, 8, 8): ancestral sampling with ``steps`` steps.

    ``augment_level``: for CDM stages (4 conditioning channels), the level to noise the input to (-1 = clean);
    ``prediction``: what the net outputs, ``"eps"`` or ``"v"``; by default the one :func:`load_sr` read from the
    checkpoint (``net.prediction``), else :data:`SR_PREDICTION`.
    """
    check_sr_input(low)
    prediction = prediction or getattr(net, "prediction", SR_PREDICTION)
    if prediction is None:
        raise ValueError("this net is not a diffusion model (the regression baseline has prediction None): use regress(net, low)")
    schedule = linear_schedule()
    g = torch.Generator().manual_seed(seed)
    if net.config.cond_channels == 4:
        cond = augmented_condition(low, HIGH, -1 if augment_level is None else check_augment(augment_level), schedule, generator=g)
    elif augment_level is not None:
        raise ValueError("this model was trained without conditioning augmentation (3 conditioning channels): augment_level "
                         "applies to CDM stages such as cdm-sr32; leave it None")
    else:
        cond = upsample(low, HIGH)
    noise = torch.randn(low.shape[0], 3, HIGH, HIGH, generator=g)
    x = sample_ddpm(sr3_denoiser(net, cond, schedule, prediction), noise, schedule.timesteps(steps), schedule, generator=g)
    return x.clamp(-1, 1)


@torch.no_grad()
def regress(net: UNet, low: Tensor) -> Tensor:
    check_sr_input(low)
    return net(upsample(low, HIGH), torch.ones(low.shape[0])).clamp(-1, 1)


#: noise steps at which :func:`x0_consistency_by_level` probes an SR net
PROBE_STEPS = (50, 200, 400, 600, 800, 950, 999)


@torch.no_grad()
def x0_consistency_by_level(net: UNet, prediction: str | None = None, n: int = 64, steps=PROBE_STEPS) -> list[dict[str, float]]:
    """What an SR net believes the clean image is, at each noise level, on ``n`` held-out world pairs.

    Noises the true high-res image to step t, asks the net, and turns its answer into x0. Reports the x0's RMSE to
    the truth, its consistency (RMSE of its 8 px average vs the input) and ``amplification`` = sqrt((1 - a) / a),
    the factor by which an error in a predicted eps becomes an error in x0.
    """
    schedule = linear_schedule()
    prediction = prediction or getattr(net, "prediction", SR_PREDICTION)
    high, low = world_pairs("test", 0, n)
    denoise = sr3_denoiser(net, upsample(low, HIGH), schedule, prediction)
    g = torch.Generator().manual_seed(0)
    rows = []
    for t in steps:
        ts = torch.full((n,), t)
        a = schedule.at(t)
        x = schedule.q_sample(high, ts, torch.randn(high.shape, generator=g))
        x0 = schedule.predict_x0(x, ts, denoise(x, ts)).clamp(-1, 1)
        rows.append({"t": t, "x0_rmse": (x0 - high).square().mean().sqrt().item(),
                     "x0_consistency": (F.avg_pool2d(x0, HIGH // LOW) - low).square().mean().sqrt().item(),
                     "amplification": ((1 - a) / a).sqrt().item()})
    return rows


def evaluate_sr(predict: Callable[[Tensor], Tensor], pairs, n: int = SR_EVAL_SIZE) -> dict[str, float]:
    """PSNR, SSIM and consistency (the output's 8 px average vs the input) on held-out pairs."""
    high, low = pairs("test", 0, n)
    out = predict(low)
    return {"psnr": psnr(out, high).mean().item(), "ssim": ssim(out, high).mean().item(),
            "consistency_rmse": (F.avg_pool2d(out, HIGH // LOW) - low).square().mean().sqrt().item()}


def _card(name: str, what: str, config: TrainConfig, result, metrics: dict[str, dict[str, float]], command: str) -> str:
    rows = "\n".join(f"| {k} | {m['psnr']:.2f} | {m['ssim']:.3f} | {m['consistency_rmse']:.4f} |" for k, m in metrics.items())
    return f"""# {name}

{what}

- Training: {config.steps} steps, batch {config.batch_size}, AdamW lr {config.lr} (warm-up {config.warmup}, cool-down {config.cooldown}), EMA {config.ema_decay}, bfloat16 autocast
- Command: `{command}`
- Time: {result.total_seconds:.0f} s on {result.hardware}
- Stored in float16 (the numbers below were measured with the float16-rounded weights)

## Measured on {SR_EVAL_SIZE} held-out pairs (8 px -> 32 px; SR3: ancestral sampling, {SR_EVAL_STEPS} steps)

| method | PSNR (dB) | SSIM | consistency (RMSE of the 8 px average vs the input) |
|---|---|---|---|
{rows}
"""


def _train_sr(name: str, what: str, pairs, unet: UNetConfig, loss_fn, augment: bool, out: str, export: str | None,
              steps: int | None, progress: bool, device: str) -> None:
    config = SR_TRAIN if steps is None else TrainConfig(**{**SR_TRAIN.__dict__, "steps": steps})
    torch.manual_seed(config.seed)
    net = UNet(unet)
    print(f"{name}: {sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters", flush=True)
    result = train(net, _sr_data(pairs, config.batch_size, augment), linear_schedule(), config, out, loss_fn=loss_fn, progress=progress, log_every=50, device=device)
    if export is None:
        return
    model = round_to_half(result.ema.cpu().eval())  # shipped in float16: measure what ships
    metrics = {"bicubic": evaluate_sr(lambda low: upsample(low, HIGH).clamp(-1, 1), pairs)}
    metrics[name] = evaluate_sr((lambda low: regress(model, low)) if unet.cond_channels == 0 else (lambda low: super_resolve(model, low)), pairs)
    print(metrics, flush=True)
    command = f"python -m minidiff train {name} --out runs/{name} --export minidiff/checkpoints/{name}"
    extra = {} if unet.cond_channels == 0 else {"prediction": SR_PREDICTION}
    save_checkpoint(export, model, {"kind": "unet", "unet": unet.to_dict(), **extra, "schedule": {"kind": "linear", "T": 1000}, "metrics": metrics},
                    _card(name, what, config, result, metrics, command), half=True)
    print(f"exported to {Path(export).resolve()}")


SR3_LOSS = partial(sr3_loss, prediction=SR_PREDICTION)


def train_sr3_world(out, export=None, steps=None, progress=False, device="cpu"):
    _train_sr("sr3-world", "SR3 for the world: 8 px scenes to 32 px, v-prediction, conditioned on the continuous noise level.",
              world_pairs, SR_UNET, SR3_LOSS, False, out, export, steps, progress, device)


def train_sr3_photo(out, export=None, steps=None, progress=False, device="cpu"):
    _train_sr("sr3-photo", "SR3 for photographs: 8 px crops of scikit-image's photos to 32 px (chelsea and coffee held out), v-prediction.",
              photo_pairs, SR_UNET, SR3_LOSS, False, out, export, steps, progress, device)


def train_sr_regression(out, export=None, steps=None, progress=False, device="cpu"):
    _train_sr("sr-regression", "The regression baseline of SR3's paper: the same UNet trained with MSE to map the upsampled image to the original.",
              world_pairs, REGRESSION_UNET, regression_loss, False, out, export, steps, progress, device)


def train_cdm_sr32(out, export=None, steps=None, progress=False, device="cpu"):
    _train_sr("cdm-sr32", "CDM's super-resolution stage: like sr3-world, trained with Gaussian conditioning augmentation "
              "(half the batches clean, half noised to a level uniform in 0..500, the level given as a channel).",
              world_pairs, CDM_SR_UNET, SR3_LOSS, True, out, export, steps, progress, device)


def load_sr(name: str) -> UNet:
    """A shipped SR net (or the regression baseline), eval mode; ``net.prediction`` says what it outputs (None for regression)."""
    ckpt = load_checkpoint(name, kind="unet")
    net = load_weights(UNet(UNetConfig.from_dict(ckpt.config["unet"])), ckpt.weights, where=str(ckpt.path)).eval()
    net.prediction = ckpt.config.get("prediction")
    return net


# -- CDM's low-resolution base model --------------------------------------------------------------------

CDM_BASE_UNET = UNetConfig(image_size=LOW, channels=48, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(4,),
                           heads=4, context_dim=64, pooled_context=True)
CDM_BASE_TRAIN = TrainConfig(steps=2000, batch_size=64, lr=1e-3, warmup=200, cooldown=400, ema_decay=0.999, checkpoint_every=250,
                             mixed_precision=True, prediction="v")


def _cdm_base_data(batch_size: int):
    from .recipes import CAPTION_DROPOUT

    tokenizer = Tokenizer()

    def data(step: int) -> dict[str, Tensor]:
        g = torch.Generator().manual_seed(step)
        batch = scenes("train", step * batch_size, batch_size)
        texts = captions(batch, g)
        drop = torch.rand(batch_size, generator=g) < CAPTION_DROPOUT
        ids, mask = tokenizer(["" if d else c for c, d in zip(texts, drop)])
        return {"x0": batch.at_resolution(LOW), "ids": ids, "mask": mask}

    return data


BASE8_EVAL_SIZE = 256
BASE8_SCALE = 3.0  # the cascade's guidance scale


@torch.no_grad()
def base8_prompt_following(model, n: int = BASE8_EVAL_SIZE) -> dict[str, dict[str, float]]:
    """The judge's agreement with the prompt for 8 px samples, and for the real scenes at 8 px (the ceiling)."""
    from ..world.captions import caption
    from ..world.judge import agreement, targets
    from .recipes import load_judge, sample_prompts

    judge, test = load_judge(), scenes("test", 0, n)
    samples = sample_prompts(model, linear_schedule(), [caption(test, i) for i in range(n)], scale=BASE8_SCALE, steps=25)
    read = lambda x: agreement(judge.predict(upsample(x, HIGH).clamp(-1, 1)), targets(test))
    return {"samples": read(samples), "real": read(test.at_resolution(LOW))}


def train_cdm_base8(out, export=None, steps=None, progress=False, device="cpu"):
    from ..core.text_encoder import TextConditionedUNet
    from .recipes import text_encoder_config

    config = CDM_BASE_TRAIN if steps is None else TrainConfig(**{**CDM_BASE_TRAIN.__dict__, "steps": steps})
    torch.manual_seed(config.seed)
    model = TextConditionedUNet(CDM_BASE_UNET, text_encoder_config(), config.prediction)
    print(f"cdm-base8: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters", flush=True)
    result = train(model, _cdm_base_data(config.batch_size), linear_schedule(), config, out, progress=progress, log_every=50, device=device)
    if export is None:
        return
    shipped = round_to_half(result.ema.cpu().eval())
    agree = base8_prompt_following(shipped)
    rows = "\n".join(f"| {f} | {agree['samples'][f]:.0%} | {agree['real'][f]:.0%} |" for f in agree["samples"])
    card = f"""# cdm-base8

CDM's base model: the text-conditioned model of the world at 8 px (a `CLIPTextModel` and a small UNet,
cross-attention at 4x4, v-prediction), trained like `base` with 10% empty captions. The cascade's first stage.

- Training: {config.steps} steps, batch {config.batch_size}, AdamW lr {config.lr}, EMA {config.ema_decay}, bfloat16 autocast
- Command: `python -m minidiff train cdm-base8 --out runs/cdm-base8 --export minidiff/checkpoints/cdm-base8`
- Time: {result.total_seconds:.0f} s on {result.hardware}
- Stored in float16 (the numbers below were measured with the float16-rounded weights)

## Prompt-following, measured on {BASE8_EVAL_SIZE} held-out captions (guidance {BASE8_SCALE}, 25 DDIM steps)

The judge reads 32 px images, so both columns are bicubic-upsampled from 8 px: the samples', and, as the ceiling
of what can be read at 8 px at all, the real scenes averaged down to 8 px.

| attribute | samples: judge agrees with the prompt | real 8 px scenes |
|---|---|---|
{rows}
"""
    save_checkpoint(export, shipped, {"kind": "text_unet", "unet": CDM_BASE_UNET.to_dict(), "text_encoder": model.text.config.to_dict(),
                                         "prediction": config.prediction, "schedule": {"kind": "linear", "T": 1000}}, card, half=True)
    print(f"exported to {Path(export).resolve()}")


SR_RECIPES = {"sr3-world": train_sr3_world, "sr3-photo": train_sr3_photo, "sr-regression": train_sr_regression,
              "cdm-sr32": train_cdm_sr32, "cdm-base8": train_cdm_base8}
