"""Does a text encoder that tells circle from square fix the base models' shape? An experiment, not a shipped model.

    python benchmarks/base_clip_text.py [--steps 750] [--device cpu]   # 750 steps: ~36 min on 2 cores

The base models' own text encoders, trained from scratch with their UNets, map "circle" and "square" to nearly the
same token states (`probes.word_distances`; chapter 1, section 6), and the UNet then draws the same object for
either word. Stable Diffusion conditions on a frozen CLIP text encoder. This script does the same with ours: it
takes `base-xattn`'s first stage (its recipe's EMA weights, from `runs/base-xattn`, trained there if missing),
replaces its text encoder with the shipped `clip`'s, frozen, fine-tunes the UNet in `runs/base-xattn-clip-text`
(resumable), and prints, for the first stage and for the fine-tuned model, the word distances and what the card's
guidance sweep measures (the same 128 held-out captions, DDIM 25 steps) with the shape confusion of one-object scenes.
"""

import argparse
import copy

import torch

from minidiff import linear_schedule
from minidiff.core.checkpoint import round_to_half
from minidiff.course.probes import word_distances
from minidiff.course.recipes.text import (BASE_SWEEP_SIZE, BASE_SWEEP_STEPS, BASE_XATTN_TRAIN, base_data, make_base_xattn_model,
                                          train_base_xattn)
from minidiff.course.zoo import load_clip, load_judge, sample_prompts
from minidiff.course.train import TrainConfig, train, training_device
from minidiff.world.captions import captions
from minidiff.world.judge import agreement, targets
from minidiff.world.scenes import SHAPES, scenes

FINE_TUNE = TrainConfig(steps=750, batch_size=64, lr=5e-4, warmup=50, cooldown=200, ema_decay=0.999, checkpoint_every=50,
                        mixed_precision=True, prediction="v")


def measure(model, judge, name: str) -> None:
    """The card sweep's protocol at guidance 3 and 5, plus how often each true shape is read right (one-object scenes)."""
    print(f"{name}: word distances", {k: round(v, 1) for k, v in word_distances(model.encode).items()}, flush=True)
    test = scenes("test", 0, BASE_SWEEP_SIZE)
    prompts, truth = captions(test, torch.Generator().manual_seed(1)), targets(test)
    one = test.count == 1
    for scale in (3.0, 5.0):
        read = judge.predict(sample_prompts(model, linear_schedule(), prompts, scale, steps=BASE_SWEEP_STEPS))
        right = {s: f"{int(((read['shape'] == k) & (truth['shape'] == k) & one).sum())}/{int(((truth['shape'] == k) & one).sum())}"
                 for k, s in enumerate(SHAPES)}
        print(f"{name}, scale {scale}: " + ", ".join(f"{k} {v:.3f}" for k, v in agreement(read, truth).items()) + f"; shapes right {right}",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=FINE_TUNE.steps)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = training_device(args.device)
    train_base_xattn("runs/base-xattn", device=str(device))  # returns at once when its state is complete
    first = torch.load("runs/base-xattn/train_state.pt", map_location="cpu", weights_only=True)
    if int(first["step"]) != BASE_XATTN_TRAIN.steps:
        raise RuntimeError(f"runs/base-xattn stopped at step {first['step']}; rerun to finish it")
    model = make_base_xattn_model()
    model.load_state_dict(first["ema"])
    judge = load_judge()
    measure(round_to_half(copy.deepcopy(model).eval()), judge, "stage 1")
    model.text.load_state_dict(load_clip().text.state_dict())
    model.text.requires_grad_(False)  # frozen, as Stable Diffusion's CLIP text encoder
    config = TrainConfig(**{**FINE_TUNE.__dict__, "steps": args.steps})
    result = train(model, base_data(config.batch_size, config.seed + 1), linear_schedule(), config, "runs/base-xattn-clip-text",
                   progress=False, log_every=25, device=device)
    print(f"fine-tuned {result.step} steps in {result.total_seconds:.0f} s on {result.hardware}", flush=True)
    measure(round_to_half(result.ema.cpu().eval()), judge, "clip text")


if __name__ == "__main__":
    main()
