"""ILVR: iterative latent variable refinement (Choi et al. 2021).

Sample from an unconditional model, but after every step replace the sample's
low frequencies with those of a reference image y noised to the same level:

    x_{t-1} <- x'_{t-1} - phi_N(x'_{t-1}) + phi_N(y_{t-1}),   y_{t-1} ~ q(y_{t-1} | y)   (paper, eq. 8 / alg. 1)

phi_N is a low-pass filter: downsample by N, then upsample back. The result
shares the reference's coarse layout and colours (more of them for small N)
and has its own details. No training and no extra model: it is an
``on_step`` hook on the shared sampler.

Two filters:

* ``"exact"``: average-pool by N, then nearest upsampling. This is an
  orthogonal projection (phi(phi(x)) = phi(x)), so after a refined step
  phi_N(x) equals phi_N(y_{t-1}) exactly, and after a refined last step
  phi_N(x_0) = phi_N(y) to float precision, as the seed blog argues.
* ``"bicubic"``: the antialiased cubic resizer of the official code (here
  torch's ``interpolate(..., "bicubic", antialias=True)``), which is not a
  projection: the constraint then holds only approximately.

The refinement runs for the steps that start above ``stop`` (the official
``range_t``: steps from t <= stop run free, letting the model redraw fine
details). ``stop = -1`` refines every step, the last one included.
The official code noises the reference to the step's *start* level t; we
noise it to the level the step lands on, t_next, where the sample is.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.sampling import OnStep, StepState
from ..core.schedule import Schedule

Filter = Literal["exact", "bicubic"]

#: the official code's default stop step for 256 px faces (``range_t = 0``: every step but the last is refined)
OFFICIAL_STOP = 0


def lowpass(x: Tensor, factor: int, kind: Filter = "exact") -> Tensor:
    """phi_N(x): x (B, C, H, W) down by ``factor`` and back up to (H, W)."""
    if x.ndim != 4:
        raise ValueError(f"lowpass takes images (B, C, H, W), got shape {tuple(x.shape)}")
    H, W = x.shape[-2:]
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1 or H % factor or W % factor:
        divisors = [n for n in range(1, min(H, W) + 1) if H % n == 0 and W % n == 0]
        raise ValueError(f"factor N must be a positive integer dividing the image size {H}x{W} (one of {divisors}), got {factor!r}")
    if kind == "exact":
        return F.avg_pool2d(x, factor).repeat_interleave(factor, -2).repeat_interleave(factor, -1)
    if kind == "bicubic":
        small = F.interpolate(x, size=(H // factor, W // factor), mode="bicubic", antialias=True, align_corners=False)
        return F.interpolate(small, size=(H, W), mode="bicubic", align_corners=False)
    raise ValueError(f"kind must be 'exact' (average-pool + nearest, a projection) or 'bicubic', got {kind!r}")


def ilvr_hook(
    reference: Tensor,
    factor: int,
    schedule: Schedule,
    *,
    stop: int = -1,
    kind: Filter = "exact",
    generator: Optional[torch.Generator] = None,
) -> OnStep:
    """An ``on_step`` hook that gives the sample the low frequencies of ``reference`` (1 or B, C, H, W).

    Steps that start at t > ``stop`` are refined; pass it to ``sample_ddpm``
    or ``sample_ddim`` with a starting noise of the reference's size.
    """
    lowpass(reference, factor, kind)  # checks factor and kind before sampling starts
    if not isinstance(stop, int) or not -1 <= stop < schedule.T:
        raise ValueError(f"stop must be an integer step in -1..{schedule.T - 1} (-1 refines every step), got {stop!r}")

    def hook(state: StepState) -> Optional[Tensor]:
        if state.t <= stop:
            return None
        x = state.x_next
        if reference.shape[1:] != x.shape[1:] or reference.shape[0] not in (1, x.shape[0]):
            raise ValueError(f"reference has shape {tuple(reference.shape)}; the samples are {tuple(x.shape)}")
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        y = schedule.q_sample(reference.to(x).expand_as(x), state.t_next, noise)
        return x - lowpass(x, factor, kind) + lowpass(y, factor, kind)

    return hook
