"""DiffusionCLIP: text-guided editing by fine-tuning the diffusion model (Kim et al. 2022).

1. DDIM-invert the source images to a middle level t0 (deterministic, so the
   latents x_t0 keep the images' content).
2. Fine-tune a copy of the model so that DDIM generation from x_t0, in few
   steps, produces images x_hat whose CLIP embedding moved from the source
   image's in the direction from the source text to the target text:

       L = w_clip (1 - cos(E_I(x_hat) - E_I(x), E_T(y_tgt) - E_T(y_src))) + w_l1 |x_hat - x|_1

   (the *directional* CLIP loss; a global loss, 1 - cos(E_I(x_hat), E_T(y_tgt)),
   drives every image to the same CLIP-preferred picture). The gradient flows
   through the whole few-step generation.
3. Edit: invert to t0 and generate with the fine-tuned model, with more steps
   than in training.

The CLIP encoders come in as callables, so this module does not depend on
which CLIP is used (the course uses its own small one, never the judge).
Defaults follow the official README's examples (t0 = 500 of 1000, 40
inversion steps, 6 generation steps in training, 40 at test; approx.).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Literal, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.sampling import Denoiser, invert_ddim, sample_ddim
from ..core.schedule import Schedule

#: the noise level edits start from, and the step counts (official examples: t0 = 500, 40 / 6 / 40 steps)
T0 = 500
INVERSION_STEPS = 40
TRAIN_STEPS = 6
TEST_STEPS = 40
#: loss weights and fine-tuning learning rate (ours). Measured on 8 red scenes, red -> blue, with the course's small
#: CLIP: at 2e-5 (8 iterations) neither CLIP nor the judge sees any change; at 1e-4 and 4e-4 (8 iterations, t0 = 400)
#: the loss falls but the judge sees none turn blue; at 1e-3 (12 iterations, t0 = 500) CLIP reads every output as blue
#: and the judge still none (with L1_WEIGHT 0 the same). ``python -m minidiff results diffusion_clip`` is the full run.
CLIP_WEIGHT = 3.0
L1_WEIGHT = 0.3
LEARNING_RATE = 1e-3


def partial_timesteps(t0: int, steps: int, schedule: Schedule) -> Tensor:
    """``steps`` evenly spaced descending timesteps from t0 (included) towards 0."""
    if not 0 < t0 < schedule.T:
        raise ValueError(f"t0 must be a step in 1..{schedule.T - 1}, got {t0}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    return torch.linspace(t0, 0, steps + 1)[:-1].round().long().unique_consecutive()


def directional_clip_loss(image_features: Tensor, source_features: Tensor, text_direction: Tensor) -> Tensor:
    """1 - cos(E_I(x_hat) - E_I(x), delta_T), per image (B,). text_direction: (1 or B, D)."""
    return 1 - F.cosine_similarity(image_features - source_features, text_direction.expand_as(image_features), dim=-1)


def global_clip_loss(image_features: Tensor, target_text: Tensor) -> Tensor:
    """1 - cos(E_I(x_hat), E_T(y_tgt)) per image (B,): the loss the paper compares against."""
    return 1 - F.cosine_similarity(image_features, target_text.expand_as(image_features), dim=-1)


@dataclass
class FineTuned:
    model: nn.Module
    losses: list[float]


def diffusion_clip_finetune(
    model: nn.Module,
    make_denoiser: Callable[[nn.Module], Denoiser],
    x0: Tensor,
    encode_image: Callable[[Tensor], Tensor],
    text_direction: Tensor,
    schedule: Schedule,
    *,
    iterations: int = 10,
    loss: Literal["directional", "global"] = "directional",
    target_text: Optional[Tensor] = None,
    t0: int = T0,
) -> FineTuned:
    """Fine-tune a copy of ``model`` on source images x0 (B, C, H, W).

    make_denoiser(model) -> the denoiser to train through (e.g. the source caption at guidance 1);
    encode_image: CLIP's image encoder; text_direction: E_T(target) - E_T(source), (1 or B, D);
    target_text: E_T(target), needed for ``loss="global"``.
    """
    if loss == "global" and target_text is None:
        raise ValueError("the global CLIP loss needs target_text = E_T(target)")
    with torch.no_grad():
        x_t0 = invert_ddim(make_denoiser(model), x0, partial_timesteps(t0, INVERSION_STEPS, schedule), schedule)[0]
        source_features = encode_image(x0)
    tuned = copy.deepcopy(model).train().requires_grad_(True)
    opt = torch.optim.Adam(tuned.parameters(), lr=LEARNING_RATE)
    train_ts = partial_timesteps(t0, TRAIN_STEPS, schedule)
    losses = []
    for _ in range(iterations):
        x_hat = sample_ddim(make_denoiser(tuned), x_t0, train_ts, schedule)  # the shared sampler; gradients flow through it
        features = encode_image(x_hat)
        clip_term = directional_clip_loss(features, source_features, text_direction) if loss == "directional" else global_clip_loss(features, target_text)
        total = CLIP_WEIGHT * clip_term.mean() + L1_WEIGHT * (x_hat - x0).abs().mean()
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(total.item())
    return FineTuned(tuned.eval().requires_grad_(False), losses)


@torch.no_grad()
def diffusion_clip_edit(model: nn.Module, make_denoiser: Callable[[nn.Module], Denoiser], tuned: nn.Module, x0: Tensor,
                        schedule: Schedule, *, t0: int = T0, steps: int = TEST_STEPS) -> Tensor:
    """Invert x0 to t0 with the original model and generate with the fine-tuned one."""
    x_t0 = invert_ddim(make_denoiser(model), x0, partial_timesteps(t0, INVERSION_STEPS, schedule), schedule)[0]
    return sample_ddim(make_denoiser(tuned), x_t0, partial_timesteps(t0, steps, schedule), schedule)
