"""Throughput of minidiff's DDIM sampler vs a loop over diffusers' DDIMScheduler, same UNet.

    python benchmarks/sampler_throughput.py [--device cpu|cuda] [--batch 16] [--repeats 5]

Both sample the same untrained 32x32 UNet (about 6 M parameters, attention
at 8x8) for 50 DDIM steps from the same noise; the script checks that the
two results agree, then prints images per second for each and their ratio
(minidiff / diffusers; above 1 means minidiff is faster). The network
dominates the cost, so the ratio measures the samplers' overhead.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from diffusers import DDIMScheduler

from minidiff import UNet, UNetConfig, Schedule, sample_ddim


def diffusers_ddim(net, x, scheduler):
    for t in scheduler.timesteps:
        eps = net(x, t.to(x.device).expand(x.shape[0]))
        x = scheduler.step(eps, t, x).prev_sample
    return x


def timed(fn, device, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)

    torch.manual_seed(0)
    net = UNet(UNetConfig(image_size=32, channels=64, channel_mults=(1, 2, 2), attention_resolutions=(8,))).to(device).eval()
    with torch.no_grad():  # random output layers, so the samples are not trivially zero
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    scheduler = DDIMScheduler(num_train_timesteps=1000, clip_sample=False)
    scheduler.set_timesteps(args.steps)
    schedule = Schedule(scheduler.alphas_cumprod.double())
    x = torch.randn(args.batch, 3, 32, 32, generator=torch.Generator().manual_seed(1)).to(device)
    ts = schedule.timesteps(args.steps)

    with torch.no_grad():
        ours = sample_ddim(net, x, ts, schedule)
        theirs = diffusers_ddim(net, x, scheduler)
        diff = (ours - theirs).abs().max().item()
        t_ours = timed(lambda: sample_ddim(net, x, ts, schedule), device, args.repeats)
        t_theirs = timed(lambda: diffusers_ddim(net, x, scheduler), device, args.repeats)

    params = sum(p.numel() for p in net.parameters())
    print(f"device {device}, {torch.get_num_threads()} threads, UNet {params / 1e6:.1f} M params, "
          f"batch {args.batch}, {args.steps} DDIM steps, median of {args.repeats}")
    print(f"max |minidiff - diffusers| = {diff:.2e}")
    print(f"minidiff : {args.batch / t_ours:8.2f} images/s ({t_ours:.3f} s per batch)")
    print(f"diffusers: {args.batch / t_theirs:8.2f} images/s ({t_theirs:.3f} s per batch)")
    print(f"ratio minidiff/diffusers throughput: {t_theirs / t_ours:.3f}")


if __name__ == "__main__":
    main()
