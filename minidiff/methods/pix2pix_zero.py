"""Pix2Pix-Zero: zero-shot image-to-image translation (Parmar et al. 2023).

No training and no prompt for the edit itself, only a *direction*:

1. **Edit direction.** Embed many sentences about the source concept and
   many about the target concept with the text encoder; the direction is the
   difference of their means, added to the image's caption embedding.
2. **Regularised inversion.** DDIM-invert the image, but nudge each predicted
   noise toward white Gaussian noise with a few gradient steps on an
   auto-correlation loss (random shifts, over a pyramid of scales) and a
   KL loss to N(0, 1). Editable noise maps are Gaussian ones.
3. **Cross-attention guidance.** Reconstruct from the inverted noise with the
   caption and record its cross-attention maps per step. Then generate with
   the edited embedding, and before every step move x_t down the gradient of
   || M_edit(x_t) - M_reference ||^2: the edit keeps the source's layout.

Constants are those of the official implementation (diffusers'
``StableDiffusionPix2PixZeroPipeline`` defaults).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.attention import AttentionSite, AttentionStore, at_step, attach_controller
from ..core.sampling import Denoiser, OnStep, StepState, invert_ddim
from ..core.schedule import Schedule
from ..core.text_encoder import TextConditionedUNet

#: noise regularisation during inversion (official defaults)
REG_STEPS = 5
AUTO_CORR_ROLLS = 5
LAMBDA_AUTO_CORR = 20.0
LAMBDA_KL = 20.0
#: step size of cross-attention guidance (official default ``cross_attention_guidance_amount=0.1``)
GUIDANCE_AMOUNT = 0.1


def edit_direction(source_embeddings: Tensor, target_embeddings: Tensor) -> Tensor:
    """Mean target sentence embedding minus mean source sentence embedding: (N, L, D), (M, L, D) -> (1, L, D)."""
    if len(source_embeddings) == 0 or len(target_embeddings) == 0:
        raise ValueError("an edit direction needs at least one source and one target sentence (Pix2Pix-Zero uses about 1,000 each)")
    return (target_embeddings.mean(0) - source_embeddings.mean(0))[None]


def auto_correlation_loss(eps: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """Squared correlations of each noise map with randomly shifted copies of itself, over a pyramid of scales."""
    loss = eps.new_zeros(())
    for i in range(eps.shape[0]):
        for c in range(eps.shape[1]):
            noise = eps[i : i + 1, c : c + 1]
            while True:
                shift = int(torch.randint(max(1, noise.shape[2] // 2), (1,), generator=generator))
                loss = loss + (noise * torch.roll(noise, shifts=shift, dims=2)).mean() ** 2
                loss = loss + (noise * torch.roll(noise, shifts=shift, dims=3)).mean() ** 2
                if noise.shape[2] <= 8:
                    break
                noise = F.avg_pool2d(noise, 2)
    return loss


def kl_loss(eps: Tensor) -> Tensor:
    """KL divergence of N(mean, var) of all values to N(0, 1) (up to a factor 1/2)."""
    var, mean = eps.var(), eps.mean()
    return var + mean**2 - 1 - torch.log(var + 1e-7)


def regularise_noise(eps: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """A few gradient steps pulling a predicted noise toward white Gaussian noise."""
    eps = eps.detach()
    with torch.enable_grad():
        for _ in range(REG_STEPS):
            for _ in range(AUTO_CORR_ROLLS):
                var = eps.clone().requires_grad_(True)
                (grad,) = torch.autograd.grad(auto_correlation_loss(var, generator), var)
                eps = eps - LAMBDA_AUTO_CORR * grad / AUTO_CORR_ROLLS
            var = eps.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(kl_loss(var), var)
            eps = (eps - LAMBDA_KL * grad).detach()
    return eps


@torch.no_grad()
def invert_regularised(model: Denoiser, x0: Tensor, timesteps: Sequence[int] | Tensor, schedule: Schedule,
                       generator: Optional[torch.Generator] = None) -> Tensor:
    """DDIM inversion (the shared ``invert_ddim``) whose denoiser's noise is regularised at every step; x at timesteps[0]."""

    def regularised(x: Tensor, t: Tensor) -> Tensor:
        return regularise_noise(model(x, t), generator)

    return invert_ddim(regularised, x0, timesteps, schedule)[0]


def cross_attention_guidance(
    model: TextConditionedUNet,
    schedule: Schedule,
    context: tuple[Tensor, Optional[Tensor]],
    reference: AttentionStore,
    timesteps: Sequence[int] | Tensor,
    amount: float = GUIDANCE_AMOUNT,
) -> tuple[OnStep, "callable"]:
    """Returns ``(hook, guide)``: ``guide(x, step_index)`` takes one gradient step on x so that the edited prompt's
    cross-attention matches the reference at that step; ``hook`` applies it after every sampling step (for the
    next step's x_t). Call ``guide(x_T, 0)`` on the starting noise yourself."""
    if reference.mean_heads or not reference.conditional:
        raise ValueError("reference must keep every head of the conditional maps: record it with AttentionStore(mean_heads=False)")
    ts = [int(t) for t in timesteps]
    ctx, mask = context
    loss_box: list[Tensor] = []

    def compare(probs: Tensor, site: AttentionSite) -> Tensor:
        if site.kind == "cross":
            ref = reference.at(site.step, site.name, site.timestep)
            loss_box.append((probs - ref).square().sum((2, 3)).mean())
        return probs

    def guide(x: Tensor, i: int) -> Tensor:
        if i >= len(ts) or amount == 0:
            return x
        loss_box.clear()
        with torch.enable_grad():
            x_in = x.detach().clone().requires_grad_(True)
            t = torch.full((x.shape[0],), ts[i], device=x.device)
            with attach_controller(model.unet, compare, where=lambda m: m.kind == "cross"), at_step(i, ts[i]):
                model.unet(x_in, t, context=ctx.expand(x.shape[0], -1, -1), context_mask=None if mask is None else mask.expand(x.shape[0], -1))
            (grad,) = torch.autograd.grad(sum(loss_box), x_in)
        return (x - amount * grad).detach()

    def hook(state: StepState) -> Optional[Tensor]:
        return guide(state.x_next, state.index + 1)

    return hook, guide
