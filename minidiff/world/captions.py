"""Captions for the world's scenes, and a word-level tokenizer over their vocabulary.

Each scene can be described in several phrasings; all of them name every
attribute (shape, colour, size, position of each object, background tone and
pattern), so a caption determines the scene's attributes exactly and two
captions that differ in one word describe scenes that differ in one attribute
(what Prompt-to-Prompt's word swap needs).
"""

from __future__ import annotations

import difflib
import re
from typing import Sequence

import torch
from torch import Tensor

from .scenes import COLOURS, PATTERNS, POSITIONS, SHAPES, SIZES, TONES, Scenes

#: phrasings of a one-object scene; {o} is "small red circle", {p} "on the left", {b} "light striped"
ONE_OBJECT = (
    "a {o} {p} , {b} background",
    "a {b} background with a {o} {p}",
    "{o} , {w} , {b} background",
    "on a {b} background , a {o} {p}",
)
PLACE = {"left": "on the left", "centre": "in the centre", "right": "on the right"}
#: phrasings of a two-object scene (left object first)
TWO_OBJECTS = (
    "a {o1} and a {o2} , {b} background",
    "a {b} background with a {o1} on the left and a {o2} on the right",
    "{o1} left , {o2} right , {b} background",
)

PAD, START, END = "<pad>", "<start>", "<end>"
MAX_TOKENS = 24


def _object_words(scenes: Scenes, i: int, k: int) -> str:
    return f"{SIZES[scenes.size[i, k]]} {COLOURS[scenes.colour[i, k]]} {SHAPES[scenes.shape[i, k]]}"


def caption(scenes: Scenes, i: int, phrasing: int = 0) -> str:
    """The caption of scene ``i`` in phrasing ``phrasing`` (taken modulo the number of phrasings)."""
    background = f"{TONES[scenes.tone[i]]} {PATTERNS[scenes.pattern[i]]}"
    if scenes.count[i] == 1:
        template = ONE_OBJECT[phrasing % len(ONE_OBJECT)]
        where = POSITIONS[scenes.position[i, 0]]
        return template.format(o=_object_words(scenes, i, 0), p=PLACE[where], w=where, b=background)
    template = TWO_OBJECTS[phrasing % len(TWO_OBJECTS)]
    return template.format(o1=_object_words(scenes, i, 0), o2=_object_words(scenes, i, 1), b=background)


def captions(scenes: Scenes, generator: torch.Generator | None = None) -> list[str]:
    """One caption per scene: phrasing 0 without a generator, a random phrasing with one."""
    phrasing = torch.randint(0, 12, (len(scenes),), generator=generator) if generator is not None else torch.zeros(len(scenes), dtype=torch.long)
    return [caption(scenes, i, int(phrasing[i])) for i in range(len(scenes))]


def _vocabulary() -> list[str]:
    words = set(SHAPES + COLOURS + SIZES + POSITIONS + TONES + PATTERNS)
    for template in ONE_OBJECT + TWO_OBJECTS + tuple(PLACE.values()):
        words |= {w for w in re.sub(r"\{\w+\}", " ", template).split()}
    return [PAD, START, END] + sorted(words)


class Tokenizer:
    """Word-level tokenizer: ``"a red circle"`` -> ``[<start>, a, red, circle, <end>, <pad>, ...]``.

    The empty caption ``""`` encodes to ``[<start>, <end>]``: the "null" prompt of
    classifier-free guidance. Words outside the vocabulary are an error that
    names the closest known words.
    """

    def __init__(self, vocabulary: Sequence[str] | None = None, max_tokens: int = MAX_TOKENS) -> None:
        self.vocabulary = list(vocabulary or _vocabulary())
        self.index = {w: i for i, w in enumerate(self.vocabulary)}
        self.max_tokens = max_tokens
        self.pad_id, self.start_id, self.end_id = self.index[PAD], self.index[START], self.index[END]

    def __len__(self) -> int:
        return len(self.vocabulary)

    def words(self, text: str) -> list[str]:
        """Split a caption into words: lower case, commas as their own word."""
        return text.lower().replace(",", " , ").split()

    def encode_one(self, text: str) -> list[int]:
        ids = [self.start_id]
        for w in self.words(text):
            if w not in self.index:
                close = difflib.get_close_matches(w, [v for v in self.vocabulary if not v.startswith("<")], n=4, cutoff=0.5)
                hint = f"; closest known words: {', '.join(close)}" if close else ""
                raise ValueError(f"unknown word {w!r} in caption {text!r}{hint}. The vocabulary is: {' '.join(self.vocabulary[3:])}")
            ids.append(self.index[w])
        ids.append(self.end_id)
        if len(ids) > self.max_tokens:
            raise ValueError(f"caption {text!r} has {len(ids)} tokens with <start> and <end>; at most {self.max_tokens} fit")
        return ids

    def __call__(self, texts: str | Sequence[str]) -> tuple[Tensor, Tensor]:
        """Token ids (B, max_tokens) and a mask (B, max_tokens), True on real tokens."""
        if isinstance(texts, str):
            texts = [texts]
        rows = [self.encode_one(t) for t in texts]
        ids = torch.full((len(rows), self.max_tokens), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids, ids != self.pad_id

    def decode(self, ids: Tensor) -> str:
        return " ".join(self.vocabulary[i] for i in ids.tolist() if i not in (self.pad_id, self.start_id, self.end_id))

    def token_index(self, text: str, word: str) -> list[int]:
        """Positions of ``word`` in the encoded ``text`` (counting <start> as 0): where its attention column is."""
        return [i + 1 for i, w in enumerate(self.words(text)) if w == word]
