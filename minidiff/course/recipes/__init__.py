"""Recipes for the models that ship with minidiff: what data, which net, how long, and the card each export writes.

Each recipe trains in the background from the command line, prints progress, resumes from its ``--out`` folder
when restarted, and with ``--export`` writes a shipped checkpoint (weights, config, model card with measured
numbers):

    python -m minidiff train toy2d --out runs/toy2d --export minidiff/checkpoints/toy2d-mlp

Every recipe has one signature, ``recipe(out, export=None, steps=None, progress=False, device="cpu")``, and
``RECIPES`` names them. The modules: ``toy`` (chapter 0), ``text`` (``base``, ``base-xattn`` and what every text
model's export shares), ``detail`` (the course's base model, ``base-detail``), ``judge`` and ``clip`` (the
referees), ``sr`` and ``cdm`` (super-resolution and the cascade).
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from . import cdm, clip, detail, judge, sr, text, toy

RECIPES: dict[str, Callable[..., None]] = {
    "toy2d": toy.train_toy2d,
    "base": text.train_base,
    "base-xattn": text.train_base_xattn,
    "base-detail": detail.train_base_detail,
    "judge": judge.train_judge,
    "judge-detail": partial(judge.train_judge, detail="random", name="judge-detail"),
    "clip": clip.train_clip,
    **sr.SR_RECIPES,
    "cdm-base8": cdm.train_cdm_base8,
}
