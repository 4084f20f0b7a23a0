"""sr3-world's recipe (same UNet, data, steps, EMA, float16 rounding) with v-prediction instead of eps: an ablation.

    python benchmarks/sr3_v_prediction.py   # about 15 minutes on two cores; training state in /tmp/sr3v

Prints PSNR, SSIM and consistency on the same held-out pairs the sr3-world model card uses.
"""

import torch

from minidiff import linear_schedule, sample_ddpm
from minidiff.core.checkpoint import round_to_half
from minidiff.core.unet import UNet
from minidiff.course.sr_recipes import HIGH, SR_TRAIN, SR_UNET, _sr_data, evaluate_sr, world_pairs
from minidiff.course.train import train
from minidiff.methods.sr3 import continuous_levels, upsample

SCHEDULE = linear_schedule()


def v_loss(net, batch, schedule, generator):
    """MSE to v = sqrt(gamma) eps - sqrt(1 - gamma) x0 at SR3's continuous levels sqrt(gamma)."""
    x0, cond = batch["x0"], batch["cond"]
    level = continuous_levels(schedule, x0.shape[0], generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    g = level.to(x0.dtype)[:, None, None, None]
    s = (1 - g**2).sqrt()
    return (net(g * x0 + s * noise, level.to(x0.dtype), cond=cond) - (g * noise - s * x0)).square().mean()


def main() -> None:
    torch.manual_seed(SR_TRAIN.seed)
    result = train(UNet(SR_UNET), _sr_data(world_pairs, SR_TRAIN.batch_size, False), SCHEDULE, SR_TRAIN, "/tmp/sr3v",
                   loss_fn=v_loss, progress=False, log_every=100)
    model = round_to_half(result.ema.eval())

    @torch.no_grad()
    def super_resolve(low, steps=50, seed=0):
        cond, g = upsample(low, HIGH), torch.Generator().manual_seed(seed)

        def denoiser(x, t):
            level = SCHEDULE.at(t, like=x).sqrt().reshape(-1).expand(x.shape[0])
            return SCHEDULE.eps_from(model(x, level, cond=cond), x, t, "v")

        noise = torch.randn(low.shape[0], 3, HIGH, HIGH, generator=g)
        return sample_ddpm(denoiser, noise, SCHEDULE.timesteps(steps), SCHEDULE, generator=g).clamp(-1, 1)

    print("v-prediction sr3-world:", evaluate_sr(super_resolve, world_pairs), f"(trained {result.total_seconds:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
