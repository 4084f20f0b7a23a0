"""Toy worlds with exact answers: Gaussian mixtures and their optimal denoisers.

If the data are a mixture of isotropic Gaussians, p_0 = sum_k w_k N(mu_k, s_k^2 I),
then every noisy marginal is one too:

    p_t = sum_k w_k N(sqrt(a) mu_k, (a s_k^2 + 1 - a) I),      a = alpha_bar_t,

and the best possible denoiser (the one with the least mean-squared error) is

    eps*(x_t, t) = -sqrt(1 - a) grad log p_t(x_t)          (Tweedie's formula)
                 = sqrt(1 - a) sum_k r_k(x_t) (x_t - sqrt(a) mu_k) / (a s_k^2 + 1 - a),

with r_k the posterior probability of component k. A network trained to
convergence can do no better, so these mixtures let tests check samplers
exactly, and let the notebooks compare a learned denoiser with the ideal one.
A mixture whose means are images gives an ideal image denoiser: it can only
reproduce its training images, which is what "memorisation" means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from ..core.sampling import Denoiser
from ..core.schedule import Schedule
from ..core.unet import sinusoidal_embedding


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """sum_k weights[k] N(means[k], stds[k]^2 I); ``labels[k]`` is component k's class.

    means: (K, *shape), stds: (K,), weights: (K,) summing to 1, labels: (K,) long.
    """

    means: Tensor
    stds: Tensor
    weights: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        K = self.means.shape[0]
        for name in ("stds", "weights", "labels"):
            if getattr(self, name).shape != (K,):
                raise ValueError(f"{name} must have shape ({K},), got {tuple(getattr(self, name).shape)}")
        if not torch.isclose(self.weights.sum().double(), torch.tensor(1.0, dtype=torch.float64), atol=1e-6):
            raise ValueError(f"weights must sum to 1, got {float(self.weights.sum())}")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.means.shape[1:])

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1

    def restrict(self, label: int) -> "GaussianMixture":
        """The mixture of class ``label`` alone (renormalised): p(x | label)."""
        keep = self.labels == label
        if not keep.any():
            raise ValueError(f"no component has label {label}; labels are 0..{self.num_classes - 1}")
        w = self.weights[keep]
        return GaussianMixture(self.means[keep], self.stds[keep], w / w.sum(), self.labels[keep])

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
        """n samples and their component labels: (n, *shape), (n,)."""
        k = torch.multinomial(self.weights.double(), n, replacement=True, generator=generator)
        noise = torch.randn((n, *self.shape), generator=generator, dtype=self.means.dtype)
        std = self.stds[k].reshape(n, *([1] * len(self.shape)))
        return self.means[k] + std * noise, self.labels[k]

    def moments(self) -> tuple[Tensor, Tensor]:
        """Exact mean (*shape) and covariance (D, D) of the flattened mixture."""
        mu = self.means.flatten(1).double()  # (K, D)
        w = self.weights.double()
        mean = w @ mu
        D = mu.shape[1]
        centred = mu - mean
        cov = (w[:, None, None] * (centred[:, :, None] * centred[:, None, :])).sum(0)
        cov = cov + (w * self.stds.double() ** 2).sum() * torch.eye(D, dtype=torch.float64)
        return mean.reshape(self.shape), cov

    def log_prob_noisy(self, x: Tensor, alpha_bar: Tensor) -> Tensor:
        """log p_t(x) per component, (B, K), for alpha_bar of shape (B,)."""
        a = alpha_bar.reshape(-1, 1)  # (B, 1)
        var = a * self.stds.to(x) ** 2 + (1 - a)  # (B, K)
        mu = self.means.to(x).flatten(1)  # (K, D)
        xf = x.flatten(1)  # (B, D)
        sq = (xf**2).sum(1, keepdim=True) - 2 * a.sqrt() * xf @ mu.T + a * (mu**2).sum(1)[None]  # (B, K)
        D = xf.shape[1]
        return self.weights.to(x).log()[None] - 0.5 * sq / var - 0.5 * D * torch.log(2 * math.pi * var)

    def denoiser(self, schedule: Schedule) -> Denoiser:
        """The optimal eps-prediction eps*(x_t, t) for this mixture under ``schedule``."""

        def eps(x: Tensor, t: Tensor) -> Tensor:
            a = schedule.at(t, like=x).reshape(-1)  # (B,)
            r = self.log_prob_noisy(x, a).softmax(dim=1)  # (B, K) posterior over components
            a = a.reshape(-1, 1)
            var = a * self.stds.to(x) ** 2 + (1 - a)  # (B, K)
            mu = self.means.to(x).flatten(1)
            # sum_k r_k (x - sqrt(a) mu_k) / var_k, written without a (B, K, D) temporary
            coef = r / var  # (B, K)
            out = coef.sum(1, keepdim=True) * x.flatten(1) - a.sqrt() * coef @ mu
            return ((1 - a).sqrt() * out).reshape(x.shape)

        return eps


def ring_mixture(
    num_modes: int = 8,
    radius: float = 1.0,
    std: float = 0.1,
    num_classes: int = 2,
    dtype: torch.dtype = torch.float32,
) -> GaussianMixture:
    """``num_modes`` equal Gaussians on a circle in 2-D; mode k has class k mod num_classes."""
    angle = torch.arange(num_modes, dtype=torch.float64) * 2 * math.pi / num_modes
    means = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    return GaussianMixture(
        means.to(dtype),
        torch.full((num_modes,), std, dtype=dtype),
        torch.full((num_modes,), 1.0 / num_modes, dtype=dtype),
        torch.arange(num_modes) % num_classes,
    )


def image_mixture(images: Tensor, std: float = 0.05, labels: Optional[Tensor] = None) -> GaussianMixture:
    """A mixture with one narrow Gaussian around each image of ``images`` (K, C, H, W) in [-1, 1]."""
    K = images.shape[0]
    return GaussianMixture(
        images,
        torch.full((K,), std, dtype=images.dtype),
        torch.full((K,), 1.0 / K, dtype=images.dtype),
        torch.zeros(K, dtype=torch.long) if labels is None else labels.long(),
    )


class ToyMLP(nn.Module):
    """A small class-conditional eps-predictor for 2-D points: ``net(x, t, label=None) -> eps``.

    ``label`` is (B,) in 0..num_classes-1; ``None``, or the value
    ``num_classes`` for single items, asks for the unconditional model.
    Training drops labels to that learned "null" class now and then
    (classifier-free guidance, Ho & Salimans 2022), so one net is both.
    """

    def __init__(self, dim: int = 2, num_classes: int = 2, width: int = 128, depth: int = 3, emb: int = 64) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.emb = emb
        self.label_emb = nn.Embedding(num_classes + 1, emb)  # the last row is "no label"
        self.time_mlp = nn.Sequential(nn.Linear(emb, emb), nn.SiLU())
        layers: list[nn.Module] = [nn.Linear(dim + emb, width), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.SiLU()]
        layers.append(nn.Linear(width, dim))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor, t: Tensor, label: Optional[Tensor] = None) -> Tensor:
        if label is None:
            label = torch.full((x.shape[0],), self.num_classes, device=x.device)
        elif label.min() < 0 or label.max() > self.num_classes:
            raise ValueError(f"label must be in 0..{self.num_classes - 1}, or {self.num_classes} (or None) for no label")
        h = self.time_mlp(sinusoidal_embedding(t, self.emb)) + self.label_emb(label)
        return self.body(torch.cat([x, h], dim=1))
