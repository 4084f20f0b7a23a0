"""The world's referee: the judge (and ``judge-detail``, trained on scenes with unnamed detail).

    python -m minidiff train judge --out runs/judge --export minidiff/checkpoints/judge
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ...core.checkpoint import save_checkpoint
from ...core.schedule import linear_schedule
from ...world.judge import HEADS, Degradation, Judge, agreement, degrade, gaussian_blur, targets
from ...world.scenes import Detail, scenes
from ..cards import model_card, table, training_facts
from ..train import TrainConfig, train


JUDGE_TRAIN = TrainConfig(steps=3000, batch_size=128, lr=2e-3, warmup=100, ema_decay=0.995, checkpoint_every=500)
JUDGE_TEST_SIZE = 2000


def judge_data(batch_size: int, detail: Detail = "none"):
    def data(step: int) -> dict[str, torch.Tensor]:
        batch = scenes("train", step * batch_size, batch_size, detail=detail)
        return {"x0": batch.images, **targets(batch)}

    return data


def judge_loss(net: Judge, batch: dict[str, torch.Tensor], schedule, generator: torch.Generator) -> torch.Tensor:
    """Cross-entropy summed over heads, on randomly degraded images; -1 labels are ignored."""
    logits = net(degrade(batch["x0"], generator))
    return sum(F.cross_entropy(logits[h], batch[h], ignore_index=-1) for h in HEADS)


def evaluate_judge(judge: Judge, n: int = JUDGE_TEST_SIZE, detail: Detail = "none") -> dict[str, dict[str, float]]:
    """Agreement with the truth per attribute family on held-out scenes, clean and under each degradation."""
    test = scenes("test", 0, n, detail=detail)
    truth = targets(test)
    g = torch.Generator().manual_seed(0)
    x = test.images
    views = {
        "clean": x,
        "noise 0.1": (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(-1, 1),
        "blur 1 px": gaussian_blur(x, torch.ones(len(x))),
        "colour cast 0.08": (x + 0.08 * (2 * torch.rand(len(x), 3, 1, 1, generator=g) - 1)).clamp(-1, 1),
        "via 16 px": F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="bilinear", align_corners=False),
        "random mix (training)": degrade(x, g, Degradation()),
    }
    return {name: agreement(judge.predict(v), truth) for name, v in views.items()}


#: amounts of unnamed detail at which a judge is read (0: the plain world; 1: full detail)
DETAIL_AMOUNTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def judge_by_detail(judge: Judge, n: int = JUDGE_TEST_SIZE) -> dict[str, dict[str, float]]:
    """Agreement with the truth per family on the same held-out scenes rendered at each amount of unnamed detail."""
    out = {}
    for amount in DETAIL_AMOUNTS:
        test = scenes("test", 0, n, detail=amount)
        out[f"detail {amount:g}"] = agreement(judge.predict(test.images), targets(test))
    return out


def agreement_table(results: dict[str, dict[str, float]]) -> str:
    """``{images: {family: agreement}}`` as a Markdown table of percentages, one row per kind of images."""
    families = list(next(iter(results.values())))
    return table(["images", *families], [[name, *(f"{100 * r[f]:.1f}%" for f in families)] for name, r in results.items()])


def train_judge(out: str, export: str | None = None, steps: int | None = None, progress: bool = False,
                device: str = "cpu", detail: Detail = "none", name: str = "judge") -> None:
    """The judge's recipe; ``detail="random"`` trains it on scenes with unnamed detail (each scene its own amount)."""
    config = JUDGE_TRAIN if steps is None else TrainConfig(**{**JUDGE_TRAIN.__dict__, "steps": steps})
    torch.manual_seed(config.seed)
    judge = Judge()
    result = train(judge, judge_data(config.batch_size, detail), linear_schedule(), config, out, loss_fn=judge_loss,
                   progress=progress, device=device)
    print(f"trained to step {result.step} ({result.seconds:.0f}s in this call)", flush=True)
    if export is None:
        return
    trained = result.ema.cpu().eval()
    results = evaluate_judge(trained, detail=detail)
    by_detail = judge_by_detail(trained)
    print(agreement_table(results))
    print(agreement_table(by_detail))
    world = ("of the plain world" if detail == "none" else
             f"with unnamed detail (`scenes(..., detail={detail!r})`, each scene its own amount, uniform in [0, 1])")
    about = f"""The world's referee: an attribute classifier for 32 px scenes (`minidiff.world.judge.Judge`,
{sum(p.numel() for p in judge.parameters()):,} parameters, CoordConv input). Heads: object count; shape, colour, size and
position of the left (or only) object; shape, colour and size of the right object; background tone
and pattern. Trained on real scenes only, {world}, with random degradations (noise, blur, colour casts,
16 and 8 px views), never on model outputs. Its 128-d penultimate features define world-FD."""
    command = f"python -m minidiff train {name} --out runs/{name} --export minidiff/checkpoints/{name}"
    card = model_card(name, about, training_facts(config, result, command),
                      f"## Measured: agreement with the true attributes, {JUDGE_TEST_SIZE} held-out scenes {world} (`evaluate_judge`)\n\n"
                      + agreement_table(results),
                      "## The same scenes with unnamed detail (`judge_by_detail`: lighting, texture, tint, stripe angle, rotation, spread)\n\n"
                      + agreement_table(by_detail))
    metrics = {**results, **by_detail}
    save_checkpoint(export, result.ema, {"kind": "judge", "judge": {}, "world_detail": detail, "metrics": metrics}, card)
    print(f"exported to {Path(export).resolve()}")
