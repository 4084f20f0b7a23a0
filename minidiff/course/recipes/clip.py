"""The small CLIP that DiffusionCLIP and Pix2Pix-Zero use as their loss (the judge scores them).

    python -m minidiff train clip --out runs/clip --export minidiff/checkpoints/clip
"""

from __future__ import annotations

from pathlib import Path

import torch

from ...core.checkpoint import save_checkpoint
from ...core.schedule import linear_schedule
from ...world.captions import Tokenizer, caption, captions
from ...world.clip import SmallCLIP
from ...world.judge import degrade
from ...world.scenes import scenes
from ..cards import model_card, table, training_facts
from ..train import TrainConfig, train
from .text import text_encoder_config


CLIP_TRAIN = TrainConfig(steps=3000, batch_size=128, lr=1e-3, warmup=200, ema_decay=0.995, checkpoint_every=500)


def scene_keys(batch) -> torch.Tensor:
    """An integer per scene that is equal exactly when two scenes have the same attributes."""
    texts = [caption(batch, i, 0) for i in range(len(batch))]
    index = {t: k for k, t in enumerate(sorted(set(texts)))}
    return torch.tensor([index[t] for t in texts])


def clip_data(batch_size: int, seed: int = 0):
    tokenizer = Tokenizer()

    def data(step: int) -> dict[str, torch.Tensor]:
        batch = scenes("train", step * batch_size, batch_size)
        ids, mask = tokenizer(captions(batch, torch.Generator().manual_seed(seed * 1_000_003 + step)))
        return {"x0": batch.images, "ids": ids, "mask": mask, "keys": scene_keys(batch)}

    return data


def clip_loss(net: SmallCLIP, batch: dict[str, torch.Tensor], schedule, generator: torch.Generator) -> torch.Tensor:
    return net.loss(degrade(batch["x0"], generator), batch["ids"], batch["mask"], batch["keys"])


@torch.no_grad()
def evaluate_clip(clip: SmallCLIP, n: int = 1000) -> dict[str, float]:
    """Top-1 retrieval on held-out scenes, counted right when the retrieved item has the same attributes."""
    test = scenes("test", 0, n)
    keys = scene_keys(test)
    tokenizer = Tokenizer()
    result = {}
    for phrasing in (0, 1):
        ids, mask = tokenizer([caption(test, i, phrasing) for i in range(n)])
        sim = clip.encode_image(test.images) @ clip.encode_text(ids, mask).T  # (images, texts)
        result[f"image->text, phrasing {phrasing}"] = float((keys[sim.argmax(1)] == keys).float().mean())
        result[f"text->image, phrasing {phrasing}"] = float((keys[sim.argmax(0)] == keys).float().mean())
    result["distinct scenes among the candidates"] = float(len(set(keys.tolist())))
    return result


def train_clip(out: str, export: str | None = None, steps: int | None = None, progress: bool = False, device: str = "cpu") -> None:
    config = CLIP_TRAIN if steps is None else TrainConfig(**{**CLIP_TRAIN.__dict__, "steps": steps})
    torch.manual_seed(config.seed)
    clip = SmallCLIP(text_encoder_config())
    result = train(clip, clip_data(config.batch_size, config.seed), linear_schedule(), config, out, loss_fn=clip_loss, progress=progress, device=device)
    print(f"trained to step {result.step} ({result.seconds:.0f}s in this call)", flush=True)
    if export is None:
        return
    metrics = evaluate_clip(result.ema.cpu().eval())
    print(metrics)
    about = f"""A small CLIP for the world (`minidiff.world.clip.SmallCLIP`, {sum(p.numel() for p in clip.parameters()):,} parameters): a CNN image
encoder and a 2-layer `CLIPTextModel`, both projecting to 64-d unit vectors, trained with the symmetric
contrastive loss of Radford et al. 2021 on (scene, caption) pairs in random phrasings. Pairs with identical
attributes in a batch count as matches. Images are randomly degraded in training, as for the judge.
Separate from the judge: DiffusionCLIP and Pix2Pix-Zero use it as their loss; the judge scores them."""
    measured = f"""## Measured: top-1 retrieval among 1000 held-out scenes (`evaluate_clip`)

A retrieval counts as right when the retrieved item has exactly the same attributes (the 1000 scenes hold
{int(metrics['distinct scenes among the candidates'])} distinct attribute combinations, so some captions are shared).

""" + table(["direction", "top-1"], [[k, f"{v:.1%}"] for k, v in metrics.items() if "distinct" not in k])
    card = model_card("clip", about, training_facts(config, result, "python -m minidiff train clip --out runs/clip --export minidiff/checkpoints/clip"),
                      measured)
    save_checkpoint(export, result.ema, {"kind": "clip", "text_encoder": text_encoder_config().to_dict(), "metrics": metrics}, card)
    print(f"exported to {Path(export).resolve()}")
