"""The UNet: its inputs, its attention seam, and its errors."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minidiff import UNet, UNetConfig, at_step, attach_controller, attention_modules

TEXT = UNetConfig(image_size=16, channels=32, channel_mults=(1, 2), attention_resolutions=(8,), heads=2, context_dim=12, pooled_context=True)


def text_net(seed=0) -> UNet:
    torch.manual_seed(seed)
    net = UNet(TEXT).eval()
    # zero-initialised output layers would hide differences: give every parameter a random value
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net


def inputs(B=2, L=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, 3, 16, 16, generator=g), torch.tensor([10, 500])[:B], torch.randn(B, L, 12, generator=g)


def test_output_shape_and_names():
    net = text_net()
    x, t, ctx = inputs()
    assert net(x, t, context=ctx).shape == x.shape
    names = attention_modules(net)
    assert "mid.attn.cross" in names and "down.1.attn0.self" in names
    assert {m.resolution for m in names.values()} == {8}
    assert {m.kind for m in names.values()} == {"self", "cross"}


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000), masked=st.booleans())
def test_identity_controller_changes_nothing(seed, masked):
    net = text_net(seed % 3)
    x, t, ctx = inputs(seed=seed)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]]) if masked else None
    with torch.no_grad():
        plain = net(x, t, context=ctx, context_mask=mask)
        with attach_controller(net, lambda probs, site: probs):
            controlled = net(x, t, context=ctx, context_mask=mask)
    torch.testing.assert_close(controlled, plain, rtol=1e-5, atol=1e-5)


def test_controller_sees_sites_and_can_change_the_output():
    net = text_net()
    x, t, ctx = inputs()
    sites = []

    def uniform_cross(probs, site):
        sites.append(site)
        return torch.full_like(probs, 1 / probs.shape[-1]) if site.kind == "cross" else probs

    with torch.no_grad():
        plain = net(x, t, context=ctx)
        with attach_controller(net, uniform_cross):
            changed = net(x, t, context=ctx)
            with at_step(3):  # as a sampler publishes its step around each call
                net(x, t, context=ctx)
    assert not torch.allclose(plain, changed)
    assert {s.name for s in sites} == set(attention_modules(net))
    n = len(attention_modules(net))
    assert all(s.step is None and s.heads == 2 for s in sites[:n])  # called outside a sampler: no step
    assert all(s.step == 3 for s in sites[n:])


def test_attach_restores_the_model_even_after_an_error():
    net = text_net()
    only_cross = lambda m: m.kind == "cross"  # noqa: E731
    with pytest.raises(RuntimeError):
        with attach_controller(net, lambda p, s: p, where=only_cross) as attached:
            assert all(m.kind == "cross" for m in attached.values())
            raise RuntimeError("boom")
    assert all(m.controller is None for m in attention_modules(net).values())


def test_controller_must_return_probs_of_the_same_shape():
    net = text_net()
    x, t, ctx = inputs()
    with attach_controller(net, lambda p, s: p[..., :1]):
        with pytest.raises(ValueError, match="must return probs of shape"):
            net(x, t, context=ctx)


def test_key_mask_hides_padding_tokens():
    net = text_net()
    x, t, ctx = inputs()
    mask = torch.tensor([[True, True, True, False, False]] * 2)
    noisy_padding = ctx.clone()
    noisy_padding[:, 3:] = torch.randn(2, 2, 12)
    with torch.no_grad():
        a = net(x, t, context=ctx, context_mask=mask)
        b = net(x, t, context=noisy_padding, context_mask=mask)
    torch.testing.assert_close(a, b)


def test_concatenated_conditioning_and_noise_level_input():
    cfg = UNetConfig(image_size=8, in_channels=1, out_channels=1, cond_channels=1, channels=16, channel_mults=(1, 2), attention_resolutions=(), time_input="noise_level")
    net = UNet(cfg)
    x = torch.randn(2, 1, 8, 8)
    assert net(x, torch.tensor([0.3, 0.9]), cond=torch.randn(2, 1, 8, 8)).shape == x.shape
    with pytest.raises(ValueError, match=r"floats sqrt\(alpha_bar\) in \[0, 1\]"):
        net(x, torch.tensor([3, 900]), cond=torch.randn(2, 1, 8, 8))


def test_bad_inputs_are_refused_with_reasons():
    net = text_net()
    x, t, ctx = inputs()
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3, 16, 16\)"):
        net(torch.randn(2, 1, 16, 16), t, context=ctx)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3, 16, 16\)"):
        net(torch.randn(2, 3, 32, 32), t, context=ctx)
    with pytest.raises(ValueError, match=r"t must be a scalar or have shape \(2,\)"):
        net(x, torch.tensor([1, 2, 3]), context=ctx)
    with pytest.raises(ValueError, match=r"context must have shape \(2, L, 12\)"):
        net(x, t, context=torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match="takes no cond"):
        net(x, t, cond=x, context=ctx)
    with pytest.raises(ValueError, match="divisible"):
        UNetConfig(image_size=18, channel_mults=(1, 2, 2))
    with pytest.raises(ValueError, match="unknown UNetConfig fields"):
        UNetConfig.from_dict({"image_size": 8, "colour": "red"})


def test_runs_in_float64_and_keeps_dtype():
    net = text_net().double()
    x, t, ctx = inputs()
    assert net(x.double(), t, context=ctx.double()).dtype == torch.float64


def test_cross_attention_only_blocks_start_as_the_identity_and_only_cross_attend():
    config = UNetConfig(**{**TEXT.to_dict(), "cross_attention_resolutions": (16,)})
    torch.manual_seed(0)
    net = UNet(config).eval()
    kinds = {(m.resolution, m.kind) for m in attention_modules(net).values()}
    assert (16, "cross") in kinds and (16, "self") not in kinds  # no self-attention over every pixel pair
    plain = UNet(TEXT).eval()
    missing, unexpected = plain.load_state_dict(net.state_dict(), strict=False)
    assert unexpected and not missing  # the new blocks are the only difference
    x, t, ctx = inputs()
    with torch.no_grad():  # their output projections start at zero: the same function as without them
        torch.testing.assert_close(net(x, t, context=ctx), plain(x, t, context=ctx))
    with pytest.raises(ValueError, match="name each side once"):
        UNetConfig(**{**TEXT.to_dict(), "cross_attention_resolutions": tuple(TEXT.attention_resolutions)})
    with pytest.raises(ValueError, match="needs context_dim"):
        UNetConfig(image_size=16, cross_attention_resolutions=(16,))


def test_samplers_publish_their_step_to_the_attention_layers():
    from minidiff import invert_ddim, linear_schedule, sample_ddim, with_inputs

    net, schedule = text_net(), linear_schedule()
    x, _, ctx = inputs()
    steps = []
    ts = schedule.timesteps(4)
    model = with_inputs(net, context=ctx)
    with torch.no_grad(), attach_controller(net, lambda p, s: steps.append((s.step, s.timestep)) or p, where=lambda m: m.name == "mid.attn.cross"):
        sample_ddim(model, x, ts, schedule)
        assert steps == [(i, int(ts[i])) for i in range(4)]  # the index into the timesteps of each call, and its t
        invert_ddim(model, x.clamp(-1, 1), ts, schedule)
        assert steps[4:] == [(i, int(ts[i])) for i in (3, 2, 1, 0)]  # inversion calls the net at timesteps[3], then [2], ...
