"""Model cards: one template for every shipped checkpoint's README.md.

A card opens with what the model is, lists how it was made (recipe, command, time, hardware, commit, seed), and
ends with sections of measured numbers, each written by the export that measured them:

    card = model_card("judge", about, training_facts(config, result, command), table_section)
"""

from __future__ import annotations

from typing import Iterable, Sequence

from .results import commit
from .train import TrainConfig, TrainResult


def training_facts(config: TrainConfig, result: TrainResult, command: str, *more: str) -> list[str]:
    """The card's bullet points on how a model was trained: the recipe's settings, the command, time and hardware,
    the commit and the seed; ``more`` adds lines after the training line."""
    schedule = f" (warm-up {config.warmup}" + (f", linear cool-down to 0 over the last {config.cooldown})" if config.cooldown else ")")
    training = (f"Training: {config.steps} steps, batch {config.batch_size}, AdamW lr {config.lr}{schedule}, EMA {config.ema_decay}"
                + (", bfloat16 autocast" if config.mixed_precision else ""))
    return [training, *more, f"Command: `{command}`", f"Time: {result.total_seconds:.0f} s on {result.hardware}",
            f"Code: commit {commit()}; seed {config.seed}"]


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table; cells are written with ``str``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def model_card(name: str, about: str, facts: Sequence[str], *sections: str) -> str:
    """``# name``, the ``about`` paragraph(s), the ``facts`` as bullets, then each section (Markdown, usually opening
    with a ``##`` heading), separated by blank lines."""
    parts = [f"# {name}", about.strip(), "\n".join(f"- {f}" for f in facts), *(s.strip("\n") for s in sections if s.strip())]
    return "\n\n".join(parts) + "\n"
