"""A small UNet for small images, built up piece by piece.

embedding -> residual block -> attention block -> config -> UNet.

It follows Ho et al. 2020 and Nichol & Dhariwal 2021 (residual blocks with a
scale-shift from the time embedding, attention at low resolutions, skip
connections between the halves), with the switches later chapters need:

* ``time_input="noise_level"`` conditions on sqrt(alpha_bar), a continuous
  noise level, instead of the integer step (SR3, Saharia et al. 2021, sec. 2.4);
* ``cond_channels`` extra input channels for concatenated conditioning
  (SR3's upsampled low-resolution image);
* ``context_dim`` adds cross-attention over a sequence of token embeddings
  (text conditioning as in Rombach et al. 2022), and ``pooled_context`` also
  adds their mean to the time embedding (a global path, as Imagen's pooled
  text embedding, Saharia et al. 2022, sec. 2.3);
* ``cross_attention_resolutions`` adds blocks with cross-attention but no
  self-attention, where self-attention over every pixel pair would cost too much
  (the finest level), so the words reach the pixels that draw edges and corners;
* every attention module is named and can take a controller
  (:mod:`minidiff.core.attention`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import Attention

#: noise levels sqrt(alpha_bar) in [0, 1] are scaled by this before the sinusoidal
#: embedding, so that they span the same range of phases as integer steps 0..1000
NOISE_LEVEL_SCALE = 1000.0


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Transformer position encoding of a (B,) tensor of (possibly fractional) steps -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, then a scale and shift from the embedding, -> conv; plus a skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift  # scale-shift norm (Nichol & Dhariwal 2021)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Self-attention (unless ``self_attention=False``), optional cross-attention, and an MLP over the pixels of a
    feature map.

    The layout of Stable Diffusion's transformer block (pre-LayerNorm,
    residual around each part), without the VAE. Its attention modules are
    named ``{name}.self`` and ``{name}.cross``.
    """

    def __init__(self, name: str, channels: int, heads: int, resolution: int, groups: int, context_dim: Optional[int],
                 self_attention: bool = True) -> None:
        super().__init__()
        if not self_attention and context_dim is None:
            raise ValueError(f"{name}: a block without self-attention needs cross-attention (context_dim)")
        self.norm = nn.GroupNorm(groups, channels)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.self_attn = None
        if self_attention:
            self.norm_self = nn.LayerNorm(channels)
            self.self_attn = Attention(f"{name}.self", channels, heads, resolution)
        self.cross_attn = None
        if context_dim is not None:
            self.norm_cross = nn.LayerNorm(channels)
            self.cross_attn = Attention(f"{name}.cross", channels, heads, resolution, context_dim)
        self.norm_mlp = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 4 * channels), nn.GELU(), nn.Linear(4 * channels, channels))
        self.proj_out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: Tensor, context: Optional[Tensor], key_mask: Optional[Tensor]) -> Tensor:
        B, C, H, W = x.shape
        h = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)  # (B, HW, C)
        if self.self_attn is not None:
            h = h + self.self_attn(self.norm_self(h))
        if self.cross_attn is not None:
            h = h + self.cross_attn(self.norm_cross(h), context, key_mask)
        h = h + self.mlp(self.norm_mlp(h))
        return x + self.proj_out(h.transpose(1, 2).reshape(B, C, H, W))


