"""The judge: an attribute classifier that referees every later chapter, and the world-FD built on it.

The judge reads a 32 px scene and names its attributes: how many objects,
each object's shape, colour, size and position (objects ordered left to
right), and the background's tone and pattern. It is trained on real scenes
only (never on model outputs), with degradations that model outputs show
(noise, blur, colour casts, lost resolution), so that a slightly soft
sample is judged on its content, not its finish.

Its penultimate features give a Fréchet distance between sets of images
("world-FD", as FID uses Inception features; Heusel et al. 2017).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .scenes import COLOURS, PATTERNS, POSITIONS, SHAPES, SIZES, TONES, Scenes

#: every head of the judge and its number of classes; "*1" heads describe the second (right) object
HEADS = {
    "count": 2,
    "shape": len(SHAPES), "colour": len(COLOURS), "size": len(SIZES), "position": len(POSITIONS),
    "shape1": len(SHAPES), "colour1": len(COLOURS), "size1": len(SIZES),
    "tone": len(TONES), "pattern": len(PATTERNS),
}
#: attribute families reported in tables (each object attribute counts both objects)
FAMILIES = ("count", "shape", "colour", "size", "position", "tone", "pattern")


def targets(s: Scenes) -> dict[str, Tensor]:
    """The true label of every head; -1 where a head does not apply (no second object)."""
    return {
        "count": s.count - 1,
        "shape": s.shape[:, 0], "colour": s.colour[:, 0], "size": s.size[:, 0], "position": s.position[:, 0],
        "shape1": s.shape[:, 1], "colour1": s.colour[:, 1], "size1": s.size[:, 1],
        "tone": s.tone, "pattern": s.pattern,
    }


class Judge(nn.Module):
    """``judge(images (B, 3, 32, 32) in [-1, 1]) -> {head: logits (B, classes)}``; ``judge.features`` -> (B, 128)."""

    def __init__(self, width: int = 32, feature_dim: int = 128) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU(),
                                 nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU())

        # two coordinate channels (CoordConv, Liu et al. 2018) make position easy to read
        self.trunk = nn.Sequential(
            block(5, width), nn.AvgPool2d(2),  # 16
            block(width, 2 * width), nn.AvgPool2d(2),  # 8
            block(2 * width, 4 * width), nn.AvgPool2d(2),  # 4
        )
        self.to_features = nn.Sequential(nn.Flatten(), nn.Linear(4 * width * 16, feature_dim), nn.SiLU())
        self.heads = nn.ModuleDict({name: nn.Linear(feature_dim, k) for name, k in HEADS.items()})

    def features(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1:] != (3, 32, 32):
            raise ValueError(f"the judge reads (B, 3, 32, 32) images in [-1, 1], got {tuple(images.shape)}")
        B = images.shape[0]
        ramp = torch.linspace(-1, 1, 32, device=images.device, dtype=images.dtype)
        coords = torch.stack([ramp[None, :].expand(32, 32), ramp[:, None].expand(32, 32)])[None].expand(B, 2, 32, 32)
        return self.to_features(self.trunk(torch.cat([images, coords], 1)))

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        f = self.features(images)
        return {name: head(f) for name, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, images: Tensor, batch: int = 500) -> dict[str, Tensor]:
        """Predicted label of every head, (B,) each; second-object heads are -1 where one object is seen."""
        out: dict[str, list[Tensor]] = {name: [] for name in HEADS}
        for chunk in images.split(batch):
            logits = self(chunk)
            one = logits["count"].argmax(1) == 0
            for name, l in logits.items():
                pred = l.argmax(1)
                out[name].append(torch.where(one, -1, pred) if name.endswith("1") else pred)
        return {name: torch.cat(v) for name, v in out.items()}


def agreement(predicted: dict[str, Tensor], truth: dict[str, Tensor]) -> dict[str, float]:
    """Per attribute family, the fraction of items where the judge's label equals the truth.

    Object families count every object present in the truth (both objects of
    two-object scenes); a missed second object counts as wrong.
    """
    result = {}
    for fam in FAMILIES:
        names = [fam] + ([fam + "1"] if fam + "1" in HEADS else [])
        hits, total = 0, 0
        for n in names:
            valid = truth[n] >= 0
            hits += int((predicted[n][valid] == truth[n][valid]).sum())
            total += int(valid.sum())
        result[fam] = hits / max(total, 1)
    return result


def describe(labels: dict[str, Tensor], i: int) -> str:
    """A short text of item i's labels, for figure titles."""
    obj = f"{SIZES[labels['size'][i]]} {COLOURS[labels['colour'][i]]} {SHAPES[labels['shape'][i]]} {POSITIONS[labels['position'][i]]}"
    if labels["count"][i] == 1 and labels["shape1"][i] >= 0:
        obj += f" + {SIZES[labels['size1'][i]]} {COLOURS[labels['colour1'][i]]} {SHAPES[labels['shape1'][i]]}"
    return f"{obj}; {TONES[labels['tone'][i]]} {PATTERNS[labels['pattern'][i]]}"


