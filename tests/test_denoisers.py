"""Denoiser wrappers: guidance, conditioning, parameterisations, clipping."""

import pytest
import torch

from minidiff import UNet, UNetConfig, linear_schedule, with_cfg, with_inputs, with_noise_level, with_prediction, with_text_cfg, with_x0_clipping
from minidiff.world.toy import ring_mixture

S = linear_schedule()


def test_cfg_interpolates_and_extrapolates():
    mix = ring_mixture()
    cond, uncond = mix.restrict(0).denoiser(S), mix.denoiser(S)
    x, t = torch.randn(5, 2), torch.full((5,), 300)
    assert with_cfg(uncond, cond, 1.0) is cond
    torch.testing.assert_close(with_cfg(uncond, cond, 0.0)(x, t), uncond(x, t))
    e_u, e_c = uncond(x, t), cond(x, t)
    torch.testing.assert_close(with_cfg(uncond, cond, 3.0)(x, t), e_u + 3 * (e_c - e_u))
    with pytest.raises(ValueError, match="guidance scale must be >= 0"):
        with_cfg(uncond, cond, -1.0)


def test_batched_text_cfg_equals_two_separate_calls():
    torch.manual_seed(0)
    net = UNet(UNetConfig(image_size=8, channels=16, channel_mults=(1, 2), attention_resolutions=(4,), context_dim=6)).eval()
    for p in net.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    x, t = torch.randn(3, 3, 8, 8), torch.full((3,), 40)
    ctx, null = torch.randn(1, 4, 6), torch.randn(1, 4, 6)
    separate = with_cfg(with_inputs(net, context=null), with_inputs(net, context=ctx), 5.0)
    batched = with_text_cfg(net, ctx, null, 5.0)
    with torch.no_grad():
        torch.testing.assert_close(batched(x, t), separate(x, t), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="batch size 2, expected 1 or 3"):
        with_inputs(net, context=torch.randn(2, 4, 6))(x, t)


def test_prediction_wrappers_agree_with_the_eps_model():
    mix = ring_mixture()
    eps_model = mix.denoiser(S)
    x, t = torch.randn(5, 2, dtype=torch.float64), torch.full((5,), 700)
    x0_model = lambda x, t: S.predict_x0(x, t, eps_model(x, t))  # noqa: E731
    v_model = lambda x, t: S.v_target(S.predict_x0(x, t, eps_model(x, t)), t, eps_model(x, t))  # noqa: E731
    torch.testing.assert_close(with_prediction(x0_model, S, "x0")(x, t), eps_model(x, t))
    torch.testing.assert_close(with_prediction(v_model, S, "v")(x, t), eps_model(x, t))


def test_noise_level_wrapper_feeds_sqrt_alpha_bar():
    seen = []
    model = with_noise_level(lambda x, level: seen.append(level) or torch.zeros_like(x), S)
    model(torch.zeros(2, 3), torch.tensor([0, 999]))
    torch.testing.assert_close(seen[0], S.at(torch.tensor([0, 999])).sqrt().float())


def test_x0_clipping_keeps_the_implied_x0_in_range():
    wild = lambda x, t: -10 * torch.ones_like(x)  # noqa: E731  implies x0 far above 1
    x, t = torch.zeros(4, 2), torch.full((4,), 500)
    x0 = S.predict_x0(x, t, with_x0_clipping(wild, S)(x, t))
    torch.testing.assert_close(x0, torch.ones_like(x0))


def test_text_model_denoiser_returns_eps_whatever_the_net_predicts():
    from minidiff.core.text_encoder import TextConditionedUNet, TextEncoderConfig

    torch.manual_seed(0)
    unet = UNetConfig(image_size=8, channels=16, channel_mults=(1, 2), attention_resolutions=(4,), context_dim=16)
    model = TextConditionedUNet(unet, TextEncoderConfig(vocab_size=10, max_tokens=6, width=16), prediction="v").eval()
    for p in model.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    ids = torch.tensor([[1, 5, 6, 2, 0, 0]])
    mask = ids != 0
    null_ids = torch.tensor([[1, 2, 0, 0, 0, 0]])
    x, t = torch.randn(2, 3, 8, 8), torch.full((2,), 600)
    with torch.no_grad():
        ctx, null = model.encode(ids, mask), model.encode(null_ids, null_ids != 0)
        v_u = model.unet(x, t, context=null.expand(2, -1, -1), context_mask=(null_ids != 0).expand(2, -1))
        v_c = model.unet(x, t, context=ctx.expand(2, -1, -1), context_mask=mask.expand(2, -1))
        expected = S.eps_from(v_u + 2.0 * (v_c - v_u), x, t, "v")
        got = model.denoiser(S, ctx, null, 2.0, mask, null_ids != 0)(x, t)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="context_dim"):
        TextConditionedUNet(unet, TextEncoderConfig(vocab_size=10, width=32))
