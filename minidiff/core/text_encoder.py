"""A small text encoder: transformers' ``CLIPTextModel`` (the class Stable Diffusion uses), built from a config.

Nothing is downloaded: the model is constructed from a ``CLIPTextConfig``
sized for a vocabulary of a few dozen words and trained from scratch with
the diffusion model. Its last hidden states are the token embeddings the
UNet cross-attends to (Rombach et al. 2022, sec. 3.3).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from torch import Tensor, nn
from transformers import CLIPTextConfig, CLIPTextModel

from .denoisers import with_prediction, with_text_cfg
from .sampling import Denoiser
from .schedule import Prediction, Schedule
from .unet import UNet, UNetConfig


@dataclass(frozen=True)
class TextEncoderConfig:
    vocab_size: int
    max_tokens: int = 24
    width: int = 64
    layers: int = 2
    heads: int = 4
    pad_id: int = 0
    start_id: int = 1
    end_id: int = 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TextEncoder(nn.Module):
    """``encoder(ids (B, L), mask (B, L)) -> token embeddings (B, L, width)``."""

    def __init__(self, config: TextEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.clip = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=config.vocab_size,
                hidden_size=config.width,
                intermediate_size=4 * config.width,
                num_hidden_layers=config.layers,
                num_attention_heads=config.heads,
                max_position_embeddings=config.max_tokens,
                pad_token_id=config.pad_id,
                bos_token_id=config.start_id,
                eos_token_id=config.end_id,
            )
        )

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        if ids.ndim != 2 or ids.shape[1] > self.config.max_tokens:
            raise ValueError(f"ids must have shape (B, L <= {self.config.max_tokens}), got {tuple(ids.shape)}")
        if ids.min() < 0 or ids.max() >= self.config.vocab_size:
            raise ValueError(f"token ids must lie in 0..{self.config.vocab_size - 1}")
        return self.clip(input_ids=ids, attention_mask=mask.long()).last_hidden_state


class TextConditionedUNet(nn.Module):
    """A text encoder and a UNet that cross-attends to its token embeddings: the text-to-image base model.

    ``model(x_t, t, ids, mask)`` returns the network's raw output (eps, x0 or v,
    as ``model.prediction`` says) and is what training calls. Sampling and the
    methods use ``model.denoiser(...)``, which always returns eps, or call
    ``model.encode`` once and then ``model.unet`` on the embeddings.
    """

    def __init__(self, unet: UNetConfig, text: TextEncoderConfig, prediction: Prediction = "eps") -> None:
        super().__init__()
        if unet.context_dim != text.width:
            raise ValueError(f"the UNet's context_dim ({unet.context_dim}) must equal the text encoder's width ({text.width})")
        self.text = TextEncoder(text)
        self.unet = UNet(unet)
        self.prediction = prediction

    def encode(self, ids: Tensor, mask: Tensor) -> Tensor:
        """Token embeddings (B, L, width) of token ids (B, L)."""
        return self.text(ids, mask)

    def forward(self, x: Tensor, t: Tensor, ids: Tensor, mask: Tensor) -> Tensor:
        return self.unet(x, t, context=self.encode(ids, mask), context_mask=mask)

    def denoiser(
        self,
        schedule: Schedule,
        context: Tensor,
        null_context: Tensor,
        scale: float,
        context_mask: Tensor | None = None,
        null_mask: Tensor | None = None,
    ) -> Denoiser:
        """An eps-denoiser ``(x_t, t) -> eps`` with classifier-free guidance, whatever the net predicts.

        Guidance is applied to the raw outputs; for v or x0 outputs that is the
        same as guiding eps, since the conversion is linear in the output at fixed x_t.
        """
        guided = with_text_cfg(self.unet, context, null_context, scale, context_mask, null_mask)
        return with_prediction(guided, schedule, self.prediction)
