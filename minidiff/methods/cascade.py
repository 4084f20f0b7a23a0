"""Cascaded diffusion with conditioning augmentation (Ho et al. 2021, "CDM").

A cascade generates a small image with a base model, then enlarges it with
SR3-style stages (:mod:`minidiff.methods.sr3`), each conditioned on the
previous stage's output. Trained on *real* low-resolution images, a stage
meets *generated* ones at sampling time, whose small errors it has never
seen, and they compound down the cascade. CDM's fix is **conditioning
augmentation**: corrupt the low-resolution input during training, and tell the
stage how much.

We use CDM's Gaussian augmentation (sec. 3.2, "non-truncated"): the
upsampled low-resolution input is noised by the forward process to a level s,

    z_s = sqrt(alpha_bar_s) up(low) + sqrt(1 - alpha_bar_s) eps,

s drawn uniformly in training; at sampling time s is a knob, swept in the
chapter. The level reaches the network as one extra constant input channel
holding sqrt(alpha_bar_s) (1 = no augmentation), next to z_s.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..core.schedule import Schedule
from .sr3 import upsample

#: augmentation levels are steps of the stage's own schedule; training draws s uniformly in 0..MAX_AUGMENT
MAX_AUGMENT = 500


def check_augment(level: int) -> int:
    if isinstance(level, bool) or not isinstance(level, int) or not -1 <= level <= MAX_AUGMENT:
        raise ValueError(f"augmentation level must be an integer step in -1..{MAX_AUGMENT} (-1 = none), got {level!r}")
    return level


def augmented_condition(low: Tensor, size: int, level: Tensor | int, schedule: Schedule,
                        generator: Optional[torch.Generator] = None) -> Tensor:
    """The stage's conditioning channels (B, C + 1, size, size): noised upsampled low-res input and the level channel.

    level: a step s in -1..MAX_AUGMENT (-1 = clean), one for all or (B,) one per image.
    """
    B = low.shape[0]
    s = torch.as_tensor(level, device=low.device).reshape(-1).expand(B) if not isinstance(level, int) else torch.full((B,), check_augment(level), device=low.device)
    if s.is_floating_point() or s.dtype == torch.bool:
        raise ValueError(f"augmentation levels must be integer steps in -1..{MAX_AUGMENT}, got a {s.dtype} tensor")
    if ((s < -1) | (s > MAX_AUGMENT)).any():
        raise ValueError(f"augmentation levels must lie in -1..{MAX_AUGMENT}, got range {int(s.min())}..{int(s.max())}")
    up = upsample(low, size)
    eps = torch.randn(up.shape, generator=generator, device=generator.device if generator is not None else up.device, dtype=up.dtype).to(up.device)
    z = schedule.q_sample(up, s.cpu(), eps)  # level -1 has alpha_bar = 1: the clean image
    level = schedule.at(s.cpu(), like=up).reshape(B, 1, 1, 1).sqrt()
    return torch.cat([z, level.expand(B, 1, size, size)], 1)


def random_levels(batch: int, generator: torch.Generator, max_level: int = MAX_AUGMENT) -> Tensor:
    """Training levels: -1 (no augmentation) or uniform in 0..max_level, half of the time each."""
    s = torch.randint(0, max_level + 1, (batch,), generator=generator, device=generator.device)
    clean = torch.rand(batch, generator=generator, device=generator.device) < 0.5
    return torch.where(clean, torch.full_like(s, -1), s)