# -- degradations: what model outputs look like ----------------------------------------------


def gaussian_blur(x: Tensor, sigma: Tensor) -> Tensor:
    """Blur each image of (B, C, H, W) with its own Gaussian std ``sigma`` (B,) in pixels (separable, 5 taps)."""
    offsets = torch.arange(-2, 3, device=x.device, dtype=x.dtype)
    k = torch.exp(-offsets[None] ** 2 / (2 * sigma[:, None].clamp(min=1e-3) ** 2))
    k = k / k.sum(1, keepdim=True)  # (B, 5)
    B, C, H, W = x.shape
    y = F.pad(x, (2, 2, 2, 2), mode="replicate").reshape(1, B * C, H + 4, W + 4)
    kh = k.repeat_interleave(C, 0)[:, None, None, :]  # (B*C, 1, 1, 5)
    kv = k.repeat_interleave(C, 0)[:, None, :, None]
    y = F.conv2d(F.conv2d(y, kh, groups=B * C), kv, groups=B * C)
    return y.reshape(B, C, H, W)


@dataclass(frozen=True)
class Degradation:
    """Strengths of the random degradations (each applied to about half the images)."""

    noise: float = 0.15  # largest Gaussian noise std
    blur: float = 1.0  # largest blur std, pixels
    cast: float = 0.08  # largest per-channel colour shift
    lowres: bool = True  # sometimes pass through 16 or 8 px and back


def degrade(x: Tensor, g: torch.Generator, d: Degradation = Degradation()) -> Tensor:
    """Randomly degraded copies of images (B, 3, H, W) in [-1, 1]."""
    B = x.shape[0]

    def rand(*shape: int) -> Tensor:  # drawn on the generator's device, used on the images'
        return torch.rand(shape, generator=g, device=g.device).to(x)

    def coin() -> Tensor:
        return (rand(B) < 0.5).to(x)[:, None, None, None]

    x = x + coin() * d.cast * (2 * rand(B, 3, 1, 1) - 1)
    if d.lowres:
        small = [F.interpolate(F.avg_pool2d(x, f), scale_factor=f, mode="bilinear", align_corners=False) for f in (2, 4)]
        pick = torch.randint(0, 4, (B,), generator=g, device=g.device).to(x.device)[:, None, None, None]  # 2: 16 px; 3: 8 px
        x = torch.where(pick == 2, small[0], torch.where(pick == 3, small[1], x))
    blurred = gaussian_blur(x, d.blur * rand(B))
    x = x + coin() * (blurred - x)
    noise = torch.randn(x.shape, generator=g, device=g.device).to(x)
    x = x + coin() * d.noise * rand(B, 1, 1, 1) * noise
    return x.clamp(-1, 1)


# -- the Fréchet distance on the judge's features ---------------------------------------------


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D) (Heusel et al. 2017, eq. 6)."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    # Tr sqrt(A B) from the eigenvalues of sqrt(A) B sqrt(A), which is symmetric
    vals, vecs = torch.linalg.eigh(cov_a)
    sqrt_a = vecs @ torch.diag(vals.clamp(min=0).sqrt()) @ vecs.T
    cross = torch.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a).clamp(min=0).sqrt().sum()
    return float((mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross)


@torch.no_grad()
def world_fd(judge: Judge, images_a: Tensor, images_b: Tensor, batch: int = 500) -> float:
    """world-FD: the Fréchet distance between two image sets in the judge's feature space."""
    fa = torch.cat([judge.features(c) for c in images_a.split(batch)])
    fb = torch.cat([judge.features(c) for c in images_b.split(batch)])
    return frechet_distance(fa, fb)  # biased upwards for small sets: compare sets of the same size


# -- scores built on the judge -------------------------------------------------------------------


@torch.no_grad()
def judge_confidence(judge: Judge, images: Tensor) -> Tensor:
    """Mean over the scene-level heads of the judge's top softmax probability, per image (B,): a realism proxy."""
    logits = judge(images)
    return torch.stack([logits[h].softmax(1).max(1).values for h in FAMILIES]).mean(0)


def classification_accuracy_score(images: Tensor, labels: dict[str, Tensor], test: Scenes, steps: int = 300,
                                  seed: int = 0) -> dict[str, float]:
    """CAS (Ravuri & Vinyals 2019): train a fresh classifier (a new, untrained ``Judge``) on generated images with
    the prompts' labels, and report its accuracy on real held-out scenes ``test``, per attribute family."""
    torch.manual_seed(seed)
    net = Judge()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    with torch.enable_grad():
        for _ in range(steps):
            idx = torch.randint(len(images), (128,), generator=g)
            logits = net(images[idx])
            loss = sum(F.cross_entropy(logits[h], labels[h][idx], ignore_index=-1) for h in HEADS)
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    return agreement(net.predict(test.images), targets(test))
