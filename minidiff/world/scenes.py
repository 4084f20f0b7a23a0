"""The captioned world: small procedural scenes with exact ground truth.

A scene is a background (light or dark, plain or striped) with one or two
objects. Each object has a shape (circle, square, triangle), a colour (red,
green, blue, yellow), a size (small, large) and a horizontal position (left,
centre, right; two objects are always left and right). Because every
attribute and every object mask is known exactly, each paper's qualitative
claim becomes a measurement: did the edit change the colour and nothing
else, and did the pixels outside the object stay the same?

Scenes are generated on the fly from (split, index): the same index always
gives the same scene, and the train and test splits never share one. Images
are rendered with 4x4 supersampling (antialiased edges) at 32 px, and the
same scenes at 16 and 8 px are their area-averaged versions, so the
low-resolution views are exact downsamplings (what SR3 and ILVR assume).

Detail the captions do not name. A caption names nearly everything in a plain
scene, so two samples of one caption look alike and an edit has little to keep
that a caption alone would lose. With ``detail`` the same scenes gain what no
word describes: a lighting gradient and a faint low-frequency texture on the
background, a slight tint, the stripes' angle, each object's rotation and a
wider spread of its position and height within its named bin. Each scene's
amount of it, from 0 (today's plain world, bit for bit) to 1 (clearly
visible), is a hidden variable stored with the scene (``Scenes.detail``), so
every measurement can be split by it. Masks and attributes stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

SHAPES = ("circle", "square", "triangle")
COLOURS = ("red", "green", "blue", "yellow")
SIZES = ("small", "large")
POSITIONS = ("left", "centre", "right")
TONES = ("light", "dark")
PATTERNS = ("plain", "striped")
#: the attributes each object has (the others, tone and pattern, are the background's)
OBJECT_ATTRIBUTES = ("shape", "colour", "size", "position")

#: RGB in [0, 1] of each colour name, before a small per-scene jitter
RGB = {
    "red": (0.86, 0.16, 0.14),
    "green": (0.18, 0.70, 0.22),
    "blue": (0.16, 0.32, 0.92),
    "yellow": (0.96, 0.82, 0.10),
}
TONE_RGB = {"light": (0.86, 0.85, 0.80), "dark": (0.16, 0.17, 0.22)}
STRIPE_CONTRAST = 0.13  # brightness swing of the stripes
STRIPE_PERIOD = 4.0  # pixels at 32 px: fine texture for SR and SDEdit to destroy and restore
CENTRES_X = {"left": 0.25, "centre": 0.5, "right": 0.75}
RADII = {"small": (0.09, 0.11), "large": (0.17, 0.20)}  # half-widths, as fractions of the image
TWO_OBJECTS_FRACTION = 0.2
# unnamed detail at amount 1 (it scales linearly with a scene's amount)
GRADIENT_SWING = 0.14  # brightness change across the image of the lighting gradient
TEXTURE_SWING = 0.05  # amplitude of each of the texture's waves
TEXTURE_WAVES = 3  # low-frequency waves summed into the background texture
TEXTURE_CYCLES = (1.0, 3.0)  # their frequencies, in cycles across the image
TINT_SWING = 0.05  # largest shift of one colour channel of the background
STRIPE_TURN = torch.pi / 4  # largest turn of the stripes away from the diagonal
OBJECT_TURN = torch.pi / 6  # largest rotation of an object (circles do not show it)
EXTRA_SPREAD_X = 0.03  # added to the horizontal jitter within a named position (bins stay apart)
EXTRA_SPREAD_Y = 0.07  # added to the vertical jitter
SUPERSAMPLE = 4
CHUNK = 64  # scenes are drawn in chunks of this many, each from its own seed

Split = Literal["train", "test"]
_SPLIT_SEED = {"train": 0, "test": 1_000_003}
_DETAIL_SEED = 1_000_000_007  # the unnamed detail draws from its own stream, so attributes never change with it
Detail = Literal["none", "random"] | float


@dataclass(frozen=True)
class Scenes:
    """A batch of scenes. Object attributes are (B, 2) indices, -1 where there is no second object.

    images: (B, 3, S, S) in [-1, 1]; masks: (B, 2, S, S) bool, True on each object's pixels.
    """

    images: Tensor
    masks: Tensor
    shape: Tensor
    colour: Tensor
    size: Tensor
    position: Tensor
    tone: Tensor  # (B,)
    pattern: Tensor  # (B,)
    count: Tensor  # (B,) 1 or 2
    geometry: Tensor  # (B, 2, 3): centre x, centre y, half-width of each object
    detail: Tensor  # (B,) amount of unnamed detail in [0, 1] (0: the plain world)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, idx) -> "Scenes":
        idx = torch.arange(len(self))[idx].reshape(-1)
        return Scenes(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))

    def at_resolution(self, size: int) -> Tensor:
        """The same images area-averaged to (B, 3, size, size); size must divide the rendered size."""
        S = self.images.shape[-1]
        if size > S or S % size:
            raise ValueError(f"size must divide {S} (e.g. 8, 16, {S}), got {size}")
        return F.avg_pool2d(self.images, S // size)


def _draw_attributes(n: int, g: torch.Generator) -> dict[str, Tensor]:
    def pick(k: int, shape=(n,)) -> Tensor:
        return torch.randint(0, k, shape, generator=g)

    count = 1 + (torch.rand(n, generator=g) < TWO_OBJECTS_FRACTION).long()
    position = torch.stack([pick(3), torch.full((n,), 2)], 1)  # second object: right
    position[count == 2, 0] = 0  # two objects: left and right
    attrs = {
        "shape": pick(3, (n, 2)),
        "colour": pick(4, (n, 2)),
        "size": pick(2, (n, 2)),
        "position": position,
        "tone": pick(2),
        "pattern": pick(2),
        "count": count,
    }
    # two objects never share a colour, so "the red one" always names one object
    same = (attrs["colour"][:, 0] == attrs["colour"][:, 1]) & (count == 2)
    attrs["colour"][same, 1] = (attrs["colour"][same, 1] + 1 + pick(3)[same]) % 4
    single = count == 1
    for key in OBJECT_ATTRIBUTES:
        attrs[key][single, 1] = -1
    return attrs


def _half_width(shape: Tensor, r: Tensor, turn: Tensor) -> Tensor:
    """How far each object reaches left and right of its centre once turned by ``turn``: (B,) -> (B,)."""
    c, s_ = torch.cos(turn).abs(), torch.sin(turn).abs()
    square = 0.886 * r * (c + s_)
    # the triangle's corners (circumradius 1.25 r) sit at -90, 30 and 150 degrees before the turn
    corners = torch.tensor([-torch.pi / 2, torch.pi / 6, 5 * torch.pi / 6])
    triangle = 1.25 * r * torch.cos(corners[None] + turn[:, None]).abs().amax(1)
    return torch.where(shape == 0, r, torch.where(shape == 1, square, triangle))


def coverage(shape: Tensor, cx: Tensor, cy: Tensor, r: Tensor, xs: Tensor, ys: Tensor,
             turn: Tensor | None = None) -> Tensor:
    """Boolean inside-mask of each object on the supersampled grid: (B,) params -> (B, H, W).

    ``turn`` (B,) rotates each object by that many radians about its centre."""
    dx = xs[None] - cx[:, None, None]
    dy = ys[None] - cy[:, None, None]
    if turn is not None:  # the object's own frame: the grid rotated the other way
        c, s_ = torch.cos(turn)[:, None, None], torch.sin(turn)[:, None, None]
        dx, dy = c * dx + s_ * dy, -s_ * dx + c * dy
    r = r[:, None, None]
    circle = dx**2 + dy**2 <= r**2
    square = torch.maximum(dx.abs(), dy.abs()) <= 0.886 * r  # same area as the circle
    # upright equilateral triangle with circumradius 1.25 r, centred on its centroid
    R = 1.25 * r
    tri = (dy <= R / 2) & (dy >= -R + 1.7320508 * dx) & (dy >= -R - 1.7320508 * dx)
    s = shape[:, None, None]
    return torch.where(s == 0, circle, torch.where(s == 1, square, tri))


def _draw_detail(n: int, g: torch.Generator, amount: Tensor) -> dict[str, Tensor]:
    """The unnamed detail of n scenes, already scaled by each scene's amount (B,) in [0, 1]."""
    a = amount[:, None]

    def signed(*shape: int) -> Tensor:
        return 2 * torch.rand(n, *shape, generator=g) - 1

    lo, hi = TEXTURE_CYCLES
    return {
        "amount": amount,
        "gradient_angle": 2 * torch.pi * torch.rand(n, generator=g),
        "gradient": amount * GRADIENT_SWING,
        "wave_angle": torch.pi * torch.rand(n, TEXTURE_WAVES, generator=g),
        "wave_cycles": lo + (hi - lo) * torch.rand(n, TEXTURE_WAVES, generator=g),
        "wave_phase": torch.rand(n, TEXTURE_WAVES, generator=g),
        "wave_swing": a * TEXTURE_SWING * signed(TEXTURE_WAVES),
        "tint": a * TINT_SWING * signed(3),
        "stripe_turn": amount * STRIPE_TURN * signed(),
        "object_turn": a * OBJECT_TURN * signed(2),
        "spread_x": a * EXTRA_SPREAD_X * signed(2),
        "spread_y": a * EXTRA_SPREAD_Y * signed(2),
    }


