"""Noise schedules as plain data, and the forward process.

Notation follows Ho et al. 2020 (DDPM): ``beta_t`` is the per-step noise
variance, ``alpha_bar_t = prod_{s<=t} (1 - beta_s)``, and the forward process is

    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)      (DDPM eq. 4)

Timesteps are integers ``0 .. T-1`` (the indexing diffusers uses). The clean
image sits one step before the first one; we write it ``t = -1`` and give it
``alpha_bar = 1``, so a sampler's last step always goes from some ``t`` to
``-1``.

The schedule is computed in float64 once and cast to the sample's dtype and
device only where it is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

Spacing = Literal["leading", "trailing", "linspace"]
Prediction = Literal["eps", "x0", "v"]

#: the timestep of the clean image, ``alpha_bar = 1``
CLEAN = -1


@dataclass(frozen=True, eq=False)
class Schedule:
    """A discrete noise schedule: ``alpha_bar[t]`` for ``t = 0 .. T-1`` (float64)."""

    alpha_bar: Tensor

    def __post_init__(self) -> None:
        ab = self.alpha_bar
        if ab.ndim != 1 or len(ab) < 2:
            raise ValueError(f"alpha_bar must be a 1-D tensor of length >= 2, got shape {tuple(ab.shape)}")
        if ab.dtype != torch.float64:
            object.__setattr__(self, "alpha_bar", ab.to(torch.float64))
            ab = self.alpha_bar
        if not (ab > 0).all() or not (ab < 1).all() or not (ab[1:] < ab[:-1]).all():
            raise ValueError("alpha_bar must lie in (0, 1) and decrease strictly with t")

    @property
    def T(self) -> int:
        """Number of training timesteps."""
        return len(self.alpha_bar)

    @property
    def betas(self) -> Tensor:
        """beta_t = 1 - alpha_bar_t / alpha_bar_{t-1} (float64, shape (T,))."""
        prev = torch.cat([self.alpha_bar.new_ones(1), self.alpha_bar[:-1]])
        return 1 - self.alpha_bar / prev

    # -- looking up alpha_bar --------------------------------------------------

    def check_t(self, t: Tensor | int) -> Tensor:
        """Return ``t`` as a long tensor, raising if any entry is outside ``-1 .. T-1``."""
        t = torch.as_tensor(t)
        if t.is_floating_point():
            raise TypeError(f"timesteps must be integers in -1..{self.T - 1}, got dtype {t.dtype}")
        t = t.long()
        if t.numel() and (t.min() < CLEAN or t.max() > self.T - 1):
            raise ValueError(
                f"timesteps must lie in -1..{self.T - 1} (-1 is the clean image), "
                f"got values from {int(t.min())} to {int(t.max())}"
            )
        return t

    def at(self, t: Tensor | int, like: Tensor | None = None) -> Tensor:
        """alpha_bar at integer timesteps ``t`` (``-1`` gives 1).

        With ``like`` the result is cast to its dtype and device, and shaped
        ``(B, 1, 1, ...)`` so that it broadcasts against a batch ``like`` of
        shape ``(B, ...)``; ``t`` is then a scalar or has shape ``(B,)``.
        """
        t = self.check_t(t)
        padded = torch.cat([self.alpha_bar.new_ones(1), self.alpha_bar])
        if like is None:
            return padded[t.cpu() + 1]
        # cast before moving: some devices (MPS) have no float64
        ab = padded.to(dtype=like.dtype).to(like.device)[t.to(like.device) + 1]
        if ab.ndim == 0:
            return ab
        return ab.reshape(-1, *([1] * (like.ndim - 1)))

    def snr(self, t: Tensor | int) -> Tensor:
        """Signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t) (Kingma et al. 2021)."""
        ab = self.at(t)
        return ab / (1 - ab)

    # -- the forward process and the three parameterisations ------------------

    def q_sample(self, x0: Tensor, t: Tensor | int, noise: Tensor) -> Tensor:
        """Sample x_t ~ q(x_t | x_0) with the given noise (DDPM eq. 4). Shapes (B, ...)."""
        _same_shape(x0, noise, "x0", "noise")
        ab = self.at(t, like=x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def predict_x0(self, x_t: Tensor, t: Tensor | int, eps: Tensor) -> Tensor:
        """x0 = (x_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar) (DDPM eq. 15)."""
        _same_shape(x_t, eps, "x_t", "eps")
        ab = self.at(t, like=x_t)
        return (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()

    def predict_eps(self, x_t: Tensor, t: Tensor | int, x0: Tensor) -> Tensor:
        """eps = (x_t - sqrt(alpha_bar) x0) / sqrt(1 - alpha_bar)."""
        _same_shape(x_t, x0, "x_t", "x0")
        ab = self.at(t, like=x_t)
        return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()

    def v_target(self, x0: Tensor, t: Tensor | int, eps: Tensor) -> Tensor:
        """v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0 (Salimans & Ho 2022, sec. 4)."""
        ab = self.at(t, like=x0)
        return ab.sqrt() * eps - (1 - ab).sqrt() * x0

    def eps_from(self, output: Tensor, x_t: Tensor, t: Tensor | int, prediction: Prediction) -> Tensor:
        """Convert a network output of kind ``prediction`` to the noise eps."""
        if prediction == "eps":
            return output
        if prediction == "x0":
            return self.predict_eps(x_t, t, output)
        if prediction == "v":
            ab = self.at(t, like=x_t)
            return ab.sqrt() * output + (1 - ab).sqrt() * x_t
        raise ValueError(f"prediction must be one of 'eps', 'x0', 'v', got {prediction!r}")

    def target(self, x0: Tensor, t: Tensor | int, eps: Tensor, prediction: Prediction) -> Tensor:
        """The regression target a network of kind ``prediction`` is trained on."""
        if prediction == "eps":
            return eps
        if prediction == "x0":
            return x0
        if prediction == "v":
            return self.v_target(x0, t, eps)
        raise ValueError(f"prediction must be one of 'eps', 'x0', 'v', got {prediction!r}")

    # -- sampling timesteps ----------------------------------------------------

    def timesteps(self, num_steps: int, spacing: Spacing = "leading") -> Tensor:
        """Descending integer timesteps for a ``num_steps``-step sampler.

        ``leading``: 0, k, 2k, ... reversed, with k = T // num_steps (DDIM paper,
        diffusers' default); ``trailing``: ends at T-1 (Lin et al. 2024, table 2);
        ``linspace``: evenly from T-1 down to 0. The sampler goes from each
        timestep to the next one, and from the last one to -1 (the clean image).
        """
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or not 1 <= num_steps <= self.T:
            raise ValueError(f"num_steps must be an integer in 1..{self.T}, got {num_steps!r}")
        T = self.T
        if spacing == "leading":
            ts = torch.arange(num_steps) * (T // num_steps)
        elif spacing == "trailing":
            ts = (torch.arange(T, 0, -T / num_steps, dtype=torch.float64).round().long() - 1).flip(0)
        elif spacing == "linspace":
            ts = torch.linspace(0, T - 1, num_steps, dtype=torch.float64).round().long()
        else:
            raise ValueError(f"spacing must be 'leading', 'trailing' or 'linspace', got {spacing!r}")
        return ts.flip(0).long()


def _same_shape(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


# -- schedule constructors ------------------------------------------------------


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """Linear betas from ``beta_start`` to ``beta_end`` (DDPM, sec. 4)."""
    if not 0 < beta_start < beta_end < 1:
        raise ValueError(f"need 0 < beta_start < beta_end < 1, got {beta_start}, {beta_end}")
    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    return Schedule(torch.cumprod(1 - betas, 0))


def scaled_linear_schedule(T: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> Schedule:
    """Linear in sqrt(beta), the schedule of Stable Diffusion (Rombach et al. 2022)."""
    if not 0 < beta_start < beta_end < 1:
        raise ValueError(f"need 0 < beta_start < beta_end < 1, got {beta_start}, {beta_end}")
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float64) ** 2
    return Schedule(torch.cumprod(1 - betas, 0))


#: offset that keeps beta_0 from being too small (Nichol & Dhariwal 2021, eq. 17)
COSINE_OFFSET = 0.008
#: largest beta allowed near t = T, to avoid a singularity (Nichol & Dhariwal 2021, sec. 3.2)
COSINE_MAX_BETA = 0.999


def cosine_schedule(T: int = 1000, s: float = COSINE_OFFSET, max_beta: float = COSINE_MAX_BETA) -> Schedule:
    """alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) * pi/2), betas clipped (Nichol & Dhariwal 2021, eq. 17)."""

    def f(u: Tensor) -> Tensor:
        return torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    grid = torch.arange(T + 1, dtype=torch.float64) / T
    betas = (1 - f(grid[1:]) / f(grid[:-1])).clamp(max=max_beta)
    return Schedule(torch.cumprod(1 - betas, 0))
