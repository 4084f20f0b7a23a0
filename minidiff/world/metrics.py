"""Measurements the chapters report: PSNR, distribution distances, power spectra."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def psnr(x: Tensor, y: Tensor, data_range: float = 2.0) -> Tensor:
    """Peak signal-to-noise ratio per image, in dB, for images in [-1, 1] (range 2). Shapes (B, ...) -> (B,)."""
    if x.shape != y.shape:
        raise ValueError(f"psnr needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
    mse = (x - y).double().flatten(1).square().mean(1)
    return 10 * torch.log10(data_range**2 / mse.clamp(min=1e-30))


def sliced_wasserstein(a: Tensor, b: Tensor, projections: int = 256, seed: int = 0) -> float:
    """Mean 1-D Wasserstein-1 distance between two equal-size point clouds over random directions.

    a, b: (N, D). A sample-based distance between distributions that needs no
    density; 0 for identical clouds (Rabin et al. 2011).
    """
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"need two (N, D) clouds of the same size, got {tuple(a.shape)} and {tuple(b.shape)}")
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(a.shape[1], projections, generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    pa = (a.double().cpu() @ dirs).sort(0).values
    pb = (b.double().cpu() @ dirs).sort(0).values
    return float((pa - pb).abs().mean())


def radial_power_spectrum(x: Tensor, bins: Optional[int] = None) -> tuple[Tensor, Tensor]:
    """Mean power |FFT|^2 per radial frequency band, averaged over batch and channels.

    x: (B, C, H, W) with H == W. Returns (frequencies in cycles per pixel,
    shape (bins,); power, shape (bins,)). Natural images fall off roughly as
    1/f^2; white noise is flat, so adding noise drowns the high frequencies
    first (the seed's point for SDEdit).
    """
    if x.ndim != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"need square images (B, C, H, W), got {tuple(x.shape)}")
    n = x.shape[-1]
    bins = bins or n // 2
    power = torch.fft.fft2(x.double().cpu()).abs().square().mean((0, 1)) / n**2  # (H, W)
    f = torch.fft.fftfreq(n, dtype=torch.float64)
    radius = (f[:, None] ** 2 + f[None, :] ** 2).sqrt()
    edges = torch.linspace(0, 0.5, bins + 1, dtype=torch.float64)
    idx = torch.bucketize(radius.flatten(), edges[1:-1])  # band of each frequency
    keep = radius.flatten() <= 0.5
    total = torch.zeros(bins, dtype=torch.float64).index_add_(0, idx[keep], power.flatten()[keep])
    count = torch.zeros(bins, dtype=torch.float64).index_add_(0, idx[keep], torch.ones_like(power.flatten()[keep]))
    centres = (edges[1:] + edges[:-1]) / 2
    return centres, total / count.clamp(min=1)



def masked_psnr(x: Tensor, y: Tensor, keep: Tensor, data_range: float = 2.0) -> Tensor:
    """PSNR per image over the pixels where ``keep`` (B or 1, 1, H, W) is 1, e.g. the background outside an edit. (B,)"""
    if x.shape != y.shape:
        raise ValueError(f"masked_psnr needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
    keep = keep.to(x.dtype).expand(x.shape[0], 1, *x.shape[2:])
    se = ((x - y).double().square() * keep).flatten(1).sum(1)
    count = (keep.double().flatten(1).sum(1) * x.shape[1]).clamp(min=1)
    return 10 * torch.log10(data_range**2 / (se / count).clamp(min=1e-30))


def ssim(x: Tensor, y: Tensor, data_range: float = 2.0, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Structural similarity per image (Wang et al. 2004), Gaussian window, averaged over channels and pixels. (B,)

    Constants K1 = 0.01, K2 = 0.03 and the 11-pixel window with sigma 1.5 of the paper; only windows that fit inside
    the image count (as scikit-image does with gaussian_weights=True, use_sample_covariance=False).
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ssim needs two batches of images of equal shape (B, C, H, W), got {tuple(x.shape)} and {tuple(y.shape)}")
    x, y = x.double(), y.double()
    C = x.shape[1]
    r = torch.arange(window, dtype=torch.float64) - (window - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(C, 1, window, window).to(x.device)

    def blur(z: Tensor) -> Tensor:
        return torch.nn.functional.conv2d(z, kernel, groups=C)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)
