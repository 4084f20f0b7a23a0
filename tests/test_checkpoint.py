"""Checkpoints: round trip, shipped names, and clear errors for every way a file can be wrong."""

import hashlib
import json

import pytest
import torch

from minidiff import CheckpointError, UNet, UNetConfig, available_checkpoints, load_checkpoint, load_unet, save_checkpoint
from minidiff.core.checkpoint import CHECKPOINT_DIR, round_to_half
from minidiff.course.zoo import load_toy_mlp

SMALL = UNetConfig(image_size=8, channels=16, channel_mults=(1, 2), attention_resolutions=(4,), context_dim=8)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    net = UNet(SMALL)
    folder = save_checkpoint(tmp_path / "tiny", net, {"kind": "unet", "unet": SMALL.to_dict(), "schedule": {"kind": "cosine", "T": 500}}, "# tiny\ntest card")
    return net, folder


def test_round_trip_restores_weights_config_and_schedule(saved):
    net, folder = saved
    loaded, schedule, ckpt = load_unet(folder)
    assert loaded.config == SMALL
    assert schedule.T == 500
    assert "test card" in ckpt.card
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    assert not loaded.training


def test_half_precision_files_are_half_the_size_and_load_the_rounded_weights(saved, tmp_path):
    net, folder = saved
    half = save_checkpoint(tmp_path / "half", net, {"kind": "unet", "unet": SMALL.to_dict(), "schedule": {"kind": "cosine", "T": 500}}, "card", half=True)
    size = lambda f: (f / "model.safetensors").stat().st_size
    assert size(half) < 0.55 * size(folder)
    loaded, _, ckpt = load_unet(half)
    assert ckpt.config["stored_dtype"] == "float16"
    assert next(loaded.parameters()).dtype == torch.float32
    rounded = round_to_half(UNet(SMALL).requires_grad_(False))
    rounded.load_state_dict(net.state_dict())
    round_to_half(rounded)
    for k, v in rounded.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_unknown_name_lists_what_is_available():
    with pytest.raises(CheckpointError, match="unknown checkpoint 'no-such-model': give a shipped name"):
        load_checkpoint("no-such-model")


def test_flipped_byte_is_caught_as_corruption(saved):
    _, folder = saved
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the weights: still a parseable file
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted or was replaced"):
        load_unet(folder)


def test_garbage_weights_with_a_matching_hash_are_still_refused(saved):
    _, folder = saved
    (folder / "model.safetensors").write_bytes(b"not a safetensors file at all")
    config = json.loads((folder / "config.json").read_text())
    config["sha256"] = hashlib.sha256(b"not a safetensors file at all").hexdigest()
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_unet(folder)


def test_broken_config_and_missing_files(saved):
    _, folder = saved
    (folder / "config.json").write_text("{ not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_unet(folder)
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match="has no config.json"):
        load_unet(folder)


def test_weights_that_do_not_fit_the_config(saved, tmp_path):
    net, folder = saved
    config = json.loads((folder / "config.json").read_text())
    config["unet"]["channels"] = 32  # claims a wider net than the weights hold
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="does not fit the model: .*shape mismatches"):
        load_unet(folder)


def test_kind_mismatch_is_named(saved):
    _, folder = saved
    with pytest.raises(CheckpointError, match="holds a 'unet' model, not a 'toy_mlp' one"):
        load_checkpoint(folder, kind="toy_mlp")


def test_a_config_with_nan_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="config holds NaN or infinity"):
        save_checkpoint(tmp_path / "nan", {"w": torch.zeros(2)}, {"kind": "unet", "metrics": {"fd": float("nan")}}, "# card")
    assert not (tmp_path / "nan").exists()


@pytest.mark.parametrize("name", available_checkpoints())
def test_every_shipped_checkpoint_loads_and_has_a_card(name):
    ckpt = load_checkpoint(name)
    json.loads((CHECKPOINT_DIR / name / "config.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in {name}'s config"))
    assert len(ckpt.card) > 200, "every shipped model needs a model card with its numbers"
    assert "Command" in ckpt.card and "Time" in ckpt.card


@pytest.mark.parametrize("t", [50, 300, 700])
def test_the_toy_checkpoint_denoises_almost_as_well_as_the_optimum(t):
    # the closed-form denoiser of the mixture is the best possible: the trained net should come close
    from minidiff import linear_schedule
    from minidiff.world.toy import ring_mixture

    s, mix, net = linear_schedule(), ring_mixture(), load_toy_mlp()
    g = torch.Generator().manual_seed(0)
    x0, _ = mix.sample(4096, generator=g)
    eps = torch.randn(4096, 2, generator=g)
    tt = torch.full((4096,), t)
    x_t = s.q_sample(x0, tt, eps)
    with torch.no_grad():
        learned = (net(x_t, tt) - eps).square().mean()
    optimal = (mix.denoiser(s)(x_t, tt) - eps).square().mean()
    assert learned < 1.1 * optimal


def test_shipped_checkpoints_live_inside_the_package():
    assert CHECKPOINT_DIR.is_dir() and CHECKPOINT_DIR.parent.name == "minidiff"
    assert "toy2d-mlp" in available_checkpoints()
