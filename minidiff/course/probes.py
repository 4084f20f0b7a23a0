"""Probes of a text-conditioned model: does it draw what the prompt says, and does the text go through attention?

* ``evaluate_base``: the judge's agreement with the prompts' attributes, and world-FD, over held-out captions;
* ``word_distances``: how far the text encoder moves a caption when one word is swapped;
* ``attention_lift`` / ``word_lifts``: how much of each word's cross-attention lands on the object it names;
* ``attention_report``: the lifts at three noise levels and the uniform-attention ablation, as a card section.

The model cards' numbers and chapters 1 and 7 come from these functions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.attention import AttentionStore, attach_controller, uniform_attention
from ..core.schedule import linear_schedule
from ..world.captions import Tokenizer, caption, captions
from ..world.judge import FAMILIES, Judge, agreement, targets, world_fd
from ..world.scenes import COLOURS, SHAPES, Detail, Scenes, scenes
from .zoo import sample_prompts


BASE_EVAL_SIZE = 512


@torch.no_grad()
def evaluate_base(model, judge: Judge, n: int = BASE_EVAL_SIZE, scale: float = 3.0, steps: int = 50,
                  detail: Detail = "none") -> dict[str, float]:
    """Judge agreement with the prompts' attributes per family, and world-FD to real held-out scenes (of the world
    with ``detail``; the prompts, captions, are the same in every world)."""
    test = scenes("test", 0, 3 * n, detail=detail)
    prompt_scenes, real_a, real_b = test[:n], test[n : 2 * n], test[2 * n :]
    prompts = captions(prompt_scenes, torch.Generator().manual_seed(1))
    samples = sample_prompts(model, linear_schedule(), prompts, scale, steps=steps)
    result = agreement(judge.predict(samples), targets(prompt_scenes))
    result["world_fd"] = world_fd(judge, samples, real_a.images)
    result["world_fd_floor"] = world_fd(judge, real_b.images, real_a.images)
    return result


#: caption pairs that differ in one word, for ``word_distances``
WORD_PAIRS = (("circle", "square"), ("circle", "triangle"), ("red", "blue"), ("large", "small"))
WORD_TEMPLATE = "a large red circle in the centre , light plain background"


@torch.no_grad()
def word_distances(encode, pairs=WORD_PAIRS, template: str = WORD_TEMPLATE) -> dict[str, float]:
    """How far a text encoder moves the caption's token states (B, L, width) when one word is swapped:
    ``{"circle/square": ||encode(template) - encode(template with circle -> square)||, ...}`` (the norm over all
    positions). A pair the encoder maps close together is one the UNet cannot tell apart."""
    tokenizer = Tokenizer()
    out = {}
    for a, b in pairs:
        if f" {a} " not in f" {template} ":
            raise ValueError(f"the template {template!r} has no word {a!r} to swap")
        swapped = f" {template} ".replace(f" {a} ", f" {b} ", 1).strip()
        ids, mask = tokenizer([template, swapped])
        states = encode(ids, mask)
        out[f"{a}/{b}"] = float((states[0] - states[1]).norm())
    return out


ATTENTION_LIFT_STEPS = (100, 500, 900)
ATTENTION_PROBE = 64
WORD_KINDS = ("colour words", "shape words", "other words")


@torch.no_grad()
def attention_lift(model, schedule, held: Scenes, t: int, seed: int = 0) -> tuple[dict[str, float], dict[str, float]]:
    """Do the cross-attention maps follow the words? Noise one-object scenes ``held`` to level ``t``, run the network
    once on their own captions, and measure for each word how much of its attention lands on the object, relative to
    the object's share of the feature map: the **lift** (1: no preference; above 1 the word looks at the object).

    Returns the mean lift per kind of word (colour, shape, other) of the maps averaged over heads and over the layers
    at the finest cross-attention resolution (what Prompt-to-Prompt copies and LocalBlend thresholds), and the same
    for the single head and layer whose colour words look at the object most.
    """
    if bool((held.count != 1).any()):
        raise ValueError("attention_lift needs one-object scenes (count == 1): the lift is measured against that object's mask")
    tokenizer = Tokenizer()
    texts = [caption(held, i) for i in range(len(held))]
    ids, mask = tokenizer(texts)
    kinds = [["colour words" if w in COLOURS else "shape words" if w in SHAPES else "other words" for w in tokenizer.words(x)] for x in texts]
    store = AttentionStore(conditional=False, mean_heads=False)  # one unguided call: every head of every layer
    noise = torch.randn(held.images.shape, generator=torch.Generator().manual_seed(seed))
    with attach_controller(model.unet, store):
        model.unet(schedule.q_sample(held.images, t, noise), torch.full((len(held),), t), context=model.encode(ids, mask), context_mask=mask)
    seen = [(site.resolution, probs.float()) for site, probs in store.layers(None)]

    def lifts(probs: torch.Tensor, res: int) -> dict[str, float]:
        return word_lifts(probs, F.adaptive_avg_pool2d(held.masks[:, :1].float(), res).flatten(1), kinds)

    finest = max(r for r, _ in seen)
    mean = lifts(torch.stack([p.mean(1) for r, p in seen if r == finest]).mean(0), finest)
    per_head = [lifts(p[:, h], r) for r, p in seen for h in range(p.shape[1])]
    return mean, max(per_head, key=lambda m: m["colour words"])


def word_lifts(probs: torch.Tensor, share: torch.Tensor, kinds: list[list[str]]) -> dict[str, float]:
    """Mean lift per kind of word. probs (scenes, queries, tokens): attention of each map cell to each token; share
    (scenes, queries): the object's share of each cell; kinds[i][k - 1]: the kind of token k of scene i (0 is the start
    token). A word's lift is the share-weighted mass of its column over its total mass, divided by the mean share."""
    out: dict[str, list[float]] = {k: [] for k in WORD_KINDS}
    for i, words in enumerate(kinds):
        for k, kind in enumerate(words, start=1):
            column = probs[i, :, k]
            out[kind].append(float((column * share[i]).sum() / column.sum() / share[i].mean()))
    return {k: sum(v) / len(v) for k, v in out.items() if v}


