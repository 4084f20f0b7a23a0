"""Direct Inversion (Ju et al. 2023, "PnP Inversion: Boosting Diffusion-based Editing with 3 Lines of Code").

DDIM inversion gives a pivot trajectory z*_T, ..., z*_0 = the image. Sampling
back from z*_T with classifier-free guidance does not retrace it: every guided
step lands a little off the pivot, and the errors compound. Null-text
inversion (``null_text.py``) optimises the unconditional embedding at every
step to close that gap. Direct Inversion closes it without any optimisation:
run the guided sampler along the pivot once, record the gap itself,

    d_t = z*_{t-1} - step(z*_t),

and add it back after the same step when sampling. The source branch is then
on the pivot exactly, whatever the guidance scale, for the cost of one
inversion and one sampling pass. When editing with a batch [source; target],
only the source rows get the offsets; the target branch inherits the
structure through attention control (Prompt-to-Prompt), not through d_t.

This finishes the seed blog's TODO section: the offsets *are* the residual
that null-text's embeddings approximate, so nothing leaves the model's
trained embedding space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor

from ..core.sampling import Denoiser, OnStep, StepState, invert_ddim, sample_ddim
from ..core.schedule import Schedule


@dataclass(frozen=True)
class DirectInversion:
    """pivot: (n + 1, B, ...) the DDIM-inversion trajectory, ``pivot[0]`` the noise, ``pivot[n]`` the image;
    offsets: (n, B, ...) the gap d after each of the n sampling steps; timesteps: the sampler's n steps they belong to."""

    pivot: Tensor
    offsets: Tensor
    timesteps: tuple[int, ...] = ()

    @property
    def noise(self) -> Tensor:
        return self.pivot[0]


@torch.no_grad()
def direct_inversion(
    model: Denoiser,
    x0: Tensor,
    timesteps: Sequence[int] | Tensor,
    schedule: Schedule,
    *,
    inversion_model: Optional[Denoiser] = None,
) -> DirectInversion:
    """Invert ``x0`` (B, ...) and record the offsets that keep ``model``'s DDIM sampler on the pivot.

    ``model``: the denoiser used for sampling (typically the source prompt at
    guidance scale w). ``inversion_model``: the one used for DDIM inversion,
    by default ``model``; the paper inverts with the source prompt at
    guidance 1, as null-text inversion does.
    """
    pivot = invert_ddim(inversion_model or model, x0, timesteps, schedule)
    offsets: list[Tensor] = []

    def record(state: StepState) -> Tensor:
        target = pivot[state.index + 1]
        offsets.append(target - state.x_next)
        return target  # continue from the pivot, as the sampler will after adding the offset

    sample_ddim(model, pivot[0], timesteps, schedule, on_step=record)
    return DirectInversion(pivot, torch.stack(offsets), tuple(int(t) for t in timesteps))


def add_offsets(offsets: Tensor | DirectInversion, rows: Optional[slice] = None) -> OnStep:
    """An ``on_step`` hook adding ``offsets[i]`` (n, B, ...) after step i, to ``rows`` of the batch (all by default).

    For an edit batch [source; target] of 2B images, ``rows=slice(0, B)`` puts
    the source branch back on its pivot and leaves the target branch free.
    Given the ``DirectInversion`` itself, the hook also checks that every step is
    the one its offset was recorded at (a sampler with other timesteps would add
    the wrong gaps, and the picture would just look wrong).
    """
    timesteps = offsets.timesteps if isinstance(offsets, DirectInversion) else ()
    offsets = offsets.offsets if isinstance(offsets, DirectInversion) else offsets

    def hook(state: StepState) -> Tensor:
        if state.index >= len(offsets):
            raise ValueError(f"{len(offsets)} offsets recorded, but the sampler takes a step {state.index}: use the same timesteps")
        if timesteps and int(state.t) != timesteps[state.index]:
            raise ValueError(f"step {state.index} of the sampler is at t = {int(state.t)}, but its offset was recorded at "
                             f"t = {timesteps[state.index]}: sample with the inversion's timesteps")
        x = state.x_next.clone()
        sel = slice(None) if rows is None else rows
        if x[sel].shape != offsets[state.index].shape:
            raise ValueError(f"offsets are {tuple(offsets.shape[1:])} per step, but rows {sel} of the sample are {tuple(x[sel].shape)}")
        x[sel] = x[sel] + offsets[state.index].to(x)
        return x

    return hook
