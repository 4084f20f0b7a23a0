"""Attention with one explicit seam: a controller that may replace the probabilities.

Every attention module in the UNet has a name (``"down.1.attn0.cross"``), a
kind (self or cross) and the resolution of the feature map it works on. When a
controller is attached, the module computes its attention probabilities
explicitly, hands them to ``controller(probs, site)`` and uses what comes back.
This is the seam Prompt-to-Prompt (Hertz et al. 2022) edits through: store the
maps, replace them with another branch's, reweight a word's column.

Controllers must return a new tensor and never modify their input. The site
tells them the timestep the network was called with, so a controller knows
where in sampling it is without counting calls.

Without a controller, the module uses PyTorch's fused attention; with an
identity controller the result is the same to float precision (tested).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Literal, Optional

import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class AttentionSite:
    """Where an attention call happens: which layer, what kind, at which timestep."""

    name: str  # e.g. "mid.attn0.cross"
    kind: Literal["self", "cross"]
    resolution: int  # side of the feature map, e.g. 8 for an 8x8 map
    t: float  # the network's time input (step, or noise level) for the first item of the batch
    heads: int


#: a controller maps probs (B, heads, N_query, N_key) and the site to new probs of the same shape
Controller = Callable[[Tensor, AttentionSite], Tensor]


class Attention(nn.Module):
    """Multi-head attention of queries from ``x`` over keys from ``context`` (or ``x``).

    Shapes: x (B, N, dim); context (B, L, context_dim); key_mask (B, L) bool,
    True where a key may be attended to. Returns (B, N, dim).
    """

    def __init__(self, name: str, dim: int, heads: int, resolution: int, context_dim: Optional[int] = None) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by heads={heads}")
        self.name = name
        self.kind: Literal["self", "cross"] = "self" if context_dim is None else "cross"
        self.heads = heads
        self.resolution = resolution
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(context_dim or dim, dim, bias=False)
        self.to_v = nn.Linear(context_dim or dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)
        self.controller: Optional[Controller] = None

    def forward(self, x: Tensor, t: Tensor, context: Optional[Tensor] = None, key_mask: Optional[Tensor] = None) -> Tensor:
        B, N, D = x.shape
        h = self.heads
        source = x if self.kind == "self" else context
        if source is None:
            raise ValueError(f"{self.name} is a cross-attention layer and needs a context (B, L, dim)")
        q = self.to_q(x).view(B, N, h, D // h).transpose(1, 2)  # (B, h, N, d)
        k = self.to_k(source).view(B, source.shape[1], h, D // h).transpose(1, 2)  # (B, h, L, d)
        v = self.to_v(source).view(B, source.shape[1], h, D // h).transpose(1, 2)
        mask = None if key_mask is None or self.kind == "self" else key_mask[:, None, None, :]  # (B, 1, 1, L)

        if self.controller is None:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            scores = q @ k.transpose(-1, -2) / math.sqrt(D // h)  # (B, h, N, L)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            probs = scores.softmax(-1)
            site = AttentionSite(self.name, self.kind, self.resolution, t.reshape(-1)[0].item(), h)
            new = self.controller(probs, site)
            if new is None or new.shape != probs.shape:
                got = None if new is None else tuple(new.shape)
                raise ValueError(f"controller at {self.name} must return probs of shape {tuple(probs.shape)}, got {got}")
            out = new.to(v.dtype) @ v
        return self.to_out(out.transpose(1, 2).reshape(B, N, D))


def attention_modules(model: nn.Module) -> dict[str, Attention]:
    """All attention modules of a model, by their names."""
    return {m.name: m for m in model.modules() if isinstance(m, Attention)}


@contextlib.contextmanager
def attach_controller(
    model: nn.Module,
    controller: Controller,
    where: Optional[Callable[[Attention], bool]] = None,
) -> Iterator[dict[str, Attention]]:
    """Attach ``controller`` to the model's attention modules for the ``with`` block.

    ``where`` picks modules (e.g. ``lambda m: m.kind == "cross"``); by default all.
    On exit every module gets back the controller it had before, even on error.
    Yields the modules it attached to.
    """
    chosen = {n: m for n, m in attention_modules(model).items() if where is None or where(m)}
    if not chosen:
        names = ", ".join(attention_modules(model)) or "none"
        raise ValueError(f"no attention module matched; the model has: {names}")
    before = {n: m.controller for n, m in chosen.items()}
    try:
        for m in chosen.values():
            m.controller = controller
        yield chosen
    finally:
        for n, m in chosen.items():
            m.controller = before[n]


def uniform_attention(kinds: frozenset[str] | set[str] = frozenset({"cross"})) -> Controller:
    """A controller that makes the attention of the given kinds uniform: every query attends equally to every key
    it may attend to (padding stays masked). An ablation: what does the model draw when no pixel prefers any word?"""
    unknown = set(kinds) - {"self", "cross"}
    if unknown:
        raise ValueError(f"kinds must be 'self' and/or 'cross', got {sorted(unknown)}")

    def controller(probs: Tensor, site: AttentionSite) -> Tensor:
        if site.kind not in kinds:
            return probs
        allowed = (probs > 0).to(probs.dtype)
        return allowed / allowed.sum(-1, keepdim=True)

    return controller