@torch.no_grad()
def attention_report(model, schedule, judge: Judge, n: int = ATTENTION_PROBE, steps: int = 25,
                     detail: Detail = "none") -> tuple[str, dict[str, float]]:
    """Does the model's text go through its attention maps? Chapter 7's two measures, on ``n`` held-out one-object scenes:
    the lift of each kind of word (``attention_lift``) at ``ATTENTION_LIFT_STEPS``, and the judge's agreement with
    ``n`` held-out captions sampled normally and with cross-attention made uniform (an ablation that must hurt if the
    words act through the maps). Returns a Markdown section and its numbers."""
    pool = scenes("test", 500, 4 * n, detail=detail)
    held = pool[(pool.count == 1).nonzero().flatten()[:n]]
    rows, numbers = [], {}
    for t in ATTENTION_LIFT_STEPS:
        mean, best = attention_lift(model, schedule, held, t, seed=t)
        rows.append(f"| {t} | " + " | ".join(f"{mean[k]:.2f}" for k in WORD_KINDS) + " | " + " / ".join(f"{best[k]:.2f}" for k in WORD_KINDS) + " |")
        numbers.update({f"lift_{k.split()[0]}_t{t}": mean[k] for k in WORD_KINDS})
    probe = scenes("test", 900, n)
    prompts = [caption(probe, i) for i in range(n)]
    normal = agreement(judge.predict(sample_prompts(model, schedule, prompts, 3.0, steps=steps)), targets(probe))
    with attach_controller(model.unet, uniform_attention({"cross"})):
        flat = agreement(judge.predict(sample_prompts(model, schedule, prompts, 3.0, steps=steps)), targets(probe))
    numbers.update({f"attention_probe_{f}": normal[f] for f in FAMILIES} | {f"uniform_cross_{f}": flat[f] for f in FAMILIES})
    report = f"""
## Does the text go through the attention maps? (`minidiff.course.probes.attention_report`)

Lift of each kind of word's cross-attention on the object ({n} held-out one-object scenes noised to t; 1 = no
preference; maps averaged over heads and the finest layers, as Prompt-to-Prompt uses them; then the single most
object-focused head and layer):

| t | colour words | shape words | other words | most object-focused head (colour / shape / other) |
|---|---|---|---|---|
""" + "\n".join(rows) + f"""

Judge agreement with {n} held-out captions (guidance 3.0, DDIM {steps} steps), normally and with cross-attention made uniform:

| | """ + " | ".join(FAMILIES) + """ |
|---|---|---|---|---|---|---|---|
| normal | """ + " | ".join(f"{100 * normal[f]:.0f}%" for f in FAMILIES) + """ |
| cross-attention uniform | """ + " | ".join(f"{100 * flat[f]:.0f}%" for f in FAMILIES) + " |\n"
    return report, numbers
