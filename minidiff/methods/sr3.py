"""SR3: image super-resolution via iterative refinement (Saharia et al. 2021).

A denoiser of the high-resolution image that also sees the low-resolution
one, bicubic-upsampled to full size and concatenated to its input channels
(paper, sec. 2.4 and fig. 2). Two details matter:

* **Noise-level conditioning.** The network is told the noise level
  sqrt(gamma) = sqrt(alpha_bar) itself, not the step index t. In training,
  gamma is drawn *continuously*: pick a step t, then gamma uniformly between
  alpha_bar_t and alpha_bar_{t-1} (paper, eq. 5 and sec. 2.4, "we sample
  gamma ~ p(gamma) = U(gamma_{t-1}, gamma_t)"). The model then knows every level
  in [alpha_bar_{T-1}, 1], so sampling may use any schedule and any number of
  steps without retraining: the seed blog's point, measured in the chapter.
* **Conditioning by concatenation.** Nothing else: no guidance, no
  cross-attention. Sampling is any of the shared samplers with the
  conditioning bound by :func:`sr3_denoiser`.

The paper predicts eps; ``prediction="v"`` (Salimans & Ho 2022) is what our
shipped models use: chapter 2 and ``benchmarks/sr3_prediction_ablation.py`` say why.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.denoisers import with_inputs, with_noise_level, with_prediction
from ..core.sampling import Denoiser
from ..core.schedule import Schedule


def upsample(low: Tensor, size: int) -> Tensor:
    """Bicubic upsampling of low-resolution images (B, C, h, h) to (B, C, size, size), SR3's conditioning input."""
    if low.ndim != 4 or low.shape[-1] != low.shape[-2]:
        raise ValueError(f"low-resolution images must be square (B, C, h, h), got shape {tuple(low.shape)}")
    if size % low.shape[-1]:
        raise ValueError(f"the output size {size} must be a multiple of the low resolution {low.shape[-1]}")
    return F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)


def check_low(net: nn.Module, low: Tensor, size: int, channels: int) -> None:
    """Clear errors for a low-resolution input the model cannot take."""
    if low.ndim != 4:
        raise ValueError(f"low-resolution input must be a batch (B, C, h, w), got shape {tuple(low.shape)}")
    if low.shape[1] != channels:
        raise ValueError(f"low-resolution input has {low.shape[1]} channels; this model takes {channels}")
    if low.shape[-1] != low.shape[-2] or size % low.shape[-1] or low.shape[-1] >= size:
        raise ValueError(f"low-resolution input is {low.shape[-2]}x{low.shape[-1]}; this model needs a square image "
                         f"whose side divides and is smaller than its output size {size}")


def continuous_levels(schedule: Schedule, batch: int, generator: torch.Generator) -> Tensor:
    """Training noise levels sqrt(gamma) (B,): t uniform, then gamma ~ U(alpha_bar_t, alpha_bar_{t-1}) (SR3, sec. 2.4)."""
    t = torch.randint(0, schedule.T, (batch,), generator=generator, device=generator.device)
    hi = schedule.at(t - 1)  # alpha_bar_{t-1}; t - 1 = -1 is the clean image, alpha_bar = 1
    lo = schedule.at(t)
    u = torch.rand(batch, generator=generator, device=generator.device, dtype=torch.float64)
    return (lo + u * (hi - lo)).sqrt()


def sr3_loss(net: nn.Module, batch: dict[str, Tensor], schedule: Schedule, generator: torch.Generator,
             augment: Optional[Tensor] = None, prediction: str = "eps") -> Tensor:
    """MSE at continuous noise levels; ``batch = {"x0": high-res, "cond": conditioning channels}``.

    prediction: ``"eps"`` (the paper) or ``"v"`` = sqrt(gamma) eps - sqrt(1 - gamma) x0.
    """
    if prediction not in ("eps", "v"):
        raise ValueError(f"prediction must be 'eps' or 'v', got {prediction!r}")
    x0, cond = batch["x0"], batch["cond"]
    level = continuous_levels(schedule, x0.shape[0], generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=generator.device, dtype=x0.dtype).to(x0.device)
    g = level.to(x0.dtype)[:, None, None, None]
    s = (1 - g**2).sqrt()
    target = noise if prediction == "eps" else g * noise - s * x0
    return (net(g * x0 + s * noise, level.to(x0.dtype), cond=cond) - target).square().mean()


def sr3_denoiser(net: nn.Module, cond: Tensor, schedule: Schedule, prediction: str = "eps") -> Denoiser:
    """The denoiser ``(x_t, t) -> eps`` of a noise-level-conditioned SR net for fixed conditioning channels (B or 1, C, S, S):
    core's wrappers, bound in order (the conditioning, the noise level for t, eps from the net's prediction)."""
    return with_prediction(with_noise_level(with_inputs(net, cond=cond), schedule), schedule, prediction)