def _background(attrs: dict[str, Tensor], g: torch.Generator, size: int, xs: Tensor, ys: Tensor,
                detail: dict[str, Tensor] | None) -> Tensor:
    """The background canvas (n, 3, H, H): tone, stripes if the caption says so, and any unnamed detail."""
    n = attrs["tone"].shape[0]
    tone_rgb = torch.tensor([TONE_RGB[t] for t in TONES])[attrs["tone"]]  # (n, 3)
    # stripes at a random phase: brightness +- contrast; diagonal, or turned by the unnamed detail
    phase = torch.rand(n, generator=g)[:, None, None]
    across = (xs + ys)[None] / 2 ** 0.5
    if detail is not None:  # (unturned scenes keep the diagonal's own arithmetic: cos/sin of pi/4 would move an edge)
        angle = (torch.pi / 4 + detail["stripe_turn"])[:, None, None]
        across = torch.where(angle == torch.pi / 4, across, xs[None] * torch.cos(angle) + ys[None] * torch.sin(angle))
    wave = torch.sin(2 * torch.pi * (across * size / STRIPE_PERIOD + phase))
    stripes = torch.where(wave > 0, 1.0, -1.0) * STRIPE_CONTRAST * attrs["pattern"][:, None, None]
    light = stripes
    if detail is not None:
        # a lighting gradient in a random direction, and a texture of a few faint low-frequency waves
        u = (xs[None] - 0.5) * torch.cos(detail["gradient_angle"])[:, None, None] + \
            (ys[None] - 0.5) * torch.sin(detail["gradient_angle"])[:, None, None]
        light = light + detail["gradient"][:, None, None] * u
        for k in range(TEXTURE_WAVES):
            angle = detail["wave_angle"][:, k, None, None]
            along = xs[None] * torch.cos(angle) + ys[None] * torch.sin(angle)
            cycles, phase_k = detail["wave_cycles"][:, k, None, None], detail["wave_phase"][:, k, None, None]
            light = light + detail["wave_swing"][:, k, None, None] * torch.sin(2 * torch.pi * (cycles * along + phase_k))
        tone_rgb = tone_rgb + detail["tint"]
    return (tone_rgb[:, :, None, None] + light[:, None]).clamp(0, 1)


