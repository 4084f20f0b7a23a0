"""A small text encoder: transformers' ``CLIPTextModel`` (the class Stable Diffusion uses), built from a config.

Nothing is downloaded: the model is constructed from a ``CLIPTextConfig``
sized for a vocabulary of a few dozen words and trained from scratch with
the diffusion model. Its last hidden states are the token embeddings the
UNet cross-attends to (Rombach et al. 2022, sec. 3.3).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn
from transformers import CLIPTextConfig, CLIPTextModel

if TYPE_CHECKING:
    from .unet import UNetConfig


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

    ``model(x_t, t, ids, mask) -> eps`` for training; methods that work on
    embeddings (null-text, Imagic) call ``model.encode`` once and then
    ``model.unet(x_t, t, context=..., context_mask=...)``.
    """

    def __init__(self, unet: "UNetConfig", text: TextEncoderConfig) -> None:
        super().__init__()
        from .unet import UNet

        if unet.context_dim != text.width:
            raise ValueError(f"the UNet's context_dim ({unet.context_dim}) must equal the text encoder's width ({text.width})")
        self.text = TextEncoder(text)
        self.unet = UNet(unet)

    def encode(self, ids: Tensor, mask: Tensor) -> Tensor:
        """Token embeddings (B, L, width) of token ids (B, L)."""
        return self.text(ids, mask)

    def forward(self, x: Tensor, t: Tensor, ids: Tensor, mask: Tensor) -> Tensor:
        return self.unet(x, t, context=self.encode(ids, mask), context_mask=mask)
