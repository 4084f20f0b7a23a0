"""Stroke paintings: what a user would paint for SDEdit, made from real scenes.

A stroke painting keeps a scene's layout and colours and nothing else: the
scene is averaged over coarse cells, each cell is snapped to the nearest
colour of the world's palette (the four object colours and the two
background tones), and the cells are blown back up as flat blocks. The
result has hard cell edges and flat colour, unlike any real scene: SDEdit's
job is to turn it into one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .scenes import COLOURS, RGB, TONE_RGB, TONES

#: the painter's palette in [-1, 1]: object colours, then background tones (6, 3)
PALETTE = torch.tensor([RGB[c] for c in COLOURS] + [TONE_RGB[t] for t in TONES]) * 2 - 1


def stroke_painting(images: Tensor, cells: int = 8) -> Tensor:
    """(B, 3, H, W) images in [-1, 1] -> flat-colour paintings of ``cells`` x ``cells`` blocks, same shape."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"stroke_painting takes RGB images (B, 3, H, W), got shape {tuple(images.shape)}")
    H, W = images.shape[-2:]
    if H % cells or W % cells:
        raise ValueError(f"cells ({cells}) must divide the image size {H}x{W}")
    coarse = F.adaptive_avg_pool2d(images, cells)  # (B, 3, c, c)
    palette = PALETTE.to(images)
    distance = (coarse[:, None] - palette[None, :, :, None, None]).square().sum(2)  # (B, 6, c, c)
    painted = palette[distance.argmin(1)].permute(0, 3, 1, 2)  # (B, 3, c, c)
    return painted.repeat_interleave(H // cells, -2).repeat_interleave(W // cells, -1)


def stroke_distance(output: Tensor, stroke: Tensor, cells: int = 8) -> Tensor:
    """SDEdit's faithfulness: mean squared distance between the output and the stroke, both averaged over
    the stroke's cells (a blur that forgives the details SDEdit is meant to add). (B,)"""
    return (F.adaptive_avg_pool2d(output, cells) - F.adaptive_avg_pool2d(stroke, cells)).square().flatten(1).mean(1)


#: one letter per palette colour, for painting by hand
LETTERS = {"R": 0, "G": 1, "B": 2, "Y": 3, "L": 4, "D": 5}


def paint(rows: list[str], size: int = 32) -> Tensor:
    """A stroke painting from letters, one per cell: R G B Y (object colours), L D (light and dark background).

    ``paint(["LLLL", "LRRL", "LRRL", "LLLL"])`` is a red square on a light background. All rows have the
    same length, the grid is square, and its side divides ``size``. Returns (1, 3, size, size).
    """
    n = len(rows)
    if n == 0 or any(len(r) != n for r in rows) or size % n:
        raise ValueError(f"paint takes a square grid of letters whose side divides {size}, e.g. 8 rows of 8; got {[len(r) for r in rows]}")
    bad = sorted({ch for r in rows for ch in r} - set(LETTERS))
    if bad:
        raise ValueError(f"unknown paint letters {bad}: use {', '.join(f'{k} ({v})' for k, v in zip(LETTERS, list(COLOURS) + list(TONES)))}")
    idx = torch.tensor([[LETTERS[ch] for ch in r] for r in rows])
    cells = PALETTE[idx].permute(2, 0, 1)[None]  # (1, 3, n, n)
    return cells.repeat_interleave(size // n, -2).repeat_interleave(size // n, -1)