def _render(attrs: dict[str, Tensor], g: torch.Generator, size: int,
            detail: dict[str, Tensor] | None = None) -> tuple[Tensor, Tensor, Tensor]:
    n = attrs["tone"].shape[0]
    H = size * SUPERSAMPLE
    coords = (torch.arange(H, dtype=torch.float32) + 0.5) / H
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")  # y grows downwards
    canvas = _background(attrs, g, size, xs, ys, detail)

    geometry = torch.zeros(n, 2, 3)
    fine_masks = torch.zeros(n, 2, H, H, dtype=torch.bool)
    colour_table = torch.tensor([RGB[c] for c in COLOURS])
    for k in range(2):
        present = attrs["shape"][:, k] >= 0
        pos = attrs["position"][:, k].clamp(min=0)
        cx = torch.tensor([CENTRES_X[p] for p in POSITIONS])[pos] + 0.03 * (2 * torch.rand(n, generator=g) - 1)
        cy = 0.5 + 0.08 * (2 * torch.rand(n, generator=g) - 1)
        lo = torch.tensor([RADII[s][0] for s in SIZES])[attrs["size"][:, k].clamp(min=0)]
        hi = torch.tensor([RADII[s][1] for s in SIZES])[attrs["size"][:, k].clamp(min=0)]
        r = lo + (hi - lo) * torch.rand(n, generator=g)
        if detail is not None:
            cx, cy = cx + detail["spread_x"][:, k], cy + detail["spread_y"][:, k]
            # keep a shifted or turned object inside the image, a pixel clear of its edge at full detail (at amount
            # 0 this moves no object of the plain world)
            reach = _half_width(attrs["shape"][:, k].clamp(min=0), r, detail["object_turn"][:, k])
            reach = reach + detail["amount"] / size
            cx = torch.minimum(torch.maximum(cx, reach), 1 - reach)
        jitter = 0.04 * (2 * torch.rand(n, 3, generator=g) - 1)
        rgb = (colour_table[attrs["colour"][:, k].clamp(min=0)] + jitter).clamp(0, 1)
        turn = None if detail is None else detail["object_turn"][:, k]
        inside = coverage(attrs["shape"][:, k].clamp(min=0), cx, cy, r, xs, ys, turn) & present[:, None, None]
        canvas = torch.where(inside[:, None], rgb[:, :, None, None], canvas)
        fine_masks[:, :k] &= ~inside[:, None]  # a mask is what shows: the right object hides what it covers
        fine_masks[:, k] = inside
        geometry[:, k] = torch.stack([cx, cy, r], 1) * present[:, None]

    images = F.avg_pool2d(canvas, SUPERSAMPLE) * 2 - 1
    masks = F.avg_pool2d(fine_masks.float(), SUPERSAMPLE) >= 0.5
    return images, masks, geometry


