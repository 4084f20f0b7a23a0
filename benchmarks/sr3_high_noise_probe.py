"""How well an SR model's x0 prediction agrees with its low-res input at each noise level.

    python benchmarks/sr3_high_noise_probe.py [CHECKPOINT_NAME]   # default sr3-world (train it first: scripts/train_sr.sh)

For held-out world pairs, noises the high-res image to step t, asks the model for eps, and reports the eps error,
the x0 prediction's RMSE, and its consistency (RMSE of its 8 px average vs the input). An eps-predicting model
whose x0 ignores the conditioning at high noise commits the sample's global colours wrongly in the first steps.
"""

import sys

import torch
import torch.nn.functional as F

from minidiff import linear_schedule
from minidiff.course.sr_recipes import HIGH, load_sr, world_pairs
from minidiff.methods.sr3 import sr3_denoiser, upsample


def main(name: str = "sr3-world", n: int = 64) -> None:
    net, schedule = load_sr(name), linear_schedule()
    high, low = world_pairs("test", 0, n)
    cond = upsample(low, HIGH)
    generator = torch.Generator().manual_seed(0)
    print("| t | eps MSE | x0 RMSE | x0 consistency |\n|---|---|---|---|")
    with torch.no_grad():
        for t in (50, 200, 400, 600, 800, 950, 999):
            steps = torch.full((n,), t)
            noise = torch.randn(high.shape, generator=generator)
            ab = schedule.at(steps, like=high)
            x = ab.sqrt() * high + (1 - ab).sqrt() * noise
            eps = sr3_denoiser(net, cond, schedule)(x, steps)
            x0 = ((x - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1, 1)
            print(f"| {t} | {(eps - noise).square().mean():.4f} | {(x0 - high).square().mean().sqrt():.3f} | "
                  f"{(F.avg_pool2d(x0, HIGH // low.shape[-1]) - low).square().mean().sqrt():.3f} |")


if __name__ == "__main__":
    main(*sys.argv[1:2])