@dataclass(frozen=True)
class UNetConfig:
    """Everything that fixes the network's shape. Saved as JSON next to the weights."""

    image_size: int = 32
    in_channels: int = 3
    out_channels: int = 3
    cond_channels: int = 0  # extra channels concatenated to the input (SR3)
    channels: int = 64  # width of the first level
    channel_mults: tuple[int, ...] = (1, 2, 2)  # one entry per resolution level
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (8,)  # feature-map sides that get attention
    cross_attention_resolutions: tuple[int, ...] = ()  # sides that get cross-attention without self-attention
    heads: int = 4
    context_dim: Optional[int] = None  # token-embedding width for cross-attention
    pooled_context: bool = False  # add the mean token embedding to the time embedding
    time_input: Literal["timestep", "noise_level"] = "timestep"
    dropout: float = 0.0
    groups: int = 8

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel_mults", tuple(self.channel_mults))
        object.__setattr__(self, "attention_resolutions", tuple(self.attention_resolutions))
        object.__setattr__(self, "cross_attention_resolutions", tuple(self.cross_attention_resolutions))
        levels = len(self.channel_mults)
        if self.image_size % 2 ** (levels - 1):
            raise ValueError(f"image_size {self.image_size} must be divisible by 2**{levels - 1} for {levels} levels")
        if self.time_input not in ("timestep", "noise_level"):
            raise ValueError(f"time_input must be 'timestep' or 'noise_level', got {self.time_input!r}")
        for m in self.channel_mults:
            if (self.channels * m) % self.groups:
                raise ValueError(f"width {self.channels * m} is not divisible by groups={self.groups}")
        if self.pooled_context and self.context_dim is None:
            raise ValueError("pooled_context needs context_dim")
        if self.cross_attention_resolutions and self.context_dim is None:
            raise ValueError("cross_attention_resolutions needs context_dim")
        both = set(self.attention_resolutions) & set(self.cross_attention_resolutions)
        if both:
            raise ValueError(f"resolutions {sorted(both)} are in both attention_resolutions (self and cross) and "
                             "cross_attention_resolutions (cross only); name each side once")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "UNetConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown UNetConfig fields {sorted(unknown)}; accepted: {sorted(known)}")
        return cls(**d)


