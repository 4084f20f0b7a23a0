"""Why our SR3 predicts v: the same recipe trained to predict eps (the paper's choice), measured side by side.

    python benchmarks/sr3_prediction_ablation.py   # ~20 minutes on two cores (trains the eps model; resumes
                                                   # from runs/sr3-world-eps), needs the shipped sr3-world

Writes results/sr3_prediction.json|.safetensors, which chapter 2 reads: PSNR, SSIM and consistency of both models on
the 256 held-out pairs of the model cards; the high-noise probe (what each model believes x0 is at each noise level);
and the samples of both for the same 8 inputs.
"""

import time
from functools import partial

import torch

from minidiff import linear_schedule
from minidiff.core.checkpoint import round_to_half
from minidiff.core.unet import UNet
from minidiff.course.recipes.sr import SR_TRAIN, SR_UNET, evaluate_sr, sr_data, world_pairs, x0_consistency_by_level
from minidiff.course.results import provenance, save_results
from minidiff.course.zoo import load_sr, super_resolve
from minidiff.course.train import train
from minidiff.methods.sr3 import sr3_loss, upsample


def main() -> None:
    start = time.perf_counter()
    torch.manual_seed(SR_TRAIN.seed)  # as the sr3-world recipe, but the loss
    result = train(UNet(SR_UNET), sr_data(world_pairs, SR_TRAIN.batch_size, False), linear_schedule(), SR_TRAIN,
                   "runs/sr3-world-eps", loss_fn=partial(sr3_loss, prediction="eps"), progress=False, log_every=100)
    models = {"eps": round_to_half(result.ema.eval()), "v": load_sr("sr3-world")}
    high, low = world_pairs("test", 0, 8)
    rows, images = [], {"high": high, "low": upsample(low, 32).clamp(-1, 1)}
    for prediction, net in models.items():
        rows.append({"prediction": prediction, **evaluate_sr(lambda l: super_resolve(net, l, prediction=prediction), world_pairs),
                     "probe": x0_consistency_by_level(net, prediction)})
        images[prediction] = super_resolve(net, low, prediction=prediction)
        print(rows[-1], flush=True)
    numbers = {"rows": rows, "train_seconds_eps": result.total_seconds,
               "command": "python benchmarks/sr3_prediction_ablation.py", **provenance(time.perf_counter() - start)}
    save_results("sr3_prediction", numbers, images)


if __name__ == "__main__":
    main()
