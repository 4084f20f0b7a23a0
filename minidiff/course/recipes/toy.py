"""The 2-D toy model of chapter 0: a class-conditional MLP on a ring of 8 Gaussians.

    python -m minidiff train toy2d --out runs/toy2d --export minidiff/checkpoints/toy2d-mlp
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ...core.checkpoint import save_checkpoint
from ...core.denoisers import with_inputs
from ...core.sampling import sample_ddpm
from ...core.schedule import linear_schedule
from ...world.metrics import sliced_wasserstein
from ...world.toy import ToyMLP, ring_mixture
from ..cards import model_card, table, training_facts
from ..train import TrainConfig, train


#: how often the label is dropped so the same net learns p(x) too (Ho & Salimans 2022, sec. 3.2)
LABEL_DROPOUT = 0.1

TOY2D_CONFIG = TrainConfig(steps=20000, batch_size=512, lr=1e-3, warmup=100, ema_decay=0.999, checkpoint_every=2000)


def toy2d_data(batch_size: int, seed: int):
    """Batches from the 8-mode ring, labels dropped LABEL_DROPOUT of the time (label 2 = none)."""
    mixture = ring_mixture()

    def data(step: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        x0, label = mixture.sample(batch_size, generator=g)
        drop = torch.rand(batch_size, generator=g) < LABEL_DROPOUT
        return {"x0": x0, "label": torch.where(drop, mixture.num_classes, label)}

    return data


def evaluate_toy2d(net: ToyMLP, n: int = 4000, seed: int = 1) -> dict[str, float]:
    """Sliced Wasserstein distance of 1000-step DDPM samples to the true mixture, learned vs optimal."""
    mixture, schedule = ring_mixture(), linear_schedule()
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, 2, generator=g)
    ts = schedule.timesteps(1000)
    with torch.no_grad():
        learned = sample_ddpm(with_inputs(net), noise, ts, schedule, generator=torch.Generator().manual_seed(seed))
        ideal = sample_ddpm(mixture.denoiser(schedule), noise, ts, schedule, generator=torch.Generator().manual_seed(seed))
    real, _ = mixture.sample(n, generator=torch.Generator().manual_seed(seed + 1))
    real2, _ = mixture.sample(n, generator=torch.Generator().manual_seed(seed + 2))
    return {
        "swd_learned": sliced_wasserstein(learned, real),
        "swd_optimal": sliced_wasserstein(ideal, real),
        "swd_real_vs_real": sliced_wasserstein(real2, real),
    }


def train_toy2d(out: str, export: str | None = None, steps: int | None = None, progress: bool = False, device: str = "cpu") -> None:
    config = TOY2D_CONFIG if steps is None else TrainConfig(**{**TOY2D_CONFIG.__dict__, "steps": steps})
    torch.manual_seed(config.seed)
    net = ToyMLP()
    schedule = linear_schedule()
    result = train(net, toy2d_data(config.batch_size, config.seed), schedule, config, out, progress=progress, device=device)
    print(f"trained {result.step} steps in {result.seconds:.1f}s; final loss {sum(result.losses[-100:]) / 100:.4f}")
    if export is None:
        return
    t0 = time.perf_counter()
    metrics = evaluate_toy2d(result.ema.cpu())
    print("evaluation:", {k: round(v, 4) for k, v in metrics.items()}, f"({time.perf_counter() - t0:.1f}s)")
    about = f"""A class-conditional noise predictor for the 2-D ring of 8 Gaussians
(`minidiff.world.toy.ring_mixture()`: radius 1, std 0.1, class = mode index mod 2).
Labels were dropped {LABEL_DROPOUT:.0%} of the time, so `label=None` gives the unconditional model
and classifier-free guidance works."""
    facts = [f"Network: `ToyMLP()` (3 hidden layers of 128, {sum(p.numel() for p in net.parameters()):,} parameters), eps-prediction",
             "Schedule: linear, T = 1000 (Ho et al. 2020)",
             *training_facts(config, result, "python -m minidiff train toy2d --out runs/toy2d --export minidiff/checkpoints/toy2d-mlp"),
             f"Final training loss (mean of last 100 steps): {sum(result.losses[-100:]) / 100:.4f}"]
    measured = "## Measured (`minidiff.course.recipes.toy.evaluate_toy2d`, 4000 DDPM samples, 1000 steps)\n\n" + table(
        ["sampler's denoiser", "sliced Wasserstein distance to the true mixture"],
        [["this network (EMA weights)", f"{metrics['swd_learned']:.4f}"], ["the closed-form optimal denoiser", f"{metrics['swd_optimal']:.4f}"],
         ["a second real sample (the floor)", f"{metrics['swd_real_vs_real']:.4f}"]])
    card = model_card("toy2d-mlp", about, facts, measured)
    save_checkpoint(
        export,
        result.ema,
        {"kind": "toy_mlp", "toy_mlp": {"dim": 2, "num_classes": 2}, "schedule": {"kind": "linear", "T": 1000}, "metrics": metrics},
        card,
    )
    print(f"exported to {Path(export).resolve()}")
