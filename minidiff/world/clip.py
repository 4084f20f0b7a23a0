"""A small CLIP for the world: an image encoder and a text encoder trained contrastively on captions.

DiffusionCLIP and Pix2Pix-Zero need a model that maps images and text into
one space. This one is trained like CLIP (Radford et al. 2021): in a batch of
(image, caption) pairs, each image should be most similar to its own caption
and vice versa (a symmetric cross-entropy over the similarity matrix, with a
learned temperature). It is kept separate from the judge, so an edit that
fools CLIP is still caught by the referee.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.text_encoder import TextEncoder, TextEncoderConfig
from .captions import Tokenizer, caption
from .scenes import COLOURS, Scenes, with_attribute


class ImageEncoder(nn.Module):
    """A small CNN: (B, 3, 32, 32) in [-1, 1] -> (B, dim)."""

    def __init__(self, dim: int = 64, width: int = 32) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU(), nn.AvgPool2d(2))

        self.net = nn.Sequential(block(3, width), block(width, 2 * width), block(2 * width, 4 * width), nn.Flatten(), nn.Linear(4 * width * 16, dim))

    def forward(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1:] != (3, 32, 32):
            raise ValueError(f"the CLIP image encoder reads (B, 3, 32, 32) images, got {tuple(images.shape)}")
        return self.net(images)


class SmallCLIP(nn.Module):
    """``clip.encode_image(images)`` and ``clip.encode_text(ids, mask)``: unit vectors (B, dim) in one space."""

    def __init__(self, text: TextEncoderConfig, dim: int = 64) -> None:
        super().__init__()
        self.image = ImageEncoder(dim)
        self.text = TextEncoder(text)
        self.text_proj = nn.Linear(text.width, dim)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's initial temperature 0.07

    def encode_image(self, images: Tensor) -> Tensor:
        return F.normalize(self.image(images), dim=-1)

    def encode_text(self, ids: Tensor, mask: Tensor) -> Tensor:
        hidden = self.text(ids, mask)  # (B, L, width)
        end = mask.long().sum(1) - 1  # the <end> token sees the whole caption (causal attention)
        return F.normalize(self.text_proj(hidden[torch.arange(len(ids)), end]), dim=-1)

    def loss(self, images: Tensor, ids: Tensor, mask: Tensor, keys: Tensor | None = None) -> Tensor:
        """Symmetric InfoNCE over the batch (Radford et al. 2021, fig. 3).

        ``keys`` (B,) marks pairs that describe the same scene attributes; such
        pairs are all counted as matches (the target spreads over them), so two
        identical captions in a batch are not pushed apart.
        """
        logits = self.log_scale.exp().clamp(max=100) * self.encode_image(images) @ self.encode_text(ids, mask).T
        if keys is None:
            keys = torch.arange(len(images), device=images.device)
        same = (keys[:, None] == keys[None, :]).float()
        target = same / same.sum(1, keepdim=True)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


@torch.no_grad()
def clip_prefers(clip: SmallCLIP, images: Tensor, shown: Scenes, colour: str) -> Tensor:
    """(B,) bool: CLIP finds each image closer to its caption with the object in ``colour`` than with its own colour."""
    tok = Tokenizer()
    own = tok([caption(shown, i) for i in range(len(shown))])
    recoloured = with_attribute(shown, "colour", torch.full((len(shown),), COLOURS.index(colour)))
    other = tok([caption(recoloured, i) for i in range(len(shown))])
    f = clip.encode_image(images)
    return F.cosine_similarity(f, clip.encode_text(*other), dim=-1) > F.cosine_similarity(f, clip.encode_text(*own), dim=-1)
