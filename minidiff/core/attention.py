"""Attention with one explicit seam: a controller that may replace the probabilities.

Every attention module in the UNet has a name (``"down.1.attn0.cross"``), a
kind (self or cross) and the resolution of the feature map it works on. When a
controller is attached, the module computes its attention probabilities
explicitly, hands them to ``controller(probs, site)`` and uses what comes back.
This is the seam Prompt-to-Prompt (Hertz et al. 2022) edits through: store the
maps, replace them with another branch's, reweight a word's column.

Controllers must return a new tensor and never modify their input. The site
tells them the sampler's step: every sampler publishes the index of the step
it is computing (``at_step``) around each network call, so a controller knows
where in sampling it is without counting calls and without reading a tensor
(which, on a GPU, would wait for the device at every layer).

``AttentionStore`` is the one recorder (by step and layer) that LocalBlend,
Pix2Pix-Zero's guidance and the attention probes read; ``chain_controllers``
runs several controllers as one.

Without a controller, the module uses PyTorch's fused attention; with an
identity controller the result is the same to float precision (tested).
"""

from __future__ import annotations

import contextlib
import math
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Literal, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_STEP: ContextVar[tuple[Optional[int], Optional[int]]] = ContextVar("minidiff_step", default=(None, None))


@contextlib.contextmanager
def at_step(index: int, timestep: Optional[int] = None) -> Iterator[None]:
    """Publish the step being computed to the attention layers for the ``with`` block: ``index``, its position in
    the sampler's timesteps, and ``timestep``, the integer t the network is called at (plain Python numbers, so
    reading them never waits for a device). The samplers do this around every network call; do it yourself when you
    call the network outside a sampler for a known step (as Pix2Pix-Zero's guidance does)."""
    token = _STEP.set((int(index), None if timestep is None else int(timestep)))
    try:
        yield
    finally:
        _STEP.reset(token)


def current_step() -> Optional[int]:
    """The step index published by ``at_step`` (None outside a sampler)."""
    return _STEP.get()[0]


def current_timestep() -> Optional[int]:
    """The timestep published by ``at_step`` (None outside a sampler, or when it was not given)."""
    return _STEP.get()[1]


@dataclass(frozen=True)
class AttentionSite:
    """Where an attention call happens: which layer, what kind, at which step of the sampler."""

    name: str  # e.g. "mid.attn0.cross"
    kind: Literal["self", "cross"]
    resolution: int  # side of the feature map, e.g. 8 for an 8x8 map
    heads: int
    step: Optional[int] = None  # the index in the sampler's timesteps (``at_step``); None outside a sampler
    timestep: Optional[int] = None  # the t of that step, as the sampler published it


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

    def forward(self, x: Tensor, context: Optional[Tensor] = None, key_mask: Optional[Tensor] = None) -> Tensor:
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
            site = AttentionSite(self.name, self.kind, self.resolution, h, *_STEP.get())
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


def chain_controllers(*controllers: Controller) -> Controller:
    """One controller that runs several in order, each on what the one before returned (e.g. an
    ``AttentionStore`` and then a Prompt-to-Prompt edit: the store keeps the maps before the edit)."""
    if not controllers:
        raise ValueError("chain_controllers needs at least one controller")

    def run(probs: Tensor, site: AttentionSite) -> Tensor:
        for c in controllers:
            probs = c(probs, site)
        return probs

    return run


class AttentionStore:
    """A controller that keeps attention probabilities by (step, layer) and changes nothing.

    ``conditional``: keep only the conditional half of a guided batch ``[unconditional; conditional]``
    (:func:`minidiff.core.denoisers.with_text_cfg`), as the official Prompt-to-Prompt code does;
    ``mean_heads``: keep the mean over heads (B, N, L) instead of every head (B, heads, N, L);
    ``kinds``: which attention to keep. Each (step, layer) holds its latest call; outside a sampler the step is
    None. ``maps(steps)`` averages the stored maps over steps and over the layers at one resolution (the finest
    by default, or ``resolution``) into (B, res, res, L).
    """

    def __init__(self, conditional: bool = True, mean_heads: bool = True, kinds: Iterable[str] = ("cross",),
                 resolution: Optional[int] = None) -> None:
        self.kinds = frozenset(kinds)
        unknown = self.kinds - {"self", "cross"}
        if unknown:
            raise ValueError(f"kinds must be 'self' and/or 'cross', got {sorted(unknown)}")
        self.conditional, self.mean_heads, self.resolution = conditional, mean_heads, resolution
        self.entries: dict[tuple[Optional[int], str], tuple[AttentionSite, Tensor]] = {}  # in the order the layers ran

    def __call__(self, probs: Tensor, site: AttentionSite) -> Tensor:
        if site.kind in self.kinds:
            if self.conditional and probs.shape[0] % 2:
                raise ValueError(f"{site.name}: a guided batch [unconditional; conditional] has an even size, got {probs.shape[0]}; "
                                 "use AttentionStore(conditional=False) for unguided calls")
            kept = probs[probs.shape[0] // 2 :] if self.conditional else probs
            self.entries[site.step, site.name] = site, (kept.mean(1) if self.mean_heads else kept).detach()
        return probs

    @property
    def steps(self) -> list[Optional[int]]:
        """The steps recorded, in order (None for calls outside a sampler)."""
        return sorted({s for s, _ in self.entries}, key=lambda s: -1 if s is None else s)

    def at(self, step: Optional[int], name: str, timestep: Optional[int] = None) -> Tensor:
        """What layer ``name`` saw at ``step``; with ``timestep``, also check that step was at that t (a store read
        by a sampler over other timesteps would otherwise hand over the maps of another step)."""
        if (step, name) not in self.entries:
            raise KeyError(f"no attention of {name!r} at step {step} was recorded")
        site, maps = self.entries[step, name]
        if None not in (timestep, site.timestep) and timestep != site.timestep:
            raise ValueError(f"step {step} of the store was recorded at t = {site.timestep}, but is read at t = {timestep}: "
                             "record and read with the same timesteps")
        return maps

    def layers(self, step: Optional[int], resolution: Optional[int] = None) -> list[tuple[AttentionSite, Tensor]]:
        """``(site, maps)`` of every layer recorded at ``step`` (at one ``resolution``, if given), in the order they ran."""
        return [(site, m) for (s, _), (site, m) in self.entries.items() if s == step
                and (resolution is None or site.resolution == resolution)]

    def maps(self, steps: Optional[Sequence[Optional[int]]] = None) -> Tensor:
        """(B, res, res, L): the head-averaged maps, averaged over ``steps`` (all by default) and over the layers at
        the store's resolution (the finest recorded unless it was given)."""
        if not self.mean_heads:
            raise ValueError("maps() averages head-averaged maps: build the store with mean_heads=True")
        chosen = self.steps if steps is None else list(steps)
        if not chosen:
            raise ValueError("no attention was recorded: attach the store and sample first")
        seen = sorted({site.resolution for (s, _), (site, _) in self.entries.items() if s in chosen})
        if not seen:
            raise ValueError(f"no attention was recorded at steps {chosen}")
        res = max(seen) if self.resolution is None else self.resolution
        if res not in seen:
            raise ValueError(f"no attention at {res}x{res} was recorded; this model attends at {seen}")
        missing = [s for s in chosen if not self.layers(s, res)]
        if missing:
            raise ValueError(f"no attention at {res}x{res} was recorded at steps {missing}")
        per_step = [torch.stack([m for _, m in self.layers(s, res)]).mean(0) for s in chosen]  # each (B, N, L)
        return torch.stack(per_step).mean(0).reshape(per_step[0].shape[0], res, res, -1)
