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


def test_super_resolve_refuses_inputs_the_models_were_not_trained_on():
    plain, stage = sr_recipes.UNet(sr_recipes.SR_UNET).eval(), sr_recipes.UNet(sr_recipes.CDM_SR_UNET).eval()
    _, low = sr_recipes.world_pairs("test", 0, 2)
    with pytest.raises(ValueError, match="trained on 8x8 inputs"):
        sr_recipes.super_resolve(plain, torch.zeros(2, 3, 16, 16), steps=2)
    with pytest.raises(ValueError, match="has 1 channels; this model takes 3"):
        sr_recipes.super_resolve(plain, low[:, :1], steps=2)
    with pytest.raises(ValueError, match=r"must be a batch \(B, C, h, w\)"):
        sr_recipes.regress(plain, low[0])
    with pytest.raises(ValueError, match="trained without conditioning augmentation"):
        sr_recipes.super_resolve(plain, low, steps=2, augment_level=100)
    for level in (800, -2, 0.5):
        with pytest.raises(ValueError, match=r"integer step in -1..500"):
            sr_recipes.super_resolve(stage, low, steps=2, augment_level=level)
    plain.prediction = None  # what load_sr gives the regression baseline
    with pytest.raises(ValueError, match="use regress"):
        sr_recipes.super_resolve(plain, low, steps=2)


def test_augmented_condition_refuses_fractional_level_tensors():
    from minidiff.core.schedule import linear_schedule
    from minidiff.methods.cascade import augmented_condition

    with pytest.raises(ValueError, match="integer steps"):
        augmented_condition(torch.zeros(2, 3, 8, 8), 32, torch.tensor([0.5, 10.0]), linear_schedule())
