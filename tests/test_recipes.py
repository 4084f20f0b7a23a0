"""The super-resolution and cascade recipes train (two steps), resume, and evaluate on tiny sizes."""

import pytest
import torch

from minidiff.course import sr_recipes
from minidiff.methods.sr3 import upsample


@pytest.mark.parametrize("name", sorted(sr_recipes.SR_RECIPES))
def test_every_sr_recipe_trains_two_steps_and_checkpoints(name, tmp_path):
    sr_recipes.SR_RECIPES[name](str(tmp_path), steps=2)
    state = torch.load(tmp_path / "train_state.pt", weights_only=True)
    assert state["step"] == 2 and torch.isfinite(state["losses"]).all()


def test_bicubic_is_consistent_only_approximately_and_the_metrics_are_computed():
    m = sr_recipes.evaluate_sr(lambda low: upsample(low, 32).clamp(-1, 1), sr_recipes.world_pairs, n=8)
    assert 10 < m["psnr"] < 40 and 0 < m["ssim"] < 1 and m["consistency_rmse"] > 0


def test_super_resolve_runs_for_plain_and_augmented_stages():
    torch.manual_seed(0)
    high, low = sr_recipes.world_pairs("test", 0, 2)
    for config in (sr_recipes.SR_UNET, sr_recipes.CDM_SR_UNET):
        out = sr_recipes.super_resolve(sr_recipes.UNet(config).eval(), low, steps=2, augment_level=100 if config.cond_channels == 4 else None)
        assert out.shape == high.shape
