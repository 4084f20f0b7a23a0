"""Prompt-to-Prompt: edit by controlling cross-attention (Hertz et al. 2022).

Generate the source prompt and the edited prompt side by side, from the same
noise, as one batch ``[source, target]``. Cross-attention maps say which pixels
look at which word, and they fix the layout early in sampling. So copy the
source branch's maps into the target branch for the first steps, and the
target keeps the source's layout while its words (through the attention
*values*) change what is drawn there:

* **Replace** (word swap, same number of tokens): the target's cross-attention
  maps are the source's (paper, sec. 3.2, eq. "Edit(M_t, M*_t, t)").
* **Refine** (words added): tokens that the two prompts share keep the source's
  maps, new tokens keep their own (alignment by longest matching runs).
* **Reweight**: scale one token's attention column by a factor (more or less
  of that word).
* Self-attention maps of the source are copied too, for a (usually shorter)
  fraction of the steps, which keeps the source's geometry.
* **LocalBlend**: after each step, outside a mask made from the edited words'
  cross-attention, the target is reset to the source, so the background
  stays exactly the source's.

The controllers see the attention probabilities of the classifier-free-guidance
batch ``[unconditional; conditional]`` (:func:`minidiff.core.denoisers.with_text_cfg`),
and edit only the conditional half, as the official code does. They learn the
step from the site, where the sampler publishes it, never by counting calls.
Recording the maps (``AttentionStore``) and chaining controllers are core's
(:mod:`minidiff.core.attention`).
"""

from __future__ import annotations

import difflib
from typing import Literal, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.attention import AttentionSite, AttentionStore
from ..core.sampling import OnStep, StepState

#: LocalBlend's threshold on the normalised attention mask, and the step fraction where blending starts
#: (official code: ``LocalBlend(th=(.3, .3))``, ``start_blend=0.2``)
BLEND_THRESHOLD = 0.3
BLEND_START = 0.2


def sampler_step(site: AttentionSite, timesteps: Sequence[int]) -> int:
    """The step index the sampler published for this call, checked against the controller's timesteps (by the t the
    sampler published beside it, a plain number: no device sync)."""
    if site.step is None:
        raise ValueError(f"{site.name} was called outside a sampler, so it has no step: run the controller inside "
                         "sample_ddim / sample_ddpm, or publish the step with minidiff.core.attention.at_step(i, t)")
    if not 0 <= site.step < len(timesteps) or (site.timestep is not None and site.timestep != timesteps[site.step]):
        raise ValueError(f"the sampler is at step {site.step} (t = {site.timestep}), which is not step {site.step} of the "
                         f"controller's {len(timesteps)} timesteps; build the controller with the sampler's timesteps")
    return site.step


def _halves(probs: Tensor, branches: int) -> tuple[Tensor, Tensor]:
    if probs.shape[0] != 2 * branches:
        raise ValueError(f"expected a guidance batch [uncond; cond] of 2 x {branches} prompts, got batch {probs.shape[0]}")
    return probs[:branches], probs[branches:]


