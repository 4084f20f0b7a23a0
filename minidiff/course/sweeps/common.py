"""What the chapters' sweeps share: which held-out scenes they use, and the models they measure."""

from __future__ import annotations

from ...core.checkpoint import load_text_unet
from ..zoo import load_judge

#: held-out scenes used as guides and references; the real set for world-FD starts after them
GUIDES_START, REAL_START, REAL_COUNT = 0, 4000, 1000
#: the text-conditioned model the editing chapters' results were computed with, and the judge that scores them
MODEL, JUDGE = "base", "judge"


def chapter_models():
    """``(model, schedule, judge)``: the shipped models the editing sweeps measure."""
    model, schedule, _ = load_text_unet(MODEL)
    return model, schedule, load_judge(JUDGE)
