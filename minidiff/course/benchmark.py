"""The edit benchmark: a fixed, seeded set of edits of held-out real scenes, every method, one table.

    python -m minidiff results edits        # runs it (``sweeps.edits``): results/edits.json and .safetensors

Each edit changes one attribute of a one-object held-out scene by swapping one word of its caption
(colour, shape, size, background tone, or position: attention copying should fail at moving things).
For every method we report, over the edits it ran on:

* **success**: the judge reads the target value of the edited attribute;
* **preservation**: the judge reads every other attribute unchanged;
* **background PSNR**: PSNR against the source outside the source object's footprint, dilated, and, for
  position and size edits, outside the target's footprint too;
* **world-FD** of the edited set against real scenes, and **seconds per edit** on this machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.attention import AttentionStore, attach_controller, chain_controllers
from ..core.sampling import chain, invert_ddim, sample_ddim
from ..core.schedule import Schedule
from ..methods.direct_inversion import add_offsets, direct_inversion
from ..methods.imagic import imagic
from ..methods.null_text import null_text_inversion, per_step_null_denoiser
from ..methods.pix2pix_zero import cross_attention_guidance, edit_direction, invert_regularised
from ..methods.prompt_to_prompt import PromptToPrompt, local_blend
from ..methods.sdedit import sdedit
from ..world.captions import Tokenizer, caption
from ..world.judge import FAMILIES, Judge, targets, world_fd
from ..world.metrics import masked_psnr
from ..world.scenes import COLOURS, OBJECT_ATTRIBUTES, POSITIONS, SHAPES, SIZES, TONES, Detail, Scenes, scenes, with_attribute

EDIT_FAMILIES = ("colour", "shape", "size", "tone", "position")
FIRST_SCENE = 3000  # held-out scenes used by the benchmark (after those of the other sweeps)
SCALE = 7.5
STEPS = 50
SDEDIT_STRENGTH = 0.5
#: world-FD of fewer edited images than this is not reported (None): a Frechet distance of so few is mostly bias
WORLD_FD_EDITS = 50


@dataclass(frozen=True)
class Edits:
    source: Scenes
    target: Scenes  # the same scenes, described with the edit applied
    family: list[str]
    source_text: list[str]
    target_text: list[str]


def edit_set(n: int = 100, detail: Detail = "none", families: tuple[str, ...] = EDIT_FAMILIES) -> Edits:
    """n edits, cycling over ``families``, of the first n one-object scenes from FIRST_SCENE; the new value is
    drawn with a fixed seed among the values that differ from the source's. ``detail``: the source scenes'
    unnamed detail (``scenes``); it changes how they look, never which scenes or edits are drawn."""
    unknown = [f for f in families if f not in EDIT_FAMILIES]
    if unknown or not families:
        raise ValueError(f"families must be a non-empty tuple of {EDIT_FAMILIES}, got {families!r}")
    pool = scenes("test", FIRST_SCENE, 4 * n, detail=detail)
    one = (pool.count == 1).nonzero().flatten()[:n]
    if len(one) < n:
        raise ValueError(f"only {len(one)} one-object scenes in the pool; ask for fewer edits")
    source = pool[one]
    g = torch.Generator().manual_seed(0)
    sizes = {"colour": len(COLOURS), "shape": len(SHAPES), "size": len(SIZES), "tone": len(TONES), "position": len(POSITIONS)}
    target, chosen = source, []
    for k in range(n):
        fam = families[k % len(families)]
        chosen.append(fam)
        old = int(getattr(source, fam)[k, 0] if fam in OBJECT_ATTRIBUTES else getattr(source, fam)[k])
        new = (old + 1 + int(torch.randint(sizes[fam] - 1, (1,), generator=g))) % sizes[fam]
        values = getattr(target, fam)[:, 0].clone() if fam in OBJECT_ATTRIBUTES else getattr(target, fam).clone()
        values[k] = new
        target = with_attribute(target, fam, values)
    return Edits(source, target, chosen, [caption(source, i) for i in range(n)], [caption(target, i) for i in range(n)])


#: how far from its centre an object of any shape reaches, in half-widths r: the triangle's circumradius (``scenes``);
#: a square's corners reach 0.886 * sqrt(2) = 1.253 r, a fraction of a pixel more, inside the mask's 2 px margin
ANY_SHAPE_REACH = 1.25


def background_mask(edits: Edits, any_shape: bool = False) -> Tensor:
    """(n, 1, 32, 32): 1 where neither the source object (dilated 2 px) nor, for size and position edits, a large
    object at the target position could be. ``any_shape``: also leave out the disc that an object of any shape and
    turn, at the source object's centre and size, could cover (dilated 2 px): the fair footprint of a shape swap,
    whose new shape may cover pixels the old one did not."""
    src = F.max_pool2d(edits.source.masks[:, :1].float(), 5, stride=1, padding=2)
    region = src.clone()
    xs = torch.arange(32).float() + 0.5
    for i, fam in enumerate(edits.family):
        if fam in ("size", "position"):
            cx = {0: 0.25, 1: 0.5, 2: 0.75}[int(edits.target.position[i, 0])] * 32
            cy = float(edits.source.geometry[i, 0, 1]) * 32
            box = ((xs[None, :] - cx).abs() <= 0.22 * 32) & ((xs[:, None] - cy).abs() <= 0.22 * 32)
            region[i, 0] = torch.maximum(region[i, 0], box.float())
        if any_shape:
            cx, cy, r = (float(v) * 32 for v in edits.source.geometry[i, 0])
            disc = (xs[None, :] - cx) ** 2 + (xs[:, None] - cy) ** 2 <= (ANY_SHAPE_REACH * r + 2) ** 2
            region[i, 0] = torch.maximum(region[i, 0], disc.float())
    return 1 - region


def score(edited: Tensor, edits: Edits, rows: list[int], judge: Judge, real: Optional[Tensor], seconds: float,
          any_shape: bool = False) -> dict[str, float]:
    """The benchmark's numbers for ``edited``, the edits ``rows`` of ``edits``; ``real``: the scenes world-FD compares
    with (None: no world-FD); ``any_shape``: see ``background_mask``."""
    said = judge.predict(edited.clamp(-1, 1))
    want = targets(edits.target[rows])
    fams = [edits.family[i] for i in rows]
    success = torch.tensor([bool(said[f][k] == want[f][k]) for k, f in enumerate(fams)]).float()
    others = [f for f in FAMILIES]
    preserved = torch.tensor([all(bool(said[o][k] == want[o][k]) for o in others if o != f and o in said) for k, f in enumerate(fams)]).float()
    bg = masked_psnr(edited, edits.source.images[rows], background_mask(edits, any_shape)[rows])
    out = {"edits": len(rows), "success": success.mean().item(), "preserved": preserved.mean().item(),
           "background_psnr": bg.mean().item(), "seconds_per_edit": seconds / len(rows),
           "world_fd": world_fd(judge, edited.clamp(-1, 1), real) if real is not None and len(rows) >= WORLD_FD_EDITS else None}
    for fam in EDIT_FAMILIES:
        sel = [k for k, f in enumerate(fams) if f == fam]
        if sel:
            out[f"success_{fam}"] = success[sel].mean().item()
    return out


class Editor:
    """Runs each method on a list of edits with the base model; every method takes an edit's index and returns the
    edited image (1, 3, 32, 32) (``sweeps.edits.run_chunk`` times them)."""

    def __init__(self, model, schedule: Schedule, edits: Edits, steps: int = STEPS, scale: float = SCALE) -> None:
        self.model, self.schedule, self.edits, self.scale = model, schedule, edits, scale
        self.ts = schedule.timesteps(steps)
        self.tokenizer = Tokenizer()
        self.null = self.encode([""])

    def encode(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        ids, mask = self.tokenizer(texts)
        with torch.no_grad():
            return self.model.encode(ids, mask), mask

    def ids(self, text: str) -> Tensor:
        return self.tokenizer(text)[0][0]

    def _pair_denoiser(self, i: int, null: Optional[Tensor] = None):
        ctx, mask = self.encode([self.edits.source_text[i], self.edits.target_text[i]])
        return self.model.denoiser(self.schedule, ctx, self.null[0] if null is None else null, self.scale, mask, self.null[1])

    def _p2p(self, i: int, noise: Tensor, denoiser, on_step=None, cross_replace: float = 0.8, self_replace: float = 0.4,
             blend: bool = False) -> Tensor:
        """Prompt-to-Prompt's Replace on the pair [source, target] from ``noise``; ``blend``: with LocalBlend on the
        swapped word, from the source's and the target's own maps (recorded before the replacement, as officially)."""
        source_ids, target_ids = self.ids(self.edits.source_text[i]), self.ids(self.edits.target_text[i])
        controller = PromptToPrompt(self.ts, source_ids, target_ids, cross_replace=cross_replace, self_replace=self_replace)
        if blend:
            store = AttentionStore()
            swapped = (source_ids != target_ids).nonzero().flatten().tolist()
            controller = chain_controllers(store, controller)
            on_step = chain(on_step, local_blend(store, [swapped, swapped], self.ts))
        with torch.no_grad(), attach_controller(self.model.unet, controller):
            return sample_ddim(denoiser, noise.expand(2, -1, -1, -1), self.ts, self.schedule, on_step=on_step)[1:]

    def sdedit(self, i: int) -> Tensor:
        ctx, mask = self.encode([self.edits.target_text[i]])
        guided = self.model.denoiser(self.schedule, ctx, self.null[0], self.scale, mask, self.null[1])
        with torch.no_grad():
            return sdedit(guided, self.edits.source.images[i : i + 1], SDEDIT_STRENGTH, self.schedule, num_steps=len(self.ts),
                          sampler="ddim", generator=torch.Generator().manual_seed(i))  # each edit its own seeded noise

    def p2p_ddim(self, i: int) -> Tensor:
        ctx, mask = self.encode([self.edits.source_text[i]])
        plain = self.model.denoiser(self.schedule, ctx, self.null[0], 1.0, mask, self.null[1])
        with torch.no_grad():
            noise = invert_ddim(plain, self.edits.source.images[i : i + 1], self.ts, self.schedule)[0]
        return self._p2p(i, noise, self._pair_denoiser(i))

    def p2p_null_text(self, i: int) -> Tensor:
        prompt = self.encode([self.edits.source_text[i]])
        inv = null_text_inversion(self.model, self.edits.source.images[i : i + 1], prompt, self.null, self.scale, self.ts, self.schedule)
        ctx, mask = self.encode([self.edits.source_text[i], self.edits.target_text[i]])
        nulls = inv.null_contexts.expand(-1, 2, -1, -1)  # the source's per-step null for both branches, as the paper does
        return self._p2p(i, inv.noise, per_step_null_denoiser(self.model, self.schedule, (ctx, mask), nulls, self.null[1], self.scale, self.ts))

    def _direct_inversion(self, i: int):
        ctx, mask = self.encode([self.edits.source_text[i]])
        plain = self.model.denoiser(self.schedule, ctx, self.null[0], 1.0, mask, self.null[1])
        guided = self.model.denoiser(self.schedule, ctx, self.null[0], self.scale, mask, self.null[1])
        return direct_inversion(guided, self.edits.source.images[i : i + 1], self.ts, self.schedule, inversion_model=plain)

    def p2p_direct(self, i: int, **p2p) -> Tensor:
        """Direct Inversion, then ``_p2p`` (``p2p``: its settings) with the offsets on the source branch."""
        inv = self._direct_inversion(i)
        return self._p2p(i, inv.noise, self._pair_denoiser(i), on_step=add_offsets(inv, rows=slice(0, 1)), **p2p)

    def direct_no_control(self, i: int) -> Tensor:
        """``p2p_direct`` without its attention control: the same inversion and source branch, the target prompt
        sampled from the same noise on its own. What Prompt-to-Prompt adds is the difference between the two."""
        inv = self._direct_inversion(i)
        with torch.no_grad():
            return sample_ddim(self._pair_denoiser(i), inv.noise.expand(2, -1, -1, -1), self.ts, self.schedule,
                               on_step=add_offsets(inv, rows=slice(0, 1)))[1:]

    def _direction(self, i: int, sentences: int = 200) -> Tensor:
        """Pix2Pix-Zero's direction for this edit: many captions with the source value vs the same with the target value."""
        fam = self.edits.family[i]
        many = scenes("train", 0, 4 * sentences)
        one = many[(many.count == 1).nonzero().flatten()[:sentences]]
        per_object = fam in OBJECT_ATTRIBUTES
        value = lambda s: (getattr(s, fam)[i, 0] if per_object else getattr(s, fam)[i])  # noqa: E731
        src_v, tgt_v = int(value(self.edits.source)), int(value(self.edits.target))
        src = with_attribute(one, fam, torch.full((len(one),), src_v))
        tgt = with_attribute(one, fam, torch.full((len(one),), tgt_v))
        g = torch.Generator().manual_seed(i)
        phrasing = torch.randint(0, 4, (len(one),), generator=g).tolist()
        return edit_direction(self.encode([caption(src, k, p) for k, p in enumerate(phrasing)])[0],
                              self.encode([caption(tgt, k, p) for k, p in enumerate(phrasing)])[0])

    def pix2pix_zero(self, i: int) -> Tensor:
        ctx, mask = self.encode([self.edits.source_text[i]])
        plain = self.model.denoiser(self.schedule, ctx, self.null[0], 1.0, mask, self.null[1])
        noise = invert_regularised(plain, self.edits.source.images[i : i + 1], self.ts, self.schedule, generator=torch.Generator().manual_seed(i))
        recorder = AttentionStore(mean_heads=False)
        guided = self.model.denoiser(self.schedule, ctx, self.null[0], self.scale, mask, self.null[1])
        with torch.no_grad(), attach_controller(self.model.unet, recorder):
            sample_ddim(guided, noise, self.ts, self.schedule)  # the reference pass records the caption's maps
        edited_ctx = ctx + self._direction(i)
        hook, guide = cross_attention_guidance(self.model, self.schedule, (edited_ctx, mask), recorder, self.ts)
        edit = self.model.denoiser(self.schedule, edited_ctx, self.null[0], self.scale, mask, self.null[1])
        with torch.no_grad():
            return sample_ddim(edit, guide(noise, 0), self.ts, self.schedule, on_step=hook)

    def imagic(self, i: int, eta: float = 0.7) -> Tensor:
        target = self.encode([self.edits.target_text[i]])
        result = imagic(self.model, self.edits.source.images[i : i + 1], target, self.schedule, generator=torch.Generator().manual_seed(i))
        e = result.embedding(eta)
        denoiser = result.model.denoiser(self.schedule, e, self.null[0], self.scale, target[1], self.null[1])
        noise = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(i))
        with torch.no_grad():
            return sample_ddim(denoiser, noise, self.ts, self.schedule)


METHODS: dict[str, Callable[[Editor, int], Tensor]] = {
    "SDEdit (baseline)": Editor.sdedit,
    "P2P + DDIM inversion": Editor.p2p_ddim,
    "P2P + null-text": Editor.p2p_null_text,
    "P2P + direct inversion": Editor.p2p_direct,
    "Pix2Pix-Zero": Editor.pix2pix_zero,
    "Imagic": Editor.imagic,
}
