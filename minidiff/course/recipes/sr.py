"""Super-resolution: SR3 on the world and on photos, the regression baseline, and CDM's augmented stage.

    python -m minidiff train sr3-world --out runs/sr3-world --export minidiff/checkpoints/sr3-world

Every SR model maps 8 px to 32 px (x4): the low-resolution image is an exact area average
(``Scenes.at_resolution(8)`` or ``avg_pool2d(4)``), bicubic-upsampled and concatenated to the input.

The diffusion SR models predict v, not eps as in SR3's paper: with eps and this training budget the model's
implied x0 ignores the low-res input at high noise, so the first sampling steps commit wrong global colours
(measured in ``benchmarks/sr3_prediction_ablation.py``, explained in chapter 2).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ...core.checkpoint import round_to_half, save_checkpoint
from ...core.schedule import linear_schedule
from ...core.unet import UNet, UNetConfig
from ...methods.cascade import augmented_condition, random_levels
from ...methods.sr3 import sr3_denoiser, sr3_loss, upsample
from ...world.metrics import psnr, ssim
from ...world.photos import crops
from ...world.scenes import scenes
from ..cards import model_card, table, training_facts
from ..train import TrainConfig, train
from ..zoo import HIGH, LOW, SR_EVAL_STEPS, SR_PREDICTION, regress, super_resolve


#: the SR3 network: noise-level input, the upsampled low-res image as 3 extra input channels
SR_UNET = UNetConfig(image_size=HIGH, cond_channels=3, channels=32, channel_mults=(1, 2, 2), num_res_blocks=1,
                     attention_resolutions=(8,), heads=4, time_input="noise_level")
#: CDM's stage: the same plus the augmentation level as one more constant channel
CDM_SR_UNET = UNetConfig(**{**SR_UNET.to_dict(), "cond_channels": 4})
#: the regression baseline: the same UNet body, input = the upsampled image, output = the high-res image
REGRESSION_UNET = UNetConfig(**{**SR_UNET.to_dict(), "cond_channels": 0})
SR_TRAIN = TrainConfig(steps=1500, batch_size=32, lr=5e-4, warmup=100, cooldown=300, ema_decay=0.999, checkpoint_every=250, mixed_precision=True)
SR_EVAL_SIZE = 256


def world_pairs(split: str, start: int, count: int) -> tuple[Tensor, Tensor]:
    """(high (B, 3, 32, 32), low (B, 3, 8, 8)) of world scenes."""
    s = scenes(split, start, count)
    return s.images, s.at_resolution(LOW)


def photo_pairs(split: str, start: int, count: int) -> tuple[Tensor, Tensor]:
    high = crops(split, start, count, size=HIGH)
    return high, F.avg_pool2d(high, HIGH // LOW)


def sr_data(pairs: Callable[[str, int, int], tuple[Tensor, Tensor]], batch_size: int, augment: bool):
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


def sr_card(name: str, what: str, config: TrainConfig, result, metrics: dict[str, dict[str, float]], command: str) -> str:
    """The model card of an SR net: what it is, how it was trained, and ``evaluate_sr``'s numbers of each method."""
    measured = f"## Measured on {SR_EVAL_SIZE} held-out pairs (8 px -> 32 px; SR3: ancestral sampling, {SR_EVAL_STEPS} steps)\n\n" + table(
        ["method", "PSNR (dB)", "SSIM", "consistency (RMSE of the 8 px average vs the input)"],
        [[k, f"{m['psnr']:.2f}", f"{m['ssim']:.3f}", f"{m['consistency_rmse']:.4f}"] for k, m in metrics.items()])
    facts = training_facts(config, result, command, "Stored in float16 (the numbers below were measured with the float16-rounded weights)")
    return model_card(name, what, facts, measured)


def _train_sr(name: str, what: str, pairs, unet: UNetConfig, loss_fn, augment: bool, out: str, export: str | None,
              steps: int | None, progress: bool, device: str) -> None:
    config = SR_TRAIN if steps is None else TrainConfig(**{**SR_TRAIN.__dict__, "steps": steps})
    torch.manual_seed(config.seed)
    net = UNet(unet)
    print(f"{name}: {sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters", flush=True)
    result = train(net, sr_data(pairs, config.batch_size, augment), linear_schedule(), config, out, loss_fn=loss_fn, progress=progress, log_every=50, device=device)
    if export is None:
        return
    model = round_to_half(result.ema.cpu().eval())  # shipped in float16: measure what ships
    metrics = {"bicubic": evaluate_sr(lambda low: upsample(low, HIGH).clamp(-1, 1), pairs)}
    metrics[name] = evaluate_sr((lambda low: regress(model, low)) if unet.cond_channels == 0 else (lambda low: super_resolve(model, low)), pairs)
    print(metrics, flush=True)
    command = f"python -m minidiff train {name} --out runs/{name} --export minidiff/checkpoints/{name}"
    extra = {} if unet.cond_channels == 0 else {"prediction": SR_PREDICTION}
    save_checkpoint(export, model, {"kind": "unet", "unet": unet.to_dict(), **extra, "schedule": {"kind": "linear", "T": 1000}, "metrics": metrics},
                    sr_card(name, what, config, result, metrics, command), half=True)
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


#: the super-resolution recipes, by checkpoint name (``recipes.RECIPES`` holds them beside the others)
SR_RECIPES = {"sr3-world": train_sr3_world, "sr3-photo": train_sr3_photo, "sr-regression": train_sr_regression,
              "cdm-sr32": train_cdm_sr32}
