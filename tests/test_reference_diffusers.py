"""Our samplers against diffusers' schedulers: same schedule, model and noise -> same trajectory.

diffusers keeps alpha_bar in float32; we hand its scheduler the float64
alpha_bar of our schedule and run both in float64, so the samplers must agree
to rounding error over every step of a full trajectory. (The schedules
themselves are compared in test_schedule.py.)
"""

import pytest
import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler, DDPMScheduler

from minidiff import Recorder, invert_ddim, linear_schedule, sample_ddim, sample_ddpm
from minidiff.world.toy import image_mixture

TOL = dict(rtol=1e-9, atol=1e-9)


def setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(6, 3, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    x = torch.randn(3, 3, 4, 4, generator=g, dtype=torch.float64)
    return image_mixture(images, std=0.3), x


def in_float64(scheduler):
    ours = linear_schedule()
    scheduler.alphas_cumprod = ours.alpha_bar.clone()
    return scheduler, ours


def diffusers_loop(scheduler, model, x, **step_kwargs):
    path = []
    for t in scheduler.timesteps:
        eps = model(x, t.expand(x.shape[0]))
        x = scheduler.step(eps, t, x, **step_kwargs).prev_sample
        path.append(x)
    return torch.stack(path)


@pytest.mark.parametrize("steps", [1000, 50, 13])
def test_ddpm_matches_diffusers(steps):
    ref, ours = in_float64(DDPMScheduler(num_train_timesteps=1000, clip_sample=False))
    mix, x = setup()
    model = mix.denoiser(ours)
    ref.set_timesteps(steps)
    expected = diffusers_loop(ref, model, x, generator=torch.Generator().manual_seed(5))
    rec = Recorder()
    sample_ddpm(model, x, ref.timesteps, ours, on_step=rec, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(rec.x, expected, **TOL)


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_matches_diffusers(spacing, eta):
    ref, ours = in_float64(DDIMScheduler(num_train_timesteps=1000, clip_sample=False, timestep_spacing=spacing))
    mix, x = setup(1)
    model = mix.denoiser(ours)
    ref.set_timesteps(50)
    expected = diffusers_loop(ref, model, x, eta=eta, generator=torch.Generator().manual_seed(9))
    rec = Recorder()
    sample_ddim(model, x, ours.timesteps(50, spacing), ours, eta=eta, on_step=rec, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(rec.x, expected, **TOL)


@pytest.mark.parametrize("steps", [50, 10])
def test_ddim_inversion_matches_diffusers(steps):
    ref, ours = in_float64(DDIMInverseScheduler(num_train_timesteps=1000, clip_sample=False))
    mix, _ = setup(2)
    x0, _ = mix.sample(3, generator=torch.Generator().manual_seed(0))
    model = mix.denoiser(ours)
    ref.set_timesteps(steps)  # ascending: 0, 20, ..., 980
    expected = diffusers_loop(ref, model, x0)
    traj = invert_ddim(model, x0, ours.timesteps(steps), ours)  # traj[0] is the noisiest
    torch.testing.assert_close(traj.flip(0)[1:], expected, **TOL)
