"""Does the caption at the finest level help the base model draw shapes? base-detail plus cross-attention at 32x32.

    python benchmarks/base_detail_x32.py --out runs/base-detail-x32      # resumable; ~33 min on 2 CPU threads
    python benchmarks/base_detail_x32.py --control --out runs/base-detail-more   # the same steps without the new blocks

The shipped ``base-detail`` reads the caption only at 16x16 and 8x8, and its samples get the shape wrong a third of
the time (its card: 66.9%); almost all of the misses are squares drawn with round corners, read as circles (of 94
squares among 256 samples at guidance 5, 42 were read as circles; of 83 triangles, 81 were right). Corners are a
detail of the 32x32 level, which no word reaches. This experiment adds a block with cross-attention but no
self-attention (``UNetConfig.cross_attention_resolutions=(32,)``) after each 32x32 residual block, starting as
the identity (zero output projection), and trains 1,200 more steps with base-detail's recipe (text probe,
``detail="random"``, the data stream continuing after base-detail's 2,500 steps).

Measured (2026-12-06, x86_64, 2 CPU threads, torch 2.13.0, 1,986 s of training; 256 held-out captions, guidance 5,
DDIM 25 steps, judge-detail; both models rounded to float16):

| model | shape, every object | shape, first object | every other family |
|---|---|---|---|
| base-detail (shipped) | 72.7% | 75.4% | >= 99.7% |
| + cross-attention at 32x32, 1,200 more steps (1,986 s) | 80.6% | 85.5% | 100% |
| control: the same 1,200 steps without the new blocks (1,418 s) | 82.2% | 88.3% | 100% |

The gain is the extra training, not the blocks: the control does as well or better. Shape is still short of the
course's 90% gate, and these are 256-sample, 25-step checks, not the card's 512-sample, 50-step protocol. Longer
training of the shipped architecture is the lead. The shipped model is unchanged.
"""

from __future__ import annotations

import argparse

import torch

from minidiff.core.checkpoint import load_text_unet, round_to_half
from minidiff.core.schedule import linear_schedule
from minidiff.core.text_encoder import TextConditionedUNet
from minidiff.core.unet import UNetConfig
from minidiff.course.recipes.detail import TextProbe, probe_loss, probe_run_model
from minidiff.course.recipes.text import BASE_XATTN_UNET, probe_data
from minidiff.course.train import TrainConfig, train
from minidiff.course.zoo import load_judge, sample_prompts
from minidiff.world.captions import captions
from minidiff.world.judge import agreement, targets
from minidiff.world.scenes import scenes

CONFIG = TrainConfig(steps=1200, batch_size=64, lr=5e-4, warmup=100, cooldown=600, ema_decay=0.999, checkpoint_every=100,
                     mixed_precision=True, prediction="v", seed=4)
#: base-detail's recipe trained 2,500 steps on the stream's first batches; this run continues after them
STREAM_START = 2500


def shape_check(model, n: int = 256) -> dict[str, float]:
    """The judge's agreement with ``n`` held-out captions at guidance 5 (DDIM 25), and shape for the first object."""
    held = scenes("test", 0, n, detail="random")
    samples = sample_prompts(model, linear_schedule(), captions(held, torch.Generator().manual_seed(1)), 5.0, steps=25)
    said, truth = load_judge("judge-detail").predict(samples), targets(held)
    return {**agreement(said, truth), "shape_first_object": float((said["shape"] == truth["shape"]).float().mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/base-detail-x32")
    parser.add_argument("--control", action="store_true", help="train the same steps without the 32x32 blocks")
    args = parser.parse_args()
    torch.manual_seed(67280421310721)  # torch's own default seed: the recorded run drew the new blocks' weights from it
    source, _, _ = load_text_unet("base-detail")
    config = UNetConfig(**{**BASE_XATTN_UNET.to_dict(), "cross_attention_resolutions": () if args.control else (32,)})
    model = TextConditionedUNet(config, source.text.config, "v")
    missing, unexpected = model.load_state_dict(source.float().state_dict(), strict=False)
    if unexpected:
        raise RuntimeError(f"base-detail has weights the new model lacks: {unexpected[:5]}")
    print(f"{len(missing)} new tensors; {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters", flush=True)
    print("base-detail:", shape_check(source.float()), flush=True)
    torch.manual_seed(CONFIG.seed)
    result = train(TextProbe(model.train()), probe_data(CONFIG.batch_size, CONFIG.seed, start=STREAM_START, detail="random"),
                   linear_schedule(), CONFIG, args.out, loss_fn=probe_loss(), progress=False, log_every=50)
    tuned, _ = probe_run_model(result)
    print("control, 1,200 more steps:" if args.control else "with cross-attention at 32x32:", shape_check(round_to_half(tuned).float()),
          flush=True)


if __name__ == "__main__":
    main()
