"""Checkpoints as plain data: ``model.safetensors`` + ``config.json`` + ``README.md`` (the model card).

A checkpoint is a folder. Shipped ones live in ``minidiff/checkpoints/<name>/``
and load by name; any other folder loads by path. ``config.json`` records
what kind of model the weights belong to, the arguments that rebuild it, the
noise schedule, and the sha256 of the weights file, so a corrupted or
truncated file is caught before it can produce a silently wrong picture.
No pickles: loading runs no code from the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from .schedule import Schedule, cosine_schedule, linear_schedule, scaled_linear_schedule
from .unet import UNet, UNetConfig

#: where shipped checkpoints live
CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "README.md"
FORMAT = "minidiff-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be found, is corrupted, or does not fit the model."""


@dataclass(frozen=True)
class Checkpoint:
    """The three files of a checkpoint, read and verified."""

    path: Path
    weights: dict[str, Tensor]
    config: dict[str, Any]
    card: str


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def available_checkpoints() -> list[str]:
    """Names of the checkpoints that ship with the package."""
    if not CHECKPOINT_DIR.is_dir():
        return []
    return sorted(p.name for p in CHECKPOINT_DIR.iterdir() if (p / CONFIG).is_file())


def save_checkpoint(
    directory: str | os.PathLike,
    model: nn.Module | dict[str, Tensor],
    config: dict[str, Any],
    card: str,
    half: bool = False,
) -> Path:
    """Write weights, config (plus format and sha256) and card into ``directory``.

    half: store floating-point tensors as float16 (half the size; they load back into float32
    modules). Evaluate the model after ``round_to_half`` so the card's numbers are those of the file.
    """
    try:  # strict JSON, checked before anything is written: NaN or infinity is a number that was not measured
        json.dumps(config, allow_nan=False)
    except ValueError as e:
        raise ValueError(f"config holds NaN or infinity, which JSON cannot store; write None for a number that was not "
                         f"measured ({e})") from None
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = model.state_dict() if isinstance(model, nn.Module) else model
    store = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous() for k, v in weights.items()}
    save_file(store, str(directory / WEIGHTS))
    full = {"format": FORMAT, **config, "stored_dtype": "float16" if half else "float32", "sha256": _sha256(directory / WEIGHTS)}
    (directory / CONFIG).write_text(json.dumps(full, indent=2, allow_nan=False) + "\n")
    (directory / CARD).write_text(card.rstrip() + "\n")
    return directory


@torch.no_grad()
def round_to_half(model: nn.Module) -> nn.Module:
    """Round every floating-point parameter and buffer to float16 precision in place (kept in its dtype)."""
    for v in model.state_dict().values():
        if v.is_floating_point():
            v.copy_(v.half())
    return model


def resolve(name_or_path: str | os.PathLike) -> Path:
    """The folder of a shipped checkpoint name, or of a path to a checkpoint folder."""
    candidate = Path(name_or_path)
    if candidate.is_dir():
        return candidate
    if isinstance(name_or_path, str) and (CHECKPOINT_DIR / name_or_path).is_dir():
        return CHECKPOINT_DIR / name_or_path
    known = ", ".join(available_checkpoints()) or "none"
    raise CheckpointError(
        f"unknown checkpoint {str(name_or_path)!r}: give a shipped name ({known}) "
        f"or a folder holding {WEIGHTS} and {CONFIG}"
    )


def load_checkpoint(name_or_path: str | os.PathLike, kind: Optional[str] = None) -> Checkpoint:
    """Read and verify a checkpoint. With ``kind``, also check it holds that kind of model."""
    folder = resolve(name_or_path)
    for file in (WEIGHTS, CONFIG):
        if not (folder / file).is_file():
            raise CheckpointError(f"checkpoint folder {folder} has no {file}")
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{folder / CONFIG} is not valid JSON ({e})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{folder / CONFIG} is not a minidiff checkpoint config (expected format {FORMAT!r})")
    if kind is not None and config.get("kind") != kind:
        raise CheckpointError(f"checkpoint {folder.name} holds a {config.get('kind')!r} model, not a {kind!r} one")
    digest = _sha256(folder / WEIGHTS)
    if digest != config.get("sha256"):
        raise CheckpointError(
            f"{folder / WEIGHTS} is corrupted or was replaced: its sha256 {digest[:12]}... does not match "
            f"{str(config.get('sha256'))[:12]}... recorded in {CONFIG}"
        )
    try:
        weights = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{folder / WEIGHTS} is not a readable safetensors file ({e})") from None
    card = (folder / CARD).read_text() if (folder / CARD).is_file() else ""
    return Checkpoint(folder, weights, config, card)


def load_weights(module: nn.Module, weights: dict[str, Tensor], where: str = "checkpoint") -> nn.Module:
    """``module.load_state_dict(weights)`` with an error that says what did not fit."""
    own = module.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    wrong = [f"{k}: {tuple(weights[k].shape)} vs model {tuple(own[k].shape)}" for k in own if k in weights and weights[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[:3]})")
        if wrong:
            parts.append(f"{len(wrong)} shape mismatches (e.g. {wrong[:2]})")
        raise CheckpointError(f"{where} does not fit the model: " + "; ".join(parts))
    module.load_state_dict(weights)
    return module


# -- schedules and UNets ----------------------------------------------------------

ScheduleKind = Literal["linear", "scaled_linear", "cosine"]


def make_schedule(kind: ScheduleKind, T: int = 1000) -> Schedule:
    """The schedule a config names: ``{"kind": "linear", "T": 1000}``."""
    if kind == "linear":
        return linear_schedule(T)
    if kind == "scaled_linear":
        return scaled_linear_schedule(T)
    if kind == "cosine":
        return cosine_schedule(T)
    raise CheckpointError(f"unknown schedule kind {kind!r}; accepted: 'linear', 'scaled_linear', 'cosine'")


def load_unet(name_or_path: str | os.PathLike, device: torch.device | str | None = None) -> tuple[UNet, Schedule, Checkpoint]:
    """Load a UNet checkpoint: returns ``(net in eval mode, its schedule, the checkpoint)``."""
    ckpt = load_checkpoint(name_or_path, kind="unet")
    try:
        config = UNetConfig.from_dict(ckpt.config["unet"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{ckpt.path / CONFIG} has no valid 'unet' section ({e})") from None
    net = load_weights(UNet(config), ckpt.weights, where=str(ckpt.path))
    schedule = make_schedule(**ckpt.config.get("schedule", {"kind": "linear"}))
    return net.to(device).eval(), schedule, ckpt


def load_text_unet(name_or_path: str | os.PathLike, device: torch.device | str | None = None):
    """Load a text-conditioned UNet checkpoint: ``(TextConditionedUNet in eval mode, schedule, checkpoint)``."""
    from .text_encoder import TextConditionedUNet, TextEncoderConfig  # imports transformers: only when needed

    ckpt = load_checkpoint(name_or_path, kind="text_unet")
    try:
        model = TextConditionedUNet(
            UNetConfig.from_dict(ckpt.config["unet"]), TextEncoderConfig(**ckpt.config["text_encoder"]), ckpt.config.get("prediction", "eps")
        )
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{ckpt.path / CONFIG} has no valid 'unet' and 'text_encoder' sections ({e})") from None
    load_weights(model, ckpt.weights, where=str(ckpt.path))
    schedule = make_schedule(**ckpt.config.get("schedule", {"kind": "linear"}))
    return model.to(device).eval(), schedule, ckpt
