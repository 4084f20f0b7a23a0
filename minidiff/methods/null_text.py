"""Null-text inversion (Mokady et al. 2023, "Null-text Inversion for Editing Real Images using Guided Diffusion Models").

DDIM inversion at guidance scale 1 (the *pivot*) retraces itself at scale 1,
but editing needs classifier-free guidance, and a guided sampler started from
the pivot's noise drifts away from it. Null-text inversion keeps the model and
the prompt fixed and optimises the one input that guidance adds: the
unconditional ("null") text embedding, a separate one for every step. For
step i, from the latent z_i the sampler reached (paper, alg. 1):

    minimise  || z*_{i+1} - step(z_i, eps_null_i + w (eps_cond - eps_null_i)) ||^2   over null_i

with Adam, a few inner iterations, a learning rate that decays with i, and an
early stop; step i starts from the embedding step i - 1 ended with. The
result is a list of embeddings that, used in place of the null prompt,
reconstruct the image at scale w, and whose cross-attention edits
(Prompt-to-Prompt) keep working.

The constants are those of the official implementation (``null_optimization``
in google/prompt-to-prompt), for 50 DDIM steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..core.attention import current_step, current_timestep
from ..core.denoisers import fit_batch, with_inputs, with_prediction
from ..core.sampling import Denoiser, check_timesteps, ddim_step, invert_ddim
from ..core.schedule import CLEAN, Schedule
from ..core.text_encoder import TextConditionedUNet

#: inner Adam iterations per step (Mokady et al. 2023, sec. 4: N = 10)
INNER_STEPS = 10
#: Adam learning rate at the first step (official code: 1e-2)
LEARNING_RATE = 1e-2
#: learning rate at step i: LEARNING_RATE * (1 - i * LR_DECAY) (official code: 1 - i / 100)
LR_DECAY = 1 / 100
#: stop a step's iterations once its loss is below EARLY_STOP + i * EARLY_STOP_SLOPE (official code)
EARLY_STOP = 1e-5
EARLY_STOP_SLOPE = 2e-5


@dataclass(frozen=True)
class NullTextInversion:
    """pivot: (n + 1, B, C, H, W) DDIM inversion at scale 1, ``pivot[0]`` the noise;
    null_contexts: (n, B, L, D) the optimised null embedding of each step;
    losses: (n, B) each step's final loss; iterations: (n, B) inner iterations each image used."""

    pivot: Tensor
    null_contexts: Tensor
    losses: Tensor
    iterations: Tensor

    @property
    def noise(self) -> Tensor:
        return self.pivot[0]


def _eps(model: TextConditionedUNet, schedule: Schedule, x: Tensor, t: Tensor, context: Tensor, mask: Optional[Tensor]) -> Tensor:
    """The model's eps for x_t with this (unguided) context: one network call."""
    return with_prediction(with_inputs(model.unet, context=context, context_mask=mask), schedule, model.prediction)(x, t)


