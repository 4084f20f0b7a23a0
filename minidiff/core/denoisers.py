"""Small wrappers that turn a network into a denoiser ``model(x_t, t) -> eps``.

The samplers only know the denoiser interface. Everything else (a text
context, a low-resolution image, a guidance scale, a network that predicts v
instead of eps, or one that wants the noise level instead of the step) is
bound here, before the sampler sees the model:

    model = with_cfg(with_inputs(net, context=null), with_inputs(net, context=text), scale=3.0)
    x0 = sample_ddim(model, noise, schedule.timesteps(50), schedule)
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from .sampling import Denoiser
from .schedule import Prediction, Schedule

Network = Callable[..., Tensor]


def fit_batch(value: Tensor, batch: int, name: str) -> Tensor:
    """``value`` (batch or 1, ...) with batch size ``batch``: a batch of one is broadcast (a view, no copy)."""
    if value.shape[0] == batch:
        return value
    if value.shape[0] == 1:
        return value.expand(batch, *value.shape[1:])
    raise ValueError(f"{name} has batch size {value.shape[0]}, expected 1 or {batch}")


def with_inputs(net: Network, **inputs: Optional[Tensor]) -> Denoiser:
    """Bind extra network inputs (``cond=``, ``context=``, ``context_mask=``).

    Tensors with batch size 1 are broadcast to the sample's batch.
    """

    def model(x: Tensor, t: Tensor) -> Tensor:
        bound = {k: None if v is None else fit_batch(v, x.shape[0], k) for k, v in inputs.items()}
        return net(x, t, **bound)

    return model


def with_cfg(uncond: Denoiser, cond: Denoiser, scale: float) -> Denoiser:
    """Classifier-free guidance (Ho & Salimans 2022, eq. 6): eps_u + scale (eps_c - eps_u).

    ``scale = 1`` is the conditional model alone (one evaluation), 0 the
    unconditional one; larger scales push samples toward the condition.
    """
    if not scale >= 0:
        raise ValueError(f"guidance scale must be >= 0 (1 = no guidance), got {scale}")
    if scale == 1:
        return cond

    def model(x: Tensor, t: Tensor) -> Tensor:
        eps_u = uncond(x, t)
        return eps_u + scale * (cond(x, t) - eps_u)

    return model


def with_text_cfg(
    net: Network,
    context: Tensor,
    null_context: Tensor,
    scale: float,
    context_mask: Optional[Tensor] = None,
    null_mask: Optional[Tensor] = None,
) -> Denoiser:
    """Classifier-free guidance of a cross-attention net in one batched call.

    The batch is ``[unconditional; conditional]``, as in the official
    Prompt-to-Prompt code, so attention controllers see both halves.
    context, null_context: (1 or B, L, D); masks (1 or B, L) bool.
    """
    if not scale >= 0:
        raise ValueError(f"guidance scale must be >= 0 (1 = no guidance), got {scale}")
    if context.shape[1:] != null_context.shape[1:]:
        raise ValueError(f"context {tuple(context.shape)} and null_context {tuple(null_context.shape)} must match in (L, D)")

    def model(x: Tensor, t: Tensor) -> Tensor:
        B = x.shape[0]
        ctx = torch.cat([fit_batch(null_context, B, "null_context"), fit_batch(context, B, "context")])
        mask = None
        if context_mask is not None or null_mask is not None:
            ones = torch.ones(1, context.shape[1], dtype=torch.bool, device=x.device)
            m_u = fit_batch(null_mask if null_mask is not None else ones, B, "null_mask")
            m_c = fit_batch(context_mask if context_mask is not None else ones, B, "context_mask")
            mask = torch.cat([m_u, m_c])
        eps_u, eps_c = net(torch.cat([x, x]), torch.cat([t, t]), context=ctx, context_mask=mask).chunk(2)
        return eps_u + scale * (eps_c - eps_u)

    return model


def with_prediction(net: Denoiser, schedule: Schedule, prediction: Prediction) -> Denoiser:
    """Turn a network that predicts x0 or v into one that predicts eps."""
    if prediction == "eps":
        return net

    def model(x: Tensor, t: Tensor) -> Tensor:
        return schedule.eps_from(net(x, t), x, t, prediction)

    return model


def with_noise_level(net: Network, schedule: Schedule) -> Denoiser:
    """Feed a noise-level-conditioned net sqrt(alpha_bar_t) instead of the step t (SR3, sec. 2.4)."""

    def model(x: Tensor, t: Tensor) -> Tensor:
        level = schedule.at(t, like=x).sqrt().reshape(-1).expand(x.shape[0])  # (B,)
        return net(x, level)

    return model


def with_x0_clipping(model: Denoiser, schedule: Schedule, lo: float = -1.0, hi: float = 1.0) -> Denoiser:
    """Clip the implied x0 to [lo, hi] and return the eps that matches the clipped x0.

    The "clipped model output" of Ho et al. 2020's sampler: it keeps a
    slightly wrong model from stepping outside the data range.
    """

    def clipped(x: Tensor, t: Tensor) -> Tensor:
        x0 = schedule.predict_x0(x, t, model(x, t)).clamp(lo, hi)
        return schedule.predict_eps(x, t, x0)

    return clipped
