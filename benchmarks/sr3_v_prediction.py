"""sr3-world's recipe (same UNet, data, steps, EMA, float16 rounding) with v-prediction instead of eps: an ablation.

    python benchmarks/sr3_v_prediction.py   # about 15 minutes on two cores; training state in /tmp/sr3v

Prints PSNR, SSIM and consistency on the same held-out pairs the sr3-world model card uses.
"""

from functools import partial

import torch

from minidiff import linear_schedule
from minidiff.core.checkpoint import round_to_half
from minidiff.core.unet import UNet
from minidiff.course.sr_recipes import SR_TRAIN, SR_UNET, _sr_data, evaluate_sr, super_resolve, world_pairs
from minidiff.course.train import train
from minidiff.methods.sr3 import sr3_loss


def main() -> None:
    torch.manual_seed(SR_TRAIN.seed)
    result = train(UNet(SR_UNET), _sr_data(world_pairs, SR_TRAIN.batch_size, False), linear_schedule(), SR_TRAIN, "/tmp/sr3v",
                   loss_fn=partial(sr3_loss, prediction="v"), progress=False, log_every=100)
    model = round_to_half(result.ema.eval())
    metrics = evaluate_sr(lambda low: super_resolve(model, low, prediction="v"), world_pairs)
    print("v-prediction sr3-world:", metrics, f"(trained {result.total_seconds:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