def null_text_inversion(
    model: TextConditionedUNet,
    x0: Tensor,
    prompt: tuple[Tensor, Optional[Tensor]],
    null: tuple[Tensor, Optional[Tensor]],
    scale: float,
    timesteps: Sequence[int] | Tensor,
    schedule: Schedule,
    *,
    inner_steps: int = INNER_STEPS,
    progress: bool = False,
) -> NullTextInversion:
    """Invert images x0 (B, C, H, W) for sampling at guidance ``scale`` with per-step null embeddings.

    prompt: (context (1 or B, L, D), mask (1 or B, L) or None), the source caption's embeddings;
    null: the same for the empty caption, the starting point of the optimisation.
    Each image has its own embeddings and its own early stop.
    """
    if isinstance(inner_steps, bool) or not isinstance(inner_steps, int) or inner_steps < 0:
        raise ValueError(f"inner_steps must be an integer >= 0 (0 = plain DDIM inversion), got {inner_steps!r}")
    ts = check_timesteps(timesteps, schedule).tolist()
    B = x0.shape[0]
    context, context_mask = (None if v is None else fit_batch(v, B, name) for v, name in zip(prompt, ("prompt", "prompt mask")))
    null_context, null_mask = (None if v is None else fit_batch(v, B, name) for v, name in zip(null, ("null", "null mask")))
    with torch.no_grad():
        pivot = invert_ddim(model.denoiser(schedule, context, context, 1.0, context_mask, context_mask), x0, ts, schedule)
    alpha_bars = schedule.at(torch.tensor(ts + [CLEAN]), like=x0)
    nulls, losses, iterations = [], [], []
    z = pivot[0]
    embedding = null_context.detach().clone()
    for i, t in enumerate(tqdm(ts, disable=not progress, desc="null-text", leave=False)):
        t_batch = torch.full((B,), t, device=x0.device)
        target = pivot[i + 1]
        with torch.no_grad():
            eps_cond = _eps(model, schedule, z, t_batch, context, context_mask)

        def step(emb: Tensor) -> Tensor:
            eps_null = _eps(model, schedule, z, t_batch, emb, null_mask)
            return ddim_step(z, eps_null + scale * (eps_cond - eps_null), alpha_bars[i], alpha_bars[i + 1])[0]

        # a fresh tensor for every step: Adam updates in place, and each step's result is kept
        embedding = embedding.detach().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([embedding], lr=LEARNING_RATE * (1 - i * LR_DECAY))
        done = torch.zeros(B, dtype=torch.bool, device=x0.device)
        used = torch.zeros(B, dtype=torch.long)
        loss = torch.zeros(B, device=x0.device)
        for _ in range(inner_steps):
            loss = (step(embedding) - target).square().flatten(1).mean(1)  # (B,) each image's MSE
            frozen = embedding.detach().clone()
            # images do not interact, so each gets the gradient of its own loss; only the embedding's gradient
            # is computed (not the network's weights': 1.4x faster on CPU, and the model's .grad stays untouched)
            (embedding.grad,) = torch.autograd.grad(loss.sum(), embedding)
            optimizer.step()
            with torch.no_grad():  # images that had converged keep their embedding
                embedding[done] = frozen[done]
            used += (~done).long().cpu()
            done |= loss.detach() < EARLY_STOP + i * EARLY_STOP_SLOPE
            if done.all():
                break
        embedding = embedding.detach()
        with torch.no_grad():
            z = step(embedding)
            losses.append((z - target).square().flatten(1).mean(1))
        nulls.append(embedding)
        iterations.append(used)
    return NullTextInversion(pivot, torch.stack(nulls), torch.stack(losses), torch.stack(iterations))


def per_step_null_denoiser(
    model: TextConditionedUNet,
    schedule: Schedule,
    prompt: tuple[Tensor, Optional[Tensor]],
    null_contexts: Tensor,
    null_mask: Optional[Tensor],
    scale: float,
    timesteps: Sequence[int] | Tensor,
) -> Denoiser:
    """A guided denoiser that uses ``null_contexts[i]`` (n, B, L, D) at ``timesteps[i]``: sampling after null-text inversion.

    It reads the step index and t that the sampler publishes (``core.attention.at_step``), so it runs inside a
    sampler over the inversion's timesteps, and refuses any other step (without reading t from a tensor)."""
    ts = check_timesteps(timesteps, schedule).tolist()
    if len(ts) != len(null_contexts):
        raise ValueError(f"{len(null_contexts)} null embeddings for {len(ts)} timesteps: use the timesteps of the inversion")
    context, context_mask = prompt

    def denoiser(x: Tensor, t: Tensor) -> Tensor:
        i, step_t = current_step(), current_timestep()
        if i is None or not 0 <= i < len(ts) or (step_t is not None and step_t != ts[i]):
            raise ValueError(f"per_step_null_denoiser runs inside a sampler over the inversion's {len(ts)} timesteps; the "
                             f"sampler is at step {i} (t = {step_t})")
        return model.denoiser(schedule, context, null_contexts[i], scale, context_mask, null_mask)(x, t)

    return denoiser