def scenes(split: Split, start: int, count: int, size: int = 32, detail: Detail = "none") -> Scenes:
    """Scenes ``start .. start + count - 1`` of a split, rendered at ``size`` px (deterministic).

    The train split is an endless stream (index ``i`` is always the same scene);
    the test split is for evaluation only and never overlaps it. ``detail``: the
    amount of detail the captions do not name (see the module's docstring):
    ``"none"`` (the plain world), ``"random"`` (each scene's own amount, uniform
    in [0, 1]), or one amount in [0, 1] for every scene. Whatever ``detail`` is,
    scene ``i`` has the same attributes, and its unnamed detail differs only in
    its amount.
    """
    if split not in _SPLIT_SEED:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if start < 0 or count < 1:
        raise ValueError(f"need start >= 0 and count >= 1, got start={start}, count={count}")
    if size % 4 or not 8 <= size <= 128:
        raise ValueError(f"size must be a multiple of 4 between 8 and 128, got {size}")
    fixed = _detail_amount(detail)
    parts = []
    for chunk in range(start // CHUNK, (start + count - 1) // CHUNK + 1):
        g = torch.Generator().manual_seed(_SPLIT_SEED[split] + chunk)
        attrs = _draw_attributes(CHUNK, g)
        if detail == "none":
            unnamed, amount = None, torch.zeros(CHUNK)
        else:
            g_detail = torch.Generator().manual_seed(_DETAIL_SEED + _SPLIT_SEED[split] + chunk)
            drawn = torch.rand(CHUNK, generator=g_detail)  # drawn always, so the rest of the stream never shifts
            amount = drawn if fixed is None else torch.full((CHUNK,), fixed)
            unnamed = _draw_detail(CHUNK, g_detail, amount)
        images, masks, geometry = _render(attrs, g, size, unnamed)
        parts.append(Scenes(images, masks, geometry=geometry, detail=amount, **attrs))
    lo = start - (start // CHUNK) * CHUNK
    merged = Scenes(*(torch.cat([getattr(p, f) for p in parts]) for f in Scenes.__dataclass_fields__))
    return merged[lo : lo + count]


def _detail_amount(detail: Detail) -> float | None:
    """The one amount ``detail`` fixes for every scene, None for "none" and "random"; raises on anything else."""
    if isinstance(detail, str):
        if detail not in ("none", "random"):
            raise ValueError(f"detail must be 'none', 'random' or an amount in [0, 1], got {detail!r}")
        return None
    if isinstance(detail, bool) or not isinstance(detail, (int, float)) or not 0 <= detail <= 1:
        raise ValueError(f"detail must be 'none', 'random' or an amount in [0, 1], got {detail!r}")
    return float(detail)


def with_attribute(s: Scenes, family: str, values: Tensor, obj: int = 0) -> Scenes:
    """The same scenes *described* with one attribute changed: the target of an edit.

    ``family``: shape, colour, size, position (of object ``obj``), tone or pattern;
    ``values``: (B,) new indices. Images and masks are left as they are (they
    show the source); captions and judge targets of the result describe the edit.
    """
    per_object = OBJECT_ATTRIBUTES
    if family not in per_object + ("tone", "pattern"):
        raise ValueError(f"family must be one of {per_object + ('tone', 'pattern')}, got {family!r}")
    values = torch.as_tensor(values, dtype=torch.long)
    if values.shape != (len(s),):
        raise ValueError(f"values must have shape ({len(s)},), one per scene, got {tuple(values.shape)}")
    new = getattr(s, family).clone()
    if family in per_object:
        new[:, obj] = values
    else:
        new = values
    return replace(s, **{family: new})
