"""Samplers: DDPM ancestral sampling, DDIM, and DDIM inversion.

Every sampler is a plain function with the same first arguments
``(model, x, timesteps, schedule)``:

* ``model(x_t, t) -> eps`` is a denoiser: x_t (B, ...) and t (B,) integer
  steps in, predicted noise of x_t's shape out. Conditioning and guidance are
  bound beforehand (:mod:`minidiff.core.denoisers`).
* ``timesteps`` is a descending sequence of steps in ``0 .. T-1``
  (:meth:`Schedule.timesteps`); the sampler steps from each one to the next,
  and from the last one to the clean image (``t = -1``, alpha_bar = 1).
* around every network call the sampler publishes the step's index in
  ``timesteps`` and its t (:func:`minidiff.core.attention.at_step`), which
  attention controllers read from their site.
* ``on_step(state)`` is called after every step with a frozen
  :class:`StepState`; if it returns a tensor, that tensor replaces the
  sample the step produced. SDEdit's masks, ILVR, Direct Inversion's offsets
  and trajectory recording are all such hooks.

Nothing is kept between calls: the same inputs, generator seed included, give
the same outputs. All work happens on ``x``'s device and in its dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .attention import at_step
from .schedule import CLEAN, Schedule

Denoiser = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class StepState:
    """What one step saw and did. ``x_next`` is its result, at timestep ``t_next``.

    In sampling ``t_next < t`` (x_next is the paper's x_{t-1}); in inversion
    ``t_next > t``. ``eps`` is the model's prediction used for the step, and
    ``x0_pred`` the clean image it implies.
    """

    index: int
    t: int
    t_next: int
    x_t: Tensor
    x_next: Tensor
    x0_pred: Tensor
    eps: Tensor


OnStep = Callable[[StepState], Optional[Tensor]]


# -- single steps: pure functions ----------------------------------------------


def ddim_step(
    x_t: Tensor,
    eps: Tensor,
    alpha_bar_t: Tensor,
    alpha_bar_prev: Tensor,
    eta: float = 0.0,
    noise: Optional[Tensor] = None,
) -> tuple[Tensor, Tensor]:
    """DDIM update (Song et al. 2021, eq. 12). Returns ``(x_prev, x0_pred)``.

    x_prev = sqrt(a_prev) x0_pred + sqrt(1 - a_prev - sigma^2) eps + sigma noise,
    sigma = eta sqrt((1 - a_prev) / (1 - a_t)) sqrt(1 - a_t / a_prev)   (eq. 16).
    ``eta = 0`` is deterministic; ``eta = 1`` is DDPM's posterior. With
    ``alpha_bar_prev < alpha_bar_t`` and eta = 0 it is the inversion step.
    """
    if not 0 <= eta <= 1:  # beyond 1 the noise would outgrow the step and DDIM's direction term is clipped away
        raise ValueError(f"eta must be in [0, 1] (0: deterministic DDIM, 1: DDPM's posterior), got {eta}")
    x0_pred = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    if eta == 0:
        return alpha_bar_prev.sqrt() * x0_pred + (1 - alpha_bar_prev).sqrt() * eps, x0_pred
    if noise is None:
        raise ValueError("ddim_step with eta > 0 needs noise")
    var = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)
    sigma = eta * var.sqrt()
    direction = (1 - alpha_bar_prev - sigma**2).clamp(min=0).sqrt() * eps
    return alpha_bar_prev.sqrt() * x0_pred + direction + sigma * noise, x0_pred


def ddpm_step(
    x_t: Tensor,
    eps: Tensor,
    alpha_bar_t: Tensor,
    alpha_bar_prev: Tensor,
    noise: Optional[Tensor] = None,
) -> tuple[Tensor, Tensor]:
    """Ancestral step: sample the posterior q(x_prev | x_t, x0_pred) (DDPM eqs. 6-7).

    mean = sqrt(a_prev) beta / (1 - a_t) x0_pred + sqrt(alpha) (1 - a_prev) / (1 - a_t) x_t,
    var  = (1 - a_prev) / (1 - a_t) beta,   with alpha = a_t / a_prev and beta = 1 - alpha,
    so that strided timesteps work too. ``noise=None`` returns the mean (used
    for the last step). Returns ``(x_prev, x0_pred)``.
    """
    x0_pred = (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()
    alpha = alpha_bar_t / alpha_bar_prev
    beta = 1 - alpha
    mean = (alpha_bar_prev.sqrt() * beta * x0_pred + alpha.sqrt() * (1 - alpha_bar_prev) * x_t) / (1 - alpha_bar_t)
    if noise is None:
        return mean, x0_pred
    var = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta
    return mean + var.clamp(min=1e-20).sqrt() * noise, x0_pred


# -- the shared loop -------------------------------------------------------------

def check_timesteps(timesteps: Sequence[int] | Tensor, schedule: Schedule) -> Tensor:
    """Validate a strictly descending, non-empty sequence of steps in 0..T-1."""
    ts = torch.as_tensor(timesteps)
    if ts.ndim != 1 or len(ts) == 0:
        raise ValueError(f"timesteps must be a non-empty 1-D sequence, got shape {tuple(ts.shape)}")
    ts = schedule.check_t(ts)
    if (ts < 0).any():
        raise ValueError("timesteps must not contain -1: the sampler ends at the clean image by itself")
    if len(ts) > 1 and not (ts[1:] < ts[:-1]).all():
        raise ValueError("timesteps must be strictly descending, e.g. schedule.timesteps(50)")
    return ts


def _randn(x: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _walk(
    model: Denoiser,
    x: Tensor,
    steps: list[tuple[int, int, int]],
    schedule: Schedule,
    update: Callable[[int, Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]],
    on_step: Optional[OnStep],
    progress: bool,
    published: Optional[Sequence[int]] = None,
) -> Tensor:
    """Walk ``x`` through ``steps`` = [(t_model, t_from, t_to), ...]; ``update(i, x, eps, a_from, a_to)``.
    ``published[i]``: the index in the sampler's timesteps that step i's network call belongs to (default i)."""
    if not x.is_floating_point():
        raise ValueError(f"x must be a float tensor, got dtype {x.dtype}: use x.float()")
    if not torch.isfinite(x).all():  # one check per call, before the loop
        raise ValueError("x holds NaN or infinity: a sampler cannot start from it")
    t_all = torch.tensor([s for step in steps for s in step[1:]])
    alpha_bars = schedule.at(t_all, like=x).reshape(len(steps), 2)  # cast once, on x's device
    t_model = torch.tensor([s[0] for s in steps], device=x.device)
    for i, (t_net, t_from, t_to) in enumerate(tqdm(steps, disable=not progress, leave=False)):
        with at_step(i if published is None else published[i], t_net):
            eps = model(x, t_model[i].expand(x.shape[0]))
        if eps.shape != x.shape:
            raise ValueError(f"the denoiser returned shape {tuple(eps.shape)} for an input of shape {tuple(x.shape)}")
        x_next, x0_pred = update(i, x, eps, alpha_bars[i, 0], alpha_bars[i, 1])
        if on_step is not None:
            replaced = on_step(StepState(i, t_from, t_to, x, x_next, x0_pred, eps))
            if replaced is not None:
                if replaced.shape != x.shape:
                    raise ValueError(f"on_step returned shape {tuple(replaced.shape)}, expected {tuple(x.shape)}")
                x_next = replaced
        x = x_next
    return x


def _sampling_steps(timesteps: Sequence[int] | Tensor, schedule: Schedule) -> list[tuple[int, int, int]]:
    ts = check_timesteps(timesteps, schedule).tolist()
    return [(t, t, t_prev) for t, t_prev in zip(ts, ts[1:] + [CLEAN])]


# -- samplers ----------------------------------------------------------------------


def sample_ddim(
    model: Denoiser,
    x: Tensor,
    timesteps: Sequence[int] | Tensor,
    schedule: Schedule,
    *,
    eta: float = 0.0,
    on_step: Optional[OnStep] = None,
    generator: Optional[torch.Generator] = None,
    progress: bool = False,
) -> Tensor:
    """DDIM sampling from x at ``timesteps[0]`` down to the clean image (Song et al. 2021, eq. 12)."""
    if not 0 <= eta <= 1:  # beyond 1 the noise would outgrow the step and DDIM's direction term is clipped away
        raise ValueError(f"eta must be in [0, 1] (0: deterministic DDIM, 1: DDPM's posterior), got {eta}")
    steps = _sampling_steps(timesteps, schedule)

    def update(i: int, x: Tensor, eps: Tensor, a_t: Tensor, a_prev: Tensor) -> tuple[Tensor, Tensor]:
        noise = _randn(x, generator) if eta > 0 else None
        return ddim_step(x, eps, a_t, a_prev, eta, noise)

    return _walk(model, x, steps, schedule, update, on_step, progress)


def sample_ddpm(
    model: Denoiser,
    x: Tensor,
    timesteps: Sequence[int] | Tensor,
    schedule: Schedule,
    *,
    on_step: Optional[OnStep] = None,
    generator: Optional[torch.Generator] = None,
    progress: bool = False,
) -> Tensor:
    """Ancestral DDPM sampling (Ho et al. 2020, algorithm 2); no noise is added on the last step."""
    steps = _sampling_steps(timesteps, schedule)

    def update(i: int, x: Tensor, eps: Tensor, a_t: Tensor, a_prev: Tensor) -> tuple[Tensor, Tensor]:
        last = i == len(steps) - 1
        return ddpm_step(x, eps, a_t, a_prev, None if last else _randn(x, generator))

    return _walk(model, x, steps, schedule, update, on_step, progress)


def invert_ddim(
    model: Denoiser,
    x0: Tensor,
    timesteps: Sequence[int] | Tensor,
    schedule: Schedule,
    *,
    on_step: Optional[OnStep] = None,
    progress: bool = False,
) -> Tensor:
    """DDIM inversion: run the deterministic DDIM update backwards, from x0 up to ``timesteps[0]``.

    Step k goes from the sampler's destination level up to its source level t,
    with eps evaluated at the *current* latent but the *destination* step t,
    assuming eps(x_{t_prev}, t) ~ eps(x_t, t) (Song et al. 2021, sec. 4.3;
    Mokady et al. 2023, eq. 3). Returns the whole trajectory, aligned with the
    sampler: shape (n + 1, B, ...), ``traj[i]`` the latent at ``timesteps[i]``
    and ``traj[n] = x0``. ``sample_ddim(model, traj[0], timesteps, ...)``
    retraces it when the assumption holds.
    """
    if x0.ndim == 4:
        check_image_range(x0)
    sampling = _sampling_steps(timesteps, schedule)
    steps = [(t, t_prev, t) for (_, t, t_prev) in reversed(sampling)]
    trajectory = [x0]

    def update(i: int, x: Tensor, eps: Tensor, a_from: Tensor, a_to: Tensor) -> tuple[Tensor, Tensor]:
        return ddim_step(x, eps, a_from, a_to)

    def record(state: StepState) -> Optional[Tensor]:
        replaced = on_step(state) if on_step is not None else None
        trajectory.append(state.x_next if replaced is None else replaced)
        return replaced

    # the network is called at timesteps[n - 1 - i] in inversion step i: that is the step index it publishes
    _walk(model, x0, steps, schedule, update, record, progress, published=list(range(len(steps) - 1, -1, -1)))
    return torch.stack(trajectory[::-1])


def check_image_range(x: Tensor, limit: float = 1.5) -> None:
    """Refuse an image batch that cannot be in the models' range [-1, 1].

    A little overshoot is allowed (unclamped samples reach about 1.1); anything beyond ``limit``, or an
    integer tensor, is almost surely [0, 255] or a forgotten normalisation, which would invert to a wrong
    picture without any other sign.
    """
    if not x.is_floating_point():
        raise ValueError(f"images must be a float tensor in [-1, 1], got dtype {x.dtype}: use x.float() / 127.5 - 1 for uint8 pixels")
    lo, hi = x.min().item(), x.max().item()
    if lo < -limit or hi > limit:
        raise ValueError(f"images must be in [-1, 1] (the range the models were trained on), got values in [{lo:.3g}, {hi:.3g}]; "
                         "for pixels in [0, 255] use x / 127.5 - 1, for [0, 1] use 2 * x - 1")


# -- small hooks ---------------------------------------------------------------------


class Recorder:
    """An ``on_step`` hook that keeps every step's result and x0 prediction; changes nothing.

    After sampling, ``recorder.x`` is a (n, B, ...) tensor of the step results
    and ``recorder.x0_pred`` the matching x0 predictions.
    """

    def __init__(self) -> None:
        self._x: list[Tensor] = []
        self._x0: list[Tensor] = []
        self.timesteps: list[int] = []

    def __call__(self, state: StepState) -> None:
        self._x.append(state.x_next)
        self._x0.append(state.x0_pred)
        self.timesteps.append(state.t_next)

    @property
    def x(self) -> Tensor:
        return torch.stack(self._x)

    @property
    def x0_pred(self) -> Tensor:
        return torch.stack(self._x0)


def chain(*hooks: Optional[OnStep]) -> OnStep:
    """Run hooks in order; each sees the sample as the previous hooks left it."""

    def run(state: StepState) -> Optional[Tensor]:
        replaced = None
        for hook in hooks:
            if hook is None:
                continue
            out = hook(state)
            if out is not None:
                replaced = out
                state = StepState(state.index, state.t, state.t_next, state.x_t, out, state.x0_pred, state.eps)
        return replaced

    return run
