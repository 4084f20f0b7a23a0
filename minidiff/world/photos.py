"""Photographs that scikit-image ships inside its package, so they load offline.

Images are returned as float tensors (3, S, S) in [-1, 1], the range the
diffusion models work in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: colour photographs that are part of scikit-image's own distribution (no download)
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "colorwheel")


def photo(name: str, size: int = 64) -> Tensor:
    """The centre square of a shipped photograph, resized to (3, size, size), in [-1, 1]."""
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; shipped colour photos: {', '.join(PHOTOS)}")
    if not 4 <= size <= 512:
        raise ValueError(f"size must be between 4 and 512 pixels, got {size}")
    import skimage.data

    img = torch.from_numpy(getattr(skimage.data, name)()[..., :3].copy()).permute(2, 0, 1).float() / 127.5 - 1
    h, w = img.shape[1:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = img[:, top : top + side, left : left + side]
    # area averaging (antialiased) for shrinking, so fine texture does not alias
    return F.interpolate(square[None], size=(size, size), mode="area")[0].clamp(-1, 1)


def photos(size: int = 32, names: tuple[str, ...] = PHOTOS) -> Tensor:
    """Several shipped photographs as one batch (N, 3, size, size)."""
    return torch.stack([photo(n, size) for n in names])
