"""Results on disk: what a sweep writes and a chapter reads, resumable parts, and where each was computed.

A sweep that takes minutes on 2 CPU cores writes ``results/NAME.json`` (numbers) and
``results/NAME.safetensors`` (a few example images), which its chapter loads with ``load_results``;
a sweep that takes hours keeps each finished piece in ``results/parts/NAME`` (``Parts``) and resumes there.
"""

from __future__ import annotations

import json
import platform
import re
import subprocess
from pathlib import Path
from typing import Callable, Optional

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

REPOSITORY = Path(__file__).resolve().parents[2]
RESULTS = REPOSITORY / "results"


def to_uint8(x: Tensor) -> Tensor:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def from_uint8(x: Tensor) -> Tensor:
    return x.float() / 127.5 - 1


def save_results(name: str, numbers: dict, images: dict[str, Tensor], folder: Path = RESULTS, exact: bool = False) -> None:
    """Images as uint8 (for showing) or, with ``exact``, as float16 (for scoring later); the JSON last."""
    try:  # strict JSON: a number that is not one (NaN, infinity) is an error here, not a file other readers reject
        text = json.dumps(numbers, indent=1, allow_nan=False)
    except ValueError as e:
        raise ValueError(f"the numbers of {name!r} hold NaN or infinity, which JSON cannot store; write None for a "
                         f"number that was not measured ({e})") from None
    folder.mkdir(parents=True, exist_ok=True)
    encode = (lambda v: v.detach().half()) if exact else to_uint8
    save_file({k: encode(v).contiguous() for k, v in images.items()}, str(folder / f"{name}.safetensors"))
    (folder / f"{name}.json").write_text(text + "\n")  # last: the JSON marks a finished result


def load_results(name: str, folder: Path = RESULTS, exact: bool = False) -> tuple[dict, dict[str, Tensor]]:
    """``(numbers, images in [-1, 1])`` written by ``python -m minidiff results NAME`` (or by ``save_results``)."""
    path = folder / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m minidiff results {name}` to compute it")
    decode = (lambda v: v.float()) if exact else from_uint8
    images = {k: decode(v) for k, v in load_file(str(folder / f"{name}.safetensors")).items()}
    return json.loads(path.read_text()), images


def commit() -> str:
    """The git commit the code ran from (with ``+ changes`` when the tree had uncommitted edits), or why not known."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPOSITORY, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPOSITORY, capture_output=True,
                               text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not run from a git checkout)"
    return head + (" + uncommitted changes" if dirty else "")


def provenance(seconds: float) -> dict:
    """Where, from what code and how long a result was computed: wall seconds, hardware and thread count, torch
    version, git commit."""
    return {"seconds": round(seconds, 1), "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
            "torch": torch.__version__, "commit": commit()}


class Parts:
    """A sweep's finished pieces, one JSON file each under ``folder``, so a long sweep resumes where it stopped.

    ``parts.get(key, compute)`` returns the stored numbers of ``key`` or computes, stores and returns them;
    images go to ``key.safetensors`` beside them, as uint8 (for showing) or, with ``exact_images``,
    as float16 (for scoring later). With ``folder=None`` nothing is kept: every part is computed.
    """

    def __init__(self, folder: Optional[Path], progress: Callable[[str], None] = print, exact_images: bool = False):
        self.folder, self.progress, self.exact_images = folder, progress, exact_images

    def get(self, key: str, compute: Callable[[], tuple[dict, dict[str, Tensor]]]) -> tuple[dict, dict[str, Tensor]]:
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("_")
        if self.folder is not None and (self.folder / f"{name}.json").exists():
            return load_results(name, self.folder, exact=self.exact_images)
        numbers, images = compute()
        if self.folder is not None:
            save_results(name, numbers, images, self.folder, exact=self.exact_images)
        self.progress(f"{key}: done ({numbers.get('seconds', 0):.0f}s)")
        return numbers, images
