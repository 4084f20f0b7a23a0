"""CDM's low-resolution base model, ``cdm-base8``: the cascade's first stage (its second is ``cdm-sr32``, in ``sr``).

    python -m minidiff train cdm-base8 --out runs/cdm-base8 --export minidiff/checkpoints/cdm-base8
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ...core.checkpoint import round_to_half, save_checkpoint
from ...core.schedule import linear_schedule
from ...core.text_encoder import TextConditionedUNet
from ...core.unet import UNetConfig
from ...methods.sr3 import upsample
from ...world.captions import Tokenizer, caption, captions
from ...world.judge import agreement, targets
from ...world.scenes import scenes
from ..cards import model_card, table, training_facts
from ..train import TrainConfig, train
from ..zoo import HIGH, LOW, load_judge, sample_prompts
from .text import CAPTION_DROPOUT, text_encoder_config


CDM_BASE_UNET = UNetConfig(image_size=LOW, channels=48, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(4,),
                           heads=4, context_dim=64, pooled_context=True)
CDM_BASE_TRAIN = TrainConfig(steps=2000, batch_size=64, lr=1e-3, warmup=200, cooldown=400, ema_decay=0.999, checkpoint_every=250,
                             mixed_precision=True, prediction="v")


def cdm_base_data(batch_size: int):
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
    judge, test = load_judge(), scenes("test", 0, n)
    samples = sample_prompts(model, linear_schedule(), [caption(test, i) for i in range(n)], scale=BASE8_SCALE, steps=25)

    def read(x: Tensor) -> dict[str, float]:
        return agreement(judge.predict(upsample(x, HIGH).clamp(-1, 1)), targets(test))

    return {"samples": read(samples), "real": read(test.at_resolution(LOW))}


def train_cdm_base8(out: str, export: str | None = None, steps: int | None = None, progress: bool = False, device: str = "cpu") -> None:
    """``python -m minidiff train cdm-base8``: the 8 px text model, trained from scratch."""
    config = CDM_BASE_TRAIN if steps is None else TrainConfig(**{**CDM_BASE_TRAIN.__dict__, "steps": steps})
    torch.manual_seed(config.seed)
    model = TextConditionedUNet(CDM_BASE_UNET, text_encoder_config(), config.prediction)
    print(f"cdm-base8: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters", flush=True)
    result = train(model, cdm_base_data(config.batch_size), linear_schedule(), config, out, progress=progress, log_every=50, device=device)
    if export is None:
        return
    shipped = round_to_half(result.ema.cpu().eval())
    agree = base8_prompt_following(shipped)
    about = """CDM's base model: the text-conditioned model of the world at 8 px (a `CLIPTextModel` and a small UNet,
cross-attention at 4x4, v-prediction), trained like `base` with 10% empty captions. The cascade's first stage."""
    measured = f"""## Prompt-following, measured on {BASE8_EVAL_SIZE} held-out captions (guidance {BASE8_SCALE}, 25 DDIM steps)

The judge reads 32 px images, so both columns are bicubic-upsampled from 8 px: the samples', and, as the ceiling
of what can be read at 8 px at all, the real scenes averaged down to 8 px.

""" + table(["attribute", "samples: judge agrees with the prompt", "real 8 px scenes"],
            [[f, f"{agree['samples'][f]:.0%}", f"{agree['real'][f]:.0%}"] for f in agree["samples"]])
    command = "python -m minidiff train cdm-base8 --out runs/cdm-base8 --export minidiff/checkpoints/cdm-base8"
    card = model_card("cdm-base8", about, training_facts(config, result, command,
                                                         "Stored in float16 (the numbers below were measured with the float16-rounded weights)"),
                      measured)
    save_checkpoint(export, shipped, {"kind": "text_unet", "unet": CDM_BASE_UNET.to_dict(), "text_encoder": model.text.config.to_dict(),
                                         "prediction": config.prediction, "schedule": {"kind": "linear", "T": 1000}}, card, half=True)
    print(f"exported to {Path(export).resolve()}")
