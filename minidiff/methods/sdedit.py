"""SDEdit: guided image synthesis by noising a guide and denoising it (Meng et al. 2021).

The whole method is a start point for the shared sampler: noise the guide
(a stroke painting, a photo) to level t0 and run the usual sampler from there,

    x_t0 = sqrt(alpha_bar_t0) guide + sqrt(1 - alpha_bar_t0) eps        (paper, eq. 2 / alg. 1)

Small t0 keeps the guide (faithful, unrealistic strokes survive); large t0
forgets it (realistic, unfaithful). Noise erases high frequencies first, so a
middle t0 keeps layout and colours while the model redraws the details; the
paper recommends t0 in about [0.3, 0.6] of T.

The masked variant (paper, alg. 3) keeps a region of the guide: after every
step, the kept pixels are reset to the guide noised to the step's level, with
the same noise as the start point (as in the official code).

Strength follows diffusers' img2img: with ``num_steps`` steps for the whole
range, strength s runs the last round(s * num_steps) of them, so the start
level and every later step lie on the same grid as a full sampler's.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
from torch import Tensor

from ..core.sampling import Denoiser, OnStep, StepState, sample_ddim, sample_ddpm
from ..core.schedule import Schedule

#: the strength range the paper recommends for stroke-based editing (Meng et al. 2021, sec. 4)
RECOMMENDED_STRENGTH = (0.3, 0.6)


def sdedit_timesteps(strength: float, num_steps: int, schedule: Schedule) -> Tensor:
    """The tail of ``schedule.timesteps(num_steps)`` that SDEdit runs at this strength (possibly empty)."""
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be a number in [0, 1] (0 = return the guide, 1 = start from pure noise), got {strength!r}")
    full = schedule.timesteps(num_steps)
    k = round(strength * num_steps)
    return full[num_steps - k :]


def keep_region(guide: Tensor, keep: Tensor, noise: Tensor, schedule: Schedule) -> OnStep:
    """An ``on_step`` hook that resets the pixels where ``keep`` = 1 to the guide noised to the step's level.

    keep: (1 or B, 1 or C, H, W) with values in [0, 1]; soft values blend.
    """

    def hook(state: StepState) -> Tensor:
        known = schedule.q_sample(guide, state.t_next, noise)
        return keep * known + (1 - keep) * state.x_next

    return hook


def sdedit(
    model: Denoiser,
    guide: Tensor,
    strength: float,
    schedule: Schedule,
    *,
    num_steps: int = 50,
    keep: Optional[Tensor] = None,
    sampler: Literal["ddpm", "ddim"] = "ddpm",
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """Edit ``guide`` (B, C, H, W), values in [-1, 1], at ``strength`` in [0, 1]. Returns (B, C, H, W).

    ``keep``: optional mask, 1 where the guide is kept exactly (the paper's
    masked SDEdit); the rest is regenerated. ``sampler``: the paper's
    stochastic sampler (``"ddpm"``, default) or deterministic DDIM.
    """
    if guide.ndim != 4:
        raise ValueError(f"guide must be a batch of images (B, C, H, W), got shape {tuple(guide.shape)}")
    timesteps = sdedit_timesteps(strength, num_steps, schedule)
    if keep is not None:
        _check_mask(keep, guide)
    if len(timesteps) == 0:
        return guide.clone()
    noise = torch.randn(guide.shape, generator=generator, device=guide.device, dtype=guide.dtype)
    x = schedule.q_sample(guide, timesteps[0].item(), noise)
    hook = None if keep is None else keep_region(guide, keep.to(guide), noise, schedule)
    if sampler == "ddpm":
        return sample_ddpm(model, x, timesteps, schedule, on_step=hook, generator=generator)
    if sampler == "ddim":
        return sample_ddim(model, x, timesteps, schedule, on_step=hook)
    raise ValueError(f"sampler must be 'ddpm' or 'ddim', got {sampler!r}")


def _check_mask(keep: Tensor, guide: Tensor) -> None:
    B, C, H, W = guide.shape
    ok = keep.ndim == 4 and keep.shape[0] in (1, B) and keep.shape[1] in (1, C) and keep.shape[2:] == (H, W)
    if not ok:
        raise ValueError(f"keep must have shape (1 or {B}, 1 or {C}, {H}, {W}) to match the guide, got {tuple(keep.shape)}")
    if keep.min() < 0 or keep.max() > 1:
        raise ValueError(f"keep must hold values in [0, 1] (1 = keep the guide), got range [{keep.min():.3g}, {keep.max():.3g}]")
