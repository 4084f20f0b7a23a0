"""Plotting helpers the notebooks share: image grids, trajectories, point clouds."""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
from torch import Tensor


def to_numpy_image(x: Tensor) -> np.ndarray:
    """One image (C, H, W) in [-1, 1] -> (H, W, C) or (H, W) in [0, 1] for imshow."""
    if x.ndim != 3:
        raise ValueError(f"expected one image (C, H, W), got shape {tuple(x.shape)}")
    img = ((x.detach().float().cpu().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
    return img[..., 0] if img.shape[-1] == 1 else img


def show_images(
    images: Tensor,
    nrow: Optional[int] = None,
    titles: Optional[Sequence[str]] = None,
    size: float = 1.4,
    suptitle: Optional[str] = None,
) -> plt.Figure:
    """A grid of images (B, C, H, W) in [-1, 1], ``nrow`` images per row, nearest-neighbour pixels."""
    B = images.shape[0]
    ncol = nrow or min(B, 8)
    rows = (B + ncol - 1) // ncol
    fig, axes = plt.subplots(rows, ncol, figsize=(size * ncol, size * rows + (0.3 if suptitle else 0)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < B:
            ax.imshow(to_numpy_image(images[i]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def show_trajectory(frames: Tensor, labels: Sequence[str], row_titles: Optional[Sequence[str]] = None, size: float = 1.2) -> plt.Figure:
    """Frames (steps, B, C, H, W): one row per image of the batch, one column per step."""
    steps, B = frames.shape[:2]
    fig, axes = plt.subplots(B, steps, figsize=(size * steps, size * B), squeeze=False)
    for j in range(steps):
        for i in range(B):
            ax = axes[i, j]
            ax.imshow(to_numpy_image(frames[j, i]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(labels[j], fontsize=8)
            if j == 0 and row_titles is not None:
                ax.set_ylabel(row_titles[i], fontsize=8)
    fig.tight_layout()
    return fig


def scatter_points(ax: plt.Axes, points: Tensor, labels: Optional[Tensor] = None, title: str = "", lim: float = 1.6) -> None:
    """A 2-D point cloud (N, 2), coloured by label if given."""
    p = points.detach().cpu().numpy()
    colours = None if labels is None else np.array(["tab:blue", "tab:orange", "tab:green", "tab:red"])[labels.cpu().numpy() % 4]
    ax.scatter(p[:, 0], p[:, 1], s=2, alpha=0.5, c=colours)
    _square(ax, lim, title)


def plot_paths(ax: plt.Axes, path: Tensor, title: str = "", lim: float = 2.5, colour: str = "tab:blue") -> None:
    """Sampling paths of 2-D points: path (steps, N, 2); a dot marks where each one ends."""
    p = path.detach().cpu().numpy()
    for n in range(p.shape[1]):
        ax.plot(p[:, n, 0], p[:, n, 1], lw=0.6, alpha=0.6, color=colour)
    ax.scatter(p[-1, :, 0], p[-1, :, 1], s=6, color="k", zorder=3)
    _square(ax, lim, title)


def _square(ax: plt.Axes, lim: float, title: str) -> None:
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])