def token_alignment(source_ids: Tensor, target_ids: Tensor) -> tuple[Tensor, Tensor]:
    """Refine's alignment of two token-id sequences (L,): ``mapper`` (L,) gives, for every target position,
    the source position it copies its map from; ``keep`` (L,) is 1 where it has one (shared tokens), 0 for new tokens."""
    src, tgt = source_ids.tolist(), target_ids.tolist()
    mapper = torch.arange(len(tgt))
    keep = torch.zeros(len(tgt))
    for block in difflib.SequenceMatcher(a=src, b=tgt, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            mapper[block.b + k] = block.a + k
            keep[block.b + k] = 1.0
    return mapper, keep


class PromptToPrompt:
    """The Prompt-to-Prompt controller for one edit: a batch of two prompts, ``[source, target]``.

    mode: ``"replace"`` (same token count; explain a word swap) or ``"refine"`` (words added or removed).
    timesteps: the sampler's (the controller checks each call's step against them).
    cross_replace: fraction of the steps, from the first, in which the target's cross-attention is
    taken from the source; self_replace: the same for self-attention.
    reweight: ``{token position: factor}`` applied to the target's cross-attention columns in the same
    steps (for a reweight-only edit, give the same prompt twice).
    """

    def __init__(
        self,
        timesteps: Sequence[int] | Tensor,
        source_ids: Tensor,
        target_ids: Tensor,
        mode: Literal["replace", "refine"] = "replace",
        cross_replace: float = 0.8,
        self_replace: float = 0.4,
        reweight: Optional[dict[int, float]] = None,
    ) -> None:
        for name, value in (("cross_replace", cross_replace), ("self_replace", self_replace)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a fraction of the steps in [0, 1], got {value}")
        source_ids, target_ids = source_ids.reshape(-1), target_ids.reshape(-1)
        n_src, n_tgt = int((source_ids != 0).sum()), int((target_ids != 0).sum())
        if mode == "replace":
            if n_src != n_tgt:
                raise ValueError(
                    f"replace needs prompts with the same number of tokens (got {n_src} and {n_tgt}): it swaps words one for one. "
                    "To add or remove words use mode='refine', which aligns the shared words and lets new ones keep their own maps")
            self.mapper, self.keep = torch.arange(len(target_ids)), torch.ones(len(target_ids))
        elif mode == "refine":
            self.mapper, self.keep = token_alignment(source_ids, target_ids)
        else:
            raise ValueError(f"mode must be 'replace' or 'refine', got {mode!r}")
        self.timesteps = [int(t) for t in timesteps]
        n = len(self.timesteps)
        self.cross_steps = int(cross_replace * n)
        self.self_steps = int(self_replace * n)
        self.weights = torch.ones(len(target_ids))
        for position, factor in (reweight or {}).items():
            if not 0 <= position < len(target_ids):
                raise ValueError(f"reweight position {position} is outside the prompt's {len(target_ids)} token slots")
            if factor < 0:
                raise ValueError(f"reweight factors must be >= 0 (1 = unchanged), got {factor} for position {position}")
            self.weights[position] = factor

    def __call__(self, probs: Tensor, site: AttentionSite) -> Tensor:
        uncond, cond = _halves(probs, 2)
        source, target = cond[:1], cond[1:]
        i = sampler_step(site, self.timesteps)
        if site.kind == "cross":
            if i < self.cross_steps:  # as in the official code, reweighting acts inside the replace window
                keep = self.keep.to(probs)
                target = (source[..., self.mapper.to(probs.device)] * keep + target * (1 - keep)) * self.weights.to(probs)
        elif i < self.self_steps:
            target = source
        return torch.cat([uncond, source, target])


def local_blend(store: AttentionStore, words: Sequence[Sequence[int]], timesteps: Sequence[int] | Tensor,
                threshold: float = BLEND_THRESHOLD, start: float = BLEND_START) -> OnStep:
    """LocalBlend as an ``on_step`` hook for the batch ``[source, target]``.

    ``words``: for each branch, the token positions of the edited words (e.g. "red" in the source and
    "blue" in the target). Their cross-attention so far, max-pooled, upsampled and normalised, above
    ``threshold`` marks where the edit may act; elsewhere the target is reset to the source. ``timesteps``: the
    sampler's; blending starts at step ``start * len(timesteps)``.
    Attach ``store`` (an ``AttentionStore``) as a controller together with the editing controller
    (``chain_controllers``), before it, so that it keeps each branch's own maps.
    """
    first = int(start * len(timesteps))

    def hook(state: StepState) -> Optional[Tensor]:
        if state.index < first:
            return None
        maps = store.maps(range(state.index + 1))  # (2, r, r, L): everything seen so far
        alpha = torch.zeros(maps.shape[0], maps.shape[-1], device=maps.device, dtype=maps.dtype)
        for b, positions in enumerate(words):
            alpha[b, list(positions)] = 1
        m = (maps * alpha[:, None, None, :]).sum(-1)[:, None]  # (2, 1, r, r)
        m = F.max_pool2d(m, 3, stride=1, padding=1)
        m = F.interpolate(m, size=state.x_next.shape[-2:], mode="nearest")
        m = m / m.amax(dim=(2, 3), keepdim=True).clamp(min=1e-12)
        mask = ((m[:1] > threshold) | (m[1:] > threshold)).to(state.x_next.dtype)  # union of source and target regions
        x = state.x_next
        return torch.cat([x[:1], x[:1] + mask * (x[1:] - x[:1])])

    return hook
