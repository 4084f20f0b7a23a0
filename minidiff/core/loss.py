"""The denoising loss every diffusion model here is trained with (Ho et al. 2020, eq. 14), and Imagic fine-tunes with.

Pick t uniformly, noise x0 to x_t with the schedule, and regress the network's output onto what it predicts
(eps, x0 or v). The random draws come from one generator, so a seed means the same batch of noise on any device.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .schedule import Prediction, Schedule

Batch = dict[str, Tensor]


def diffusion_loss(net: nn.Module, batch: Batch, schedule: Schedule, generator: torch.Generator, prediction: Prediction = "eps") -> Tensor:
    """Mean squared error of the network's prediction (Ho et al. 2020, eq. 14).

    ``batch["x0"]`` is the clean data; the other entries are passed to the
    network as keyword inputs.
    """
    x0 = batch["x0"]
    inputs = {k: v for k, v in batch.items() if k != "x0"}
    # random draws happen on the generator's device (so a seed means the same thing there), then move to the data
    t = torch.randint(0, schedule.T, (x0.shape[0],), generator=generator, device=generator.device).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=generator.device, dtype=x0.dtype).to(x0.device)
    x_t = schedule.q_sample(x0, t, noise)
    target = schedule.target(x0, t, noise, prediction)
    return (net(x_t, t, **inputs) - target).square().mean()
