"""Photographs that scikit-image ships inside its package, so they load offline, and crops of them.

Images are returned as float tensors (3, S, S) in [-1, 1], the range the
diffusion models work in. The crop data set (for super-resolution and SDEdit
on real textures) draws random squares of random scale from the training
photos; two whole photos are held out for evaluation only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: colour photographs that are part of scikit-image's own distribution (no download)
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "colorwheel", "motorcycle")
#: crops for training come from these; the held-out photos are never seen in training
TRAIN_PHOTOS = ("astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "motorcycle")
TEST_PHOTOS = ("chelsea", "coffee")
CROP_SCALE = (48, 192)  # side of a crop in the source photo, in pixels, before resizing


def _load(name: str) -> Tensor:
    """A shipped photograph as (3, H, W) in [-1, 1]."""
    import skimage.data

    if name == "motorcycle":
        array = skimage.data.stereo_motorcycle()[0]  # the left view of the stereo pair
    else:
        array = getattr(skimage.data, name)()
    return torch.from_numpy(array[..., :3].copy()).permute(2, 0, 1).float() / 127.5 - 1


def photo(name: str, size: int = 64) -> Tensor:
    """The centre square of a shipped photograph, resized to (3, size, size), in [-1, 1]."""
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; shipped colour photos: {', '.join(PHOTOS)}")
    if not 4 <= size <= 512:
        raise ValueError(f"size must be between 4 and 512 pixels, got {size}")
    img = _load(name)
    h, w = img.shape[1:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = img[:, top : top + side, left : left + side]
    # area averaging (antialiased) for shrinking, so fine texture does not alias
    return F.interpolate(square[None], size=(size, size), mode="area")[0].clamp(-1, 1)


def photos(size: int = 32, names: tuple[str, ...] = PHOTOS) -> Tensor:
    """Several shipped photographs as one batch (N, 3, size, size)."""
    return torch.stack([photo(n, size) for n in names])


_CACHE: dict[str, Tensor] = {}


def crops(split: str, start: int, count: int, size: int = 32) -> Tensor:
    """Random square crops (count, 3, size, size) of the train or test photos; crop ``i`` is always the same.

    Each crop has a random side in CROP_SCALE (so textures appear at many
    scales), is area-resized to ``size``, and is flipped left-right half the time.
    """
    names = {"train": TRAIN_PHOTOS, "test": TEST_PHOTOS}.get(split)
    if names is None:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if start < 0 or count < 1:
        raise ValueError(f"need start >= 0 and count >= 1, got start={start}, count={count}")
    out = []
    for i in range(start, start + count):
        g = torch.Generator().manual_seed((7 if split == "train" else 11) * 1_000_003 + i)
        name = names[int(torch.randint(len(names), (1,), generator=g))]
        if name not in _CACHE:
            _CACHE[name] = _load(name)
        img = _CACHE[name]
        side = int(torch.randint(CROP_SCALE[0], min(CROP_SCALE[1], *img.shape[1:]) + 1, (1,), generator=g))
        top = int(torch.randint(img.shape[1] - side + 1, (1,), generator=g))
        left = int(torch.randint(img.shape[2] - side + 1, (1,), generator=g))
        crop = F.interpolate(img[None, :, top : top + side, left : left + side], size=(size, size), mode="area")[0]
        out.append(crop.flip(-1) if torch.rand(1, generator=g) < 0.5 else crop)
    return torch.stack(out).clamp(-1, 1)