class UNet(nn.Module):
    """``UNet(config)(x, t, cond=None, context=None, context_mask=None) -> output (B, out_channels, H, W)``.

    x: (B, in_channels, S, S) with S = config.image_size. t: (B,) or scalar;
    integer steps for ``time_input="timestep"``, sqrt(alpha_bar) in [0, 1] for
    ``"noise_level"``. cond: (B, cond_channels, S, S). context: (B, L,
    context_dim) token embeddings, context_mask: (B, L) bool, True for real tokens.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = c = config
        emb_dim = 4 * c.channels
        self.time_mlp = nn.Sequential(nn.Linear(c.channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.pool_proj = nn.Linear(c.context_dim, emb_dim) if c.pooled_context else None
        self.conv_in = nn.Conv2d(c.in_channels + c.cond_channels, c.channels, 3, padding=1)

        def attention(name: str, ch: int, res: int) -> Optional[AttentionBlock]:
            if res in c.attention_resolutions:
                return AttentionBlock(name, ch, c.heads, res, c.groups, c.context_dim)
            if res in c.cross_attention_resolutions:
                return AttentionBlock(name, ch, c.heads, res, c.groups, c.context_dim, self_attention=False)
            return None

        # Down path: at each level num_res_blocks blocks, then halve the resolution.
        self.down = nn.ModuleList()
        skips, ch, res = [c.channels], c.channels, c.image_size
        for level, mult in enumerate(c.channel_mults):
            for i in range(c.num_res_blocks):
                block = nn.ModuleDict({"res": ResBlock(ch, c.channels * mult, emb_dim, c.groups, c.dropout)})
                ch = c.channels * mult
                if (a := attention(f"down.{level}.attn{i}", ch, res)) is not None:
                    block["attn"] = a
                self.down.append(block)
                skips.append(ch)
            if level < len(c.channel_mults) - 1:
                self.down.append(nn.ModuleDict({"downsample": nn.Conv2d(ch, ch, 3, stride=2, padding=1)}))
                skips.append(ch)
                res //= 2

        self.mid_res1 = ResBlock(ch, ch, emb_dim, c.groups, c.dropout)
        self.mid_attn = AttentionBlock("mid.attn", ch, c.heads, res, c.groups, c.context_dim)
        self.mid_res2 = ResBlock(ch, ch, emb_dim, c.groups, c.dropout)

        # Up path: mirror image, each block eats one skip connection.
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c.channel_mults))):
            for i in range(c.num_res_blocks + 1):
                block = nn.ModuleDict({"res": ResBlock(ch + skips.pop(), c.channels * mult, emb_dim, c.groups, c.dropout)})
                ch = c.channels * mult
                if (a := attention(f"up.{level}.attn{i}", ch, res)) is not None:
                    block["attn"] = a
                self.up.append(block)
            if level > 0:
                self.up.append(nn.ModuleDict({"upsample": nn.Conv2d(ch, ch, 3, padding=1)}))
                res *= 2

        self.norm_out = nn.GroupNorm(c.groups, ch)
        self.conv_out = nn.Conv2d(ch, c.out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def _check_inputs(self, x: Tensor, t: Tensor, cond: Optional[Tensor], context: Optional[Tensor]) -> Tensor:
        c = self.config
        S = c.image_size
        if x.ndim != 4 or x.shape[1:] != (c.in_channels, S, S):
            raise ValueError(f"x must have shape (B, {c.in_channels}, {S}, {S}), got {tuple(x.shape)}")
        B = x.shape[0]
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(B)
        if t.shape != (B,):
            raise ValueError(f"t must be a scalar or have shape ({B},), got {tuple(t.shape)}")
        if c.time_input == "noise_level" and (not t.is_floating_point() or t.min() < 0 or t.max() > 1):
            raise ValueError("this UNet is conditioned on the noise level: t must be floats sqrt(alpha_bar) in [0, 1]")
        if c.cond_channels and (cond is None or cond.shape != (B, c.cond_channels, S, S)):
            got = None if cond is None else tuple(cond.shape)
            raise ValueError(f"cond must have shape ({B}, {c.cond_channels}, {S}, {S}), got {got}")
        if not c.cond_channels and cond is not None:
            raise ValueError("this UNet takes no cond channels (cond_channels=0)")
        if c.context_dim is not None and (context is None or context.ndim != 3 or context.shape[0] != B or context.shape[2] != c.context_dim):
            got = None if context is None else tuple(context.shape)
            raise ValueError(f"context must have shape ({B}, L, {c.context_dim}), got {got}")
        if c.context_dim is None and context is not None:
            raise ValueError("this UNet has no cross-attention (context_dim=None) and takes no context")
        return t

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        cond: Optional[Tensor] = None,
        context: Optional[Tensor] = None,
        context_mask: Optional[Tensor] = None,
    ) -> Tensor:
        t = self._check_inputs(x, t, cond, context)
        steps = t * NOISE_LEVEL_SCALE if self.config.time_input == "noise_level" else t
        emb = self.time_mlp(sinusoidal_embedding(steps, self.config.channels).to(x.dtype))
        if self.pool_proj is not None:
            if context_mask is None:
                pooled = context.mean(1)
            else:
                w = context_mask.to(context.dtype)[..., None]  # (B, L, 1)
                pooled = (context * w).sum(1) / w.sum(1).clamp(min=1)
            emb = emb + self.pool_proj(pooled)

        h = self.conv_in(x if cond is None else torch.cat([x, cond], dim=1))
        hs = [h]
        for block in self.down:
            if "downsample" in block:
                h = block["downsample"](h)
            else:
                h = block["res"](h, emb)
                if "attn" in block:
                    h = block["attn"](h, context, context_mask)
            hs.append(h)

        h = self.mid_res2(self.mid_attn(self.mid_res1(h, emb), context, context_mask), emb)

        for block in self.up:
            if "upsample" in block:
                h = block["upsample"](F.interpolate(h, scale_factor=2.0, mode="nearest"))
            else:
                h = block["res"](torch.cat([h, hs.pop()], dim=1), emb)
                if "attn" in block:
                    h = block["attn"](h, context, context_mask)
        return self.conv_out(F.silu(self.norm_out(h)))
