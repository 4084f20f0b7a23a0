"""Training: one plain function, with EMA, a progress bar, periodic checkpoints and exact resume.

    result = train(net, data, schedule, TrainConfig(steps=3000), "runs/toy")

``data(step)`` returns the batch for a step (a dict with ``"x0"`` and any
network inputs such as ``"label"``, ``"cond"`` or ``"context"``); making it a
function of the step is what makes resuming exact. Every ``checkpoint_every``
steps the whole state (weights, EMA, optimiser, random generators, loss
history) is written atomically to ``<out>/train_state.pt``; calling ``train``
again with the same ``out`` continues from there, and the weights it ends
with are bit-for-bit those of an uninterrupted run (tested).

The loss is the simple one of Ho et al. 2020 (eq. 14): pick t uniformly, noise
x0 to x_t, regress the network's output onto eps (or x0 or v).
"""

from __future__ import annotations

import copy
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..core.loss import Batch, diffusion_loss
from ..core.schedule import Prediction, Schedule

LossFn = Callable[[nn.Module, Batch, Schedule, torch.Generator], Tensor]
STATE = "train_state.pt"


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch_size: int = 64
    lr: float = 2e-4
    warmup: int = 200  # linear learning-rate warm-up, in steps
    cooldown: int = 0  # the last ``cooldown`` steps lower the learning rate linearly to 0 (0: constant to the end)
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    checkpoint_every: int = 500
    seed: int = 0
    prediction: Prediction = "eps"
    mixed_precision: bool = False  # bfloat16 autocast for the forward pass (about 1.6x faster on AVX-512 CPUs)


@dataclass
class TrainResult:
    net: nn.Module  # the trained weights
    ema: nn.Module  # their exponential moving average: use this one to sample
    losses: list[float]
    seconds: float  # wall time of this call
    total_seconds: float  # wall time of the whole run, over every resumed call
    step: int
    hardware: str = ""  # where this call ran, for model cards: see :func:`hardware`


def training_device(name: str) -> torch.device:
    """The device a ``--device`` string names, refused with a clear error where this machine has none."""
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"unknown device {name!r}: use cpu, cuda, cuda:N or mps") from e
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(device.type, False):
        have = ", ".join(k for k, v in available.items() if v)
        raise ValueError(f"device {name!r} is not available on this machine (available: {have})")
    return device


def hardware(device: torch.device) -> str:
    """What ran the training, in words: the GPU's name, or the CPU and its thread count."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA)"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads), CPU"


def lr_factor(config: TrainConfig, step: int) -> float:
    """The learning rate at ``step`` as a fraction of ``config.lr``: warm-up, constant, then the cool-down."""
    up = min(1.0, (step + 1) / max(1, config.warmup))
    down = 1.0 if config.cooldown <= 0 else min(1.0, (config.steps - step) / config.cooldown)
    return max(0.0, min(up, down))


def _same_past(old: TrainConfig, new: TrainConfig, step: int) -> set[str]:
    """Fields that differ in a way that changes the steps already taken (``steps`` and ``cooldown`` may change
    while neither run has begun its cool-down: that is how a run is extended or given a cool-down)."""
    changed = {k for k, v in asdict(new).items() if getattr(old, k) != v} - {"steps", "cooldown"}
    if any(lr_factor(old, s) != lr_factor(new, s) for s in range(step)):
        changed |= {"steps/cooldown (the cool-down has begun)"}
    return changed


def _ema_update(ema: nn.Module, net: nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), net.parameters()):
            e.lerp_(p, 1 - decay)
        for e, b in zip(ema.buffers(), net.buffers()):
            e.copy_(b)


def _save_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: a crash mid-write never leaves a broken state


def train(
    net: nn.Module,
    data: Callable[[int], Batch],
    schedule: Schedule,
    config: TrainConfig,
    out: str | os.PathLike,
    *,
    loss_fn: Optional[LossFn] = None,
    progress: bool = True,
    log_every: int = 100,
    device: str | torch.device | None = None,
) -> TrainResult:
    """Train ``net`` for ``config.steps`` steps, resuming from ``out`` if a state is there.

    ``device`` moves ``net`` there first (default: where its parameters are); the batches follow it. A run
    resumes on the device it was started on (the random generators' states belong to their device).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if device is not None:
        net.to(device)
    device = next(net.parameters()).device
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(config, s))
    generator = torch.Generator(device=device).manual_seed(config.seed)
    torch.manual_seed(config.seed)  # dropout and anything else that draws from the global generator
    losses: list[float] = []
    step, earlier_seconds = 0, 0.0
    if loss_fn is None:

        def loss_fn(n: nn.Module, b: Batch, s: Schedule, g: torch.Generator) -> Tensor:
            return diffusion_loss(n, b, s, g, config.prediction)

    state_path = out / STATE
    if state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        known = {k: v for k, v in state["config"].items() if k in asdict(config)}  # older states lack newer fields
        changed = _same_past(TrainConfig(**known), config, int(state["step"]))
        if changed:
            raise ValueError(f"{state_path} was written with a different TrainConfig (fields {sorted(changed)}); use another out folder")
        began_on = state.get("device", "cpu")  # states written before devices were recorded all ran on the CPU
        if began_on != device.type:
            raise ValueError(f"{state_path} was trained on {began_on}, and a run resumes on the device it began on: pass --device {began_on}")
        net.load_state_dict(state["net"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        losses, step, earlier_seconds = state["losses"].tolist(), int(state["step"]), float(state["seconds"])
        print(f"resuming from step {step} of {config.steps} ({state_path})", flush=True)

    def checkpoint() -> None:
        _save_state(state_path, {
            "net": net.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
            "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
            "losses": torch.tensor(losses), "step": step, "config": asdict(config), "device": device.type,
            "seconds": earlier_seconds + time.perf_counter() - start,
        })
        (out / "losses.json").write_text(json.dumps(losses))

    net.train()
    start = time.perf_counter()
    bar = tqdm(total=config.steps, initial=step, disable=not progress, desc="training", mininterval=1.0)
    while step < config.steps:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.mixed_precision):
            batch = {k: v.to(device, non_blocking=True) for k, v in data(step).items()}
            loss = loss_fn(net, batch, schedule, generator).float()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower the learning rate")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
        opt.step()
        sched.step()
        step += 1
        # EMA with a warm-up of the decay, so early averages are not dominated by the random init
        _ema_update(ema, net, min(config.ema_decay, (1 + step) / (10 + step)))
        losses.append(loss.item())
        bar.update(1)
        if step % log_every == 0 or step == config.steps:
            recent = sum(losses[-log_every:]) / len(losses[-log_every:])
            bar.set_postfix(loss=f"{recent:.4f}")
            if not progress:
                print(f"step {step}/{config.steps} loss {recent:.4f} ({time.perf_counter() - start:.0f}s)", flush=True)
        if step % config.checkpoint_every == 0 or step == config.steps:
            checkpoint()
    bar.close()
    net.eval()
    seconds = time.perf_counter() - start
    return TrainResult(net, ema, losses, seconds, earlier_seconds + seconds, step, hardware(device))
