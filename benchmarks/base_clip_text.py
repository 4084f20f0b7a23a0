"""Does a text encoder that tells circle from square fix the base models' shape? An experiment, not a shipped model.

    python benchmarks/base_clip_text.py [--steps 750] [--device cpu]   # 750 steps: ~36 min on 2 cores

The base models' own text encoders, trained from scratch with their UNets, map "circle" and "square" to nearly the
same token states (`recipes.word_distances`; chapter 1, section 6), and the UNet then draws the same object for
either word. Stable Diffusion conditions on a frozen CLIP text encoder. This script does the same with ours: it
takes `base-xattn`'s first stage (its recipe's EMA weights, from `runs/base-xattn`, trained there if missing),
replaces its text encoder with the shipped `clip`'s, frozen, fine-tunes the UNet in `runs/base-xattn-clip-text`
(resumable), and prints what the card's guidance sweep measures (128 held-out captions, DDIM 25 steps) with the
shape confusion and the word distances.
"""

import argparse

import torch

from minidiff import linear_schedule
from minidiff.core.checkpoint import round_to_half
from minidiff.course.recipes import (BASE_XATTN_TRAIN, base_data, evaluate_base, load_clip, load_judge, make_base_xattn_model,
                                     train_base_xattn, word_distances)
from minidiff.course.train import TrainConfig, train, training_device

FINE_TUNE = TrainConfig(steps=750, batch_size=64, lr=5e-4, warmup=50, cooldown=200, ema_decay=0.999, checkpoint_every=50,
                        mixed_precision=True, prediction="v")


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
    own = word_distances(model.encode)
    model.text.load_state_dict(load_clip().text.state_dict())
    model.text.requires_grad_(False)  # frozen, as Stable Diffusion's CLIP text encoder
    config = TrainConfig(**{**FINE_TUNE.__dict__, "steps": args.steps})
    result = train(model, base_data(config.batch_size, config.seed + 1), linear_schedule(), config, "runs/base-xattn-clip-text",
                   progress=False, log_every=25, device=device)
    tuned = round_to_half(result.ema.cpu().eval())
    print(f"fine-tuned {result.step} steps in {result.total_seconds:.0f} s on {result.hardware}")
    print("word distances, own encoder:", {k: round(v, 1) for k, v in own.items()})
    print("word distances, clip's encoder:", {k: round(v, 1) for k, v in word_distances(tuned.encode).items()})
    judge = load_judge()
    for scale in (3.0, 5.0):
        m = evaluate_base(tuned, judge, n=128, scale=scale, steps=25)
        print(f"scale {scale}: " + ", ".join(f"{k} {v:.3f}" for k, v in m.items()), flush=True)


if __name__ == "__main__":
    main()
