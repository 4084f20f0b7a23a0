"""The methods on small sizes: exact answers where the math gives them, and clear errors for bad input."""

import pytest
import torch

from minidiff import invert_ddim, linear_schedule, sample_ddim, sample_ddpm
from minidiff.core.text_encoder import TextConditionedUNet, TextEncoderConfig
from minidiff.core.unet import UNet, UNetConfig
from minidiff.methods.direct_inversion import add_offsets, direct_inversion
from minidiff.methods.ilvr import ilvr_hook, lowpass
from minidiff.methods.null_text import null_text_inversion, per_step_null_denoiser
from minidiff.methods.sdedit import sdedit, sdedit_timesteps
from minidiff.world.toy import image_mixture

S = linear_schedule()


def images(n=4, size=8, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def mixture_denoiser(seed=0):
    return image_mixture(images(6, seed=seed), std=0.1).denoiser(S)


# -- SDEdit ----------------------------------------------------------------------------------------


def test_sdedit_at_strength_zero_returns_the_guide_and_at_one_runs_every_step():
    guide = images(2)
    assert torch.equal(sdedit(mixture_denoiser(), guide, 0.0, S), guide)
    assert len(sdedit_timesteps(1.0, 50, S)) == 50 and sdedit_timesteps(1.0, 50, S)[0] == S.timesteps(50)[0]
    assert sdedit_timesteps(0.4, 50, S).tolist() == S.timesteps(50)[-20:].tolist()


def test_sdedit_faithfulness_falls_with_strength():
    guide = images(64, seed=3)  # not images of the mixture: the model pulls them towards its modes
    distance = []
    for strength in (0.0, 0.1, 0.3, 0.5, 0.7, 0.9):
        out = sdedit(mixture_denoiser(), guide, strength, S, num_steps=20, generator=torch.Generator().manual_seed(0))
        distance.append((out - guide).square().mean().item())
    # monotone within noise: once the output is a fresh sample, the distance only fluctuates (~1%)
    assert all(b > 0.97 * a for a, b in zip(distance, distance[1:])), distance
    assert distance[0] == 0 and distance[2] > 0.1 and distance[-1] > 1.5 * distance[1], distance


def test_masked_sdedit_keeps_the_kept_region_exactly():
    guide = images(2)
    keep = torch.zeros(1, 1, 8, 8)
    keep[..., :4] = 1
    out = sdedit(mixture_denoiser(), guide, 0.8, S, num_steps=10, keep=keep, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out[..., :4], guide[..., :4], rtol=0, atol=1e-6)
    assert (out[..., 4:] - guide[..., 4:]).abs().max() > 0.1


@pytest.mark.parametrize("strength", [-0.1, 1.5, float("nan"), "half"])
def test_sdedit_refuses_strengths_outside_0_1(strength):
    with pytest.raises(ValueError, match=r"strength must be a number in \[0, 1\]"):
        sdedit(mixture_denoiser(), images(1), strength, S)


def test_sdedit_refuses_a_mask_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"keep must have shape \(1 or 1, 1 or 3, 8, 8\)"):
        sdedit(mixture_denoiser(), images(1), 0.5, S, keep=torch.ones(1, 1, 4, 4))


# -- ILVR --------------------------------------------------------------------------------------------


def test_exact_lowpass_is_a_projection_and_bicubic_is_not():
    x = images(2, size=16)
    p = lowpass(x, 4)
    torch.testing.assert_close(lowpass(p, 4), p, rtol=0, atol=1e-6)
    b = lowpass(x, 4, "bicubic")
    assert (lowpass(b, 4, "bicubic") - b).abs().max() > 1e-3
    assert lowpass(x, 1).equal(x)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_ilvr_with_the_exact_filter_matches_the_reference_low_frequencies_to_float_precision(sampler):
    reference = images(1, seed=7)
    noise = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    hook = ilvr_hook(reference, 4, S, generator=g)
    run = sample_ddpm if sampler == "ddpm" else sample_ddim
    kwargs = {"generator": g} if sampler == "ddpm" else {}
    x0 = run(mixture_denoiser(), noise, S.timesteps(20), S, on_step=hook, **kwargs)
    error = (lowpass(x0, 4) - lowpass(reference, 4)).abs().max()
    assert error < 1e-6
    assert (x0 - reference).abs().max() > 0.05  # only the low frequencies are pinned


def test_ilvr_bad_inputs():
    with pytest.raises(ValueError, match=r"dividing the image size 8x8 \(one of \[1, 2, 4, 8\]\), got 3"):
        ilvr_hook(images(1), 3, S)
    with pytest.raises(ValueError, match="stop must be"):
        ilvr_hook(images(1), 2, S, stop=1000)
    hook = ilvr_hook(images(1, size=16), 2, S)
    with pytest.raises(ValueError, match=r"reference has shape \(1, 3, 16, 16\); the samples are \(2, 3, 8, 8\)"):
        sample_ddim(mixture_denoiser(), torch.randn(2, 3, 8, 8), S.timesteps(2), S, on_step=hook)


# -- inversion -----------------------------------------------------------------------------------------


def tiny_text_model(seed=0):
    torch.manual_seed(seed)
    unet = UNetConfig(image_size=8, channels=16, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(4,), context_dim=16, pooled_context=True)
    model = TextConditionedUNet(unet, TextEncoderConfig(vocab_size=10, max_tokens=6, width=16), prediction="v").eval()
    for p in model.parameters():  # an untrained net's output layer is zero; give it something to say
        p.data.add_(0.05 * torch.randn_like(p))
    ids, null_ids = torch.tensor([[1, 5, 6, 2, 0, 0]]), torch.tensor([[1, 2, 0, 0, 0, 0]])
    with torch.no_grad():
        prompt = (model.encode(ids, ids != 0), ids != 0)
        null = (model.encode(null_ids, null_ids != 0), null_ids != 0)
    return model, prompt, null


def test_ddim_inversion_with_the_optimal_mixture_denoiser_round_trips():
    mix = image_mixture(images(3).double(), std=0.1)
    x0 = mix.means[:2]
    ts = S.timesteps(500)
    traj = invert_ddim(mix.denoiser(S), x0, ts, S)
    back = sample_ddim(mix.denoiser(S), traj[0], ts, S)
    assert (back - x0).abs().max() < 0.02


@pytest.mark.parametrize("scale", [1.0, 7.5])
def test_direct_inversion_reconstructs_to_float_precision_at_any_scale(scale):
    model, (ctx, m), (null, nm) = tiny_text_model()
    x0 = images(2)
    ts = S.timesteps(10)
    guided = model.denoiser(S, ctx, null, scale, m, nm)
    plain = model.denoiser(S, ctx, null, 1.0, m, nm)
    inv = direct_inversion(guided, x0, ts, S, inversion_model=plain)
    with torch.no_grad():
        drifted = sample_ddim(guided, inv.noise, ts, S)
        rebuilt = sample_ddim(guided, inv.noise, ts, S, on_step=add_offsets(inv.offsets))
    assert (rebuilt - x0).abs().max() < 1e-4  # float32 rounding of x + (pivot - x), amplified by the guidance scale
    if scale > 1:
        assert (drifted - x0).abs().max() > 100 * (rebuilt - x0).abs().max()


def test_direct_inversion_offsets_go_to_the_source_rows_only():
    model, (ctx, m), (null, nm) = tiny_text_model()
    x0 = images(1)
    ts = S.timesteps(5)
    guided = model.denoiser(S, ctx, null, 3.0, m, nm)
    inv = direct_inversion(guided, x0, ts, S)
    with torch.no_grad():
        pair = sample_ddim(guided, inv.noise.expand(2, -1, -1, -1), ts, S, on_step=add_offsets(inv.offsets, rows=slice(0, 1)))
        free = sample_ddim(guided, inv.noise, ts, S)
    assert (pair[0] - x0[0]).abs().max() < 1e-4
    torch.testing.assert_close(pair[1], free[0], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="same timesteps"):
        sample_ddim(guided, inv.noise, S.timesteps(6), S, on_step=add_offsets(inv.offsets))
    assert inv.timesteps == tuple(ts.tolist())
    with pytest.raises(ValueError, match="recorded at t = .*sample with the inversion's timesteps"):  # fewer steps: no index overflow
        sample_ddim(guided, inv.noise, S.timesteps(3), S, on_step=add_offsets(inv))
    with torch.no_grad():  # the checked form adds the same offsets
        torch.testing.assert_close(sample_ddim(guided, inv.noise, ts, S, on_step=add_offsets(inv)),
                                   sample_ddim(guided, inv.noise, ts, S, on_step=add_offsets(inv.offsets)), rtol=0, atol=0)


def test_null_text_inversion_beats_plain_ddim_inversion_under_guidance():
    model, prompt, null = tiny_text_model()
    x0 = images(2)
    ts = S.timesteps(8)
    scale = 7.5
    result = null_text_inversion(model, x0, prompt, null, scale, ts, S)
    assert result.null_contexts.shape == (8, 2, 6, 16) and result.iterations.max() <= 10
    assert all(p.grad is None for p in model.parameters())  # only the embeddings were differentiated
    with torch.no_grad():
        plain = sample_ddim(model.denoiser(S, prompt[0], null[0], scale, prompt[1], null[1]), result.noise, ts, S)
        tuned = sample_ddim(per_step_null_denoiser(model, S, prompt, result.null_contexts, null[1], scale, ts), result.noise, ts, S)
    err_plain, err_tuned = (plain - x0).square().mean(), (tuned - x0).square().mean()
    assert err_tuned < 0.5 * err_plain, (err_plain, err_tuned)
    # every step keeps its own embedding (Adam updates in place: a shared tensor would leave all steps with the last one)
    assert all((result.null_contexts[i] - result.null_contexts[i - 1]).abs().max() > 0 for i in range(1, 8))
    # sampling with the stored embeddings retraces the optimisation: it ends where the last step's loss says
    torch.testing.assert_close((tuned - x0).square().flatten(1).mean(1), result.losses[-1], rtol=1e-3, atol=1e-7)
    with pytest.raises(ValueError, match="inner_steps must be"):
        null_text_inversion(model, x0, prompt, null, scale, ts, S, inner_steps=-1)


def test_inversion_bad_inputs_are_refused_with_reasons():
    model, prompt, null = tiny_text_model()
    guided = model.denoiser(S, prompt[0], null[0], 7.5, prompt[1], null[1])
    ts = S.timesteps(4)
    pixels = (images(1) + 1) * 127.5  # forgot to normalise
    for invert in (lambda x: invert_ddim(guided, x, ts, S), lambda x: direct_inversion(guided, x, ts, S),
                   lambda x: null_text_inversion(model, x, prompt, null, 7.5, ts, S)):
        with pytest.raises(ValueError, match=r"images must be in \[-1, 1\].*x / 127.5 - 1"):
            invert(pixels)
        with pytest.raises(ValueError, match="float tensor in \\[-1, 1\\], got dtype torch.uint8"):
            invert(pixels.to(torch.uint8))
        with pytest.raises(ValueError, match=r"x must have shape \(B, 3, 8, 8\), got \(2, 3, 16, 16\)"):
            invert(images(1, size=16))
    for steps in (0, -5):
        with pytest.raises(ValueError, match="num_steps must be an integer in 1..1000"):
            S.timesteps(steps)
    with pytest.raises(ValueError, match="timesteps must be a non-empty"):
        invert_ddim(guided, images(1), [], S)


# -- Prompt-to-Prompt ------------------------------------------------------------------------------


def p2p_setup(source_ids, target_ids, seed=0):
    from minidiff.core.text_encoder import TextConditionedUNet, TextEncoderConfig

    torch.manual_seed(seed)
    unet = UNetConfig(image_size=8, channels=16, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(4,), context_dim=16)
    model = TextConditionedUNet(unet, TextEncoderConfig(vocab_size=10, max_tokens=6, width=16), prediction="v").eval()
    for p in model.parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    ids = torch.tensor([source_ids, target_ids])
    null_ids = torch.tensor([[1, 2, 0, 0, 0, 0]])
    with torch.no_grad():
        ctx, null = model.encode(ids, ids != 0), model.encode(null_ids, null_ids != 0)
    return model, model.denoiser(S, ctx, null, 3.0, ids != 0, null_ids != 0), ids


def sample_pair(model, denoiser, controller, ts, on_step=None, noise=None):
    from minidiff import attach_controller

    noise = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(5)).expand(2, -1, -1, -1) if noise is None else noise
    with torch.no_grad(), attach_controller(model, controller):
        return sample_ddim(denoiser, noise, ts, S, on_step=on_step)


def test_p2p_identity_edit_reproduces_the_source():
    from minidiff.methods.prompt_to_prompt import PromptToPrompt

    model, denoiser, ids = p2p_setup([1, 5, 6, 2, 0, 0], [1, 5, 6, 2, 0, 0])
    ts = S.timesteps(6)
    out = sample_pair(model, denoiser, PromptToPrompt(ts, ids[0], ids[1]), ts)
    torch.testing.assert_close(out[1], out[0], rtol=0, atol=1e-5)


def test_p2p_replace_copies_the_source_maps_and_changes_only_through_the_words():
    from minidiff.core.attention import AttentionStore, chain_controllers
    from minidiff.methods.prompt_to_prompt import PromptToPrompt

    model, denoiser, ids = p2p_setup([1, 5, 6, 2, 0, 0], [1, 5, 7, 2, 0, 0])
    ts = S.timesteps(6)
    store = AttentionStore()
    out = sample_pair(model, denoiser, chain_controllers(PromptToPrompt(ts, ids[0], ids[1], cross_replace=1.0, self_replace=0.0), store), ts)
    maps = store.maps([0])  # what the network saw at the first step, after the edit
    torch.testing.assert_close(maps[1], maps[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(maps.sum(-1), torch.ones_like(maps.sum(-1)), rtol=0, atol=1e-5)  # rows of probabilities
    assert (out[1] - out[0]).abs().max() > 1e-3  # the swapped word still acts through the attention values


def test_p2p_replace_refuses_prompts_of_different_lengths_and_explains_refine():
    from minidiff.methods.prompt_to_prompt import PromptToPrompt, token_alignment

    ts = S.timesteps(4)
    with pytest.raises(ValueError, match="same number of tokens.*mode='refine'"):
        PromptToPrompt(ts, torch.tensor([1, 5, 6, 2, 0]), torch.tensor([1, 5, 8, 6, 2]))
    mapper, keep = token_alignment(torch.tensor([1, 5, 6, 2, 0]), torch.tensor([1, 5, 8, 6, 2]))
    assert keep.tolist() == [1, 1, 0, 1, 1] and mapper[[0, 1, 3, 4]].tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="fraction of the steps"):
        PromptToPrompt(ts, torch.tensor([1, 2]), torch.tensor([1, 2]), cross_replace=1.5)


def test_p2p_refuses_a_sampler_over_other_timesteps():
    from minidiff import attach_controller
    from minidiff.methods.prompt_to_prompt import PromptToPrompt

    model, denoiser, ids = p2p_setup([1, 5, 6, 2, 0, 0], [1, 5, 7, 2, 0, 0])
    with pytest.raises(ValueError, match="build the controller with the sampler's timesteps"):
        sample_pair(model, denoiser, PromptToPrompt(S.timesteps(6, spacing="trailing"), ids[0], ids[1]), S.timesteps(6))
    with pytest.raises(ValueError, match="outside a sampler"):
        with torch.no_grad(), attach_controller(model.unet, PromptToPrompt(S.timesteps(6), ids[0], ids[1])):
            denoiser(torch.zeros(2, 3, 8, 8), torch.full((2,), 10))


def test_reweight_by_one_changes_nothing_and_by_zero_changes_the_image():
    from minidiff.methods.prompt_to_prompt import PromptToPrompt

    model, denoiser, ids = p2p_setup([1, 5, 6, 2, 0, 0], [1, 5, 6, 2, 0, 0])
    ts = S.timesteps(6)
    plain = sample_pair(model, denoiser, PromptToPrompt(ts, ids[0], ids[1]), ts)
    one = sample_pair(model, denoiser, PromptToPrompt(ts, ids[0], ids[1], reweight={2: 1.0}), ts)
    zero = sample_pair(model, denoiser, PromptToPrompt(ts, ids[0], ids[1], reweight={2: 0.0}), ts)
    torch.testing.assert_close(one, plain, rtol=0, atol=1e-6)
    assert (zero[1] - plain[1]).abs().max() > 1e-3 and torch.allclose(zero[0], plain[0], atol=1e-6)


def test_local_blend_keeps_the_source_outside_the_edited_words_region():
    from minidiff import StepState
    from minidiff.core.attention import AttentionSite, AttentionStore
    from minidiff.methods.prompt_to_prompt import local_blend

    ts = S.timesteps(4)
    store = AttentionStore()
    maps = torch.full((2, 16, 6), 1 / 6)  # (branches, 4x4 queries, 6 tokens): uniform...
    maps[:, :, 2] = 0.0
    maps[:, 0, 2] = 1.0  # ...except token 2, which only the top-left query attends to
    guided = torch.cat([torch.full((2, 1, 16, 6), 1 / 6), maps[:, None]])  # [uncond; cond], one head
    store(guided, AttentionSite("up.1.attn0.cross", "cross", 4, 1, step=0))  # step 0: one layer at 4x4
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    hook = local_blend(store, [[2], [2]], ts, start=0.0)
    out = hook(StepState(0, int(ts[0]), int(ts[1]), x, x, x, x))
    # max-pooling grows the top-left query to 2x2 queries = the top-left 4x4 pixels; the rest is the source
    torch.testing.assert_close(out[1, :, :4, :4], x[1, :, :4, :4])
    torch.testing.assert_close(out[1, :, 4:, :], x[0, :, 4:, :])
    torch.testing.assert_close(out[1, :, :, 4:], x[0, :, :, 4:])
    assert torch.equal(out[0], x[0])


def test_attention_store_averages_one_resolution_and_names_the_ones_it_saw():
    from minidiff.core.attention import AttentionSite, AttentionStore

    coarse = torch.rand(4, 2, 4, 5)  # [uncond; cond] x 2 branches, 2 heads, 2x2 queries, 5 tokens
    fine = torch.rand(4, 2, 16, 5)  # the same at 4x4

    def record(store):
        store(coarse, AttentionSite("mid.attn.cross", "cross", 2, 2, step=0))
        store(fine, AttentionSite("up.1.attn0.cross", "cross", 4, 2, step=0))
        store(fine * 3, AttentionSite("up.1.attn1.cross", "cross", 4, 2, step=0))
        return store

    finest = record(AttentionStore()).maps()
    torch.testing.assert_close(finest, (2 * fine[2:].mean(1)).reshape(2, 4, 4, 5))  # mean of the two 4x4 layers
    torch.testing.assert_close(record(AttentionStore(resolution=2)).maps(), coarse[2:].mean(1).reshape(2, 2, 2, 5))
    with pytest.raises(ValueError, match=r"no attention at 8x8.*\[2, 4\]"):
        record(AttentionStore(resolution=8)).maps()
    store = record(AttentionStore(mean_heads=False))  # every head, by (step, layer)
    assert torch.equal(store.at(0, "up.1.attn1.cross"), fine[2:] * 3) and store.steps == [0]
    with pytest.raises(ValueError, match="even size"):
        AttentionStore()(fine[:3], AttentionSite("up.1.attn0.cross", "cross", 4, 2, step=0))


def test_direct_inversion_with_p2p_reconstructs_the_source_branch():
    from minidiff.methods.prompt_to_prompt import PromptToPrompt

    model, denoiser, ids = p2p_setup([1, 5, 6, 2, 0, 0], [1, 5, 7, 2, 0, 0])
    x0 = images(1)
    ts = S.timesteps(6)
    null_ids = torch.tensor([[1, 2, 0, 0, 0, 0]])
    with torch.no_grad():
        ctx, null = model.encode(ids[:1], ids[:1] != 0), model.encode(null_ids, null_ids != 0)
        source_only = model.denoiser(S, ctx, null, 3.0, ids[:1] != 0, null_ids != 0)
        plain = model.denoiser(S, ctx, null, 1.0, ids[:1] != 0, null_ids != 0)
    inv = direct_inversion(source_only, x0, ts, S, inversion_model=plain)
    out = sample_pair(model, denoiser, PromptToPrompt(ts, ids[0], ids[1]), ts, on_step=add_offsets(inv.offsets, rows=slice(0, 1)),
                      noise=inv.noise.expand(2, -1, -1, -1))
    assert (out[0] - x0[0]).abs().max() < 1e-4
    assert (out[1] - x0[0]).abs().max() > 1e-3


# -- SR3 and cascades ----------------------------------------------------------------------------------


def test_sr3_levels_cover_each_interval_between_neighbouring_alpha_bars():
    from minidiff.methods.sr3 import continuous_levels

    levels = continuous_levels(S, 20000, torch.Generator().manual_seed(0))
    assert levels.min() >= S.at(999).sqrt() and levels.max() <= 1.0
    # continuous: far more distinct values than the 1000 discrete levels
    assert len(torch.unique(levels)) > 10000


def test_sr3_trains_and_samples_through_the_shared_sampler():
    from minidiff.methods.sr3 import sr3_denoiser, sr3_loss, upsample

    torch.manual_seed(0)
    net = UNet(UNetConfig(image_size=8, channels=16, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(), cond_channels=3, time_input="noise_level"))
    high = images(4)
    low = torch.nn.functional.avg_pool2d(high, 2)
    loss = sr3_loss(net, {"x0": high, "cond": upsample(low, 8)}, S, torch.Generator().manual_seed(0))
    loss.backward()
    assert loss.item() > 0
    with torch.no_grad():  # any number of steps: the net was told levels, not steps
        for n in (3, 7):
            out = sample_ddim(sr3_denoiser(net, upsample(low, 8), S), torch.randn(4, 3, 8, 8), S.timesteps(n), S)
            assert out.shape == high.shape


def test_sr3_v_prediction_targets_v_and_its_denoiser_returns_eps():
    from minidiff.methods.sr3 import sr3_denoiser, sr3_loss

    x0, cond = images(3), images(3, seed=1)

    def true_v(x, level, cond):  # knows x0: the exact v for the noised input it is given
        g = level[:, None, None, None]
        s = (1 - g**2).sqrt()
        return g * (x - g * x0) / s - s * x0

    loss = sr3_loss(true_v, {"x0": x0, "cond": cond}, S, torch.Generator().manual_seed(0), prediction="v")
    assert loss < 1e-10
    assert sr3_loss(true_v, {"x0": x0, "cond": cond}, S, torch.Generator().manual_seed(0)) > 0.1  # as eps it is wrong
    t = torch.full((3,), 500)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(2))
    ab = S.at(t, like=x0)
    x = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    torch.testing.assert_close(sr3_denoiser(true_v, cond, S, prediction="v")(x, t), eps, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="prediction must be 'eps' or 'v'"):
        sr3_loss(true_v, {"x0": x0, "cond": cond}, S, torch.Generator().manual_seed(0), prediction="x0")


def test_sr3_and_cascade_bad_inputs():
    from minidiff.methods.cascade import augmented_condition
    from minidiff.methods.sr3 import check_low, upsample

    with pytest.raises(ValueError, match="must be a multiple of the low resolution 3"):
        upsample(torch.zeros(1, 3, 3, 3), 8)
    with pytest.raises(ValueError, match="has 1 channels; this model takes 3"):
        check_low(None, torch.zeros(1, 1, 4, 4), 8, 3)
    with pytest.raises(ValueError, match="needs a square image whose side divides"):
        check_low(None, torch.zeros(1, 3, 3, 3), 8, 3)
    with pytest.raises(ValueError, match=r"augmentation level must be an integer step in -1..500"):
        augmented_condition(torch.zeros(1, 3, 4, 4), 8, 900, S)


def test_cascade_condition_without_augmentation_is_the_upsampled_image_and_a_level_channel_of_ones():
    from minidiff.methods.cascade import augmented_condition
    from minidiff.methods.sr3 import upsample

    low = images(2, size=4)
    c = augmented_condition(low, 8, -1, S)
    torch.testing.assert_close(c[:, :3], upsample(low, 8))
    assert torch.equal(c[:, 3:], torch.ones(2, 1, 8, 8))
    noisy = augmented_condition(low, 8, 300, S, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(noisy[:, 3:], torch.full((2, 1, 8, 8), S.at(300).sqrt().item()))


# -- optimisation-based editing and Pix2Pix-Zero ---------------------------------------------------------


def test_imagic_leaves_the_model_alone_and_checks_eta():
    from minidiff.methods.imagic import imagic

    model, (ctx, m), _ = tiny_text_model()
    before = [p.clone() for p in model.parameters()]
    result = imagic(model, images(1), (ctx, m), S, embedding_steps=3, finetune_steps=2, batch=2)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not torch.equal(result.e_opt, result.e_tgt) and len(result.finetune_losses) == 2
    torch.testing.assert_close(result.embedding(0.0), result.e_opt)
    torch.testing.assert_close(result.embedding(1.0), result.e_tgt)
    with pytest.raises(ValueError, match=r"eta must be in \[0.0, 1.0\]"):
        result.embedding(1.3)


def test_diffusion_clip_finetunes_a_copy_and_the_directional_loss_is_zero_when_aligned():
    from minidiff.methods.diffusion_clip import diffusion_clip_edit, diffusion_clip_finetune, directional_clip_loss, partial_timesteps

    assert partial_timesteps(500, 5, S).tolist() == [500, 400, 300, 200, 100]
    d = torch.tensor([[1.0, 0.0]])
    assert directional_clip_loss(torch.tensor([[3.0, 1.0]]), torch.tensor([[1.0, 1.0]]), d).abs().max() < 1e-6
    model, (ctx, m), (null, nm) = tiny_text_model()
    make = lambda net: net.denoiser(S, ctx, null, 1.0, m, nm)  # noqa: E731
    encode = lambda x: x.mean((2, 3))  # noqa: E731  a "CLIP" that sees mean colour: direction = more red
    tuned = diffusion_clip_finetune(model, make, images(2), encode, torch.tensor([[1.0, 0.0, 0.0]]), S, iterations=2, t0=300)
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), tuned.model.parameters()))
    out = diffusion_clip_edit(model, make, tuned.model, images(2), S, t0=300, steps=4)
    assert out.shape == (2, 3, 8, 8)


def test_pix2pix_zero_pieces():
    from minidiff.methods.pix2pix_zero import auto_correlation_loss, edit_direction, kl_loss, regularise_noise

    with pytest.raises(ValueError, match="at least one source and one target sentence"):
        edit_direction(torch.zeros(0, 4, 8), torch.zeros(3, 4, 8))
    torch.testing.assert_close(edit_direction(torch.zeros(2, 4, 8), torch.ones(3, 4, 8)), torch.ones(1, 4, 8))
    g = torch.Generator().manual_seed(0)
    white = torch.randn(1, 3, 16, 16, generator=g)
    assert kl_loss(white).abs() < 0.05
    smooth = torch.nn.functional.avg_pool2d(torch.randn(1, 3, 18, 18, generator=g), 3, stride=1) * 3  # correlated noise
    before = auto_correlation_loss(smooth, torch.Generator().manual_seed(1))
    after = auto_correlation_loss(regularise_noise(smooth, torch.Generator().manual_seed(2)), torch.Generator().manual_seed(1))
    assert after < 0.5 * before


def test_cross_attention_guidance_does_nothing_when_the_maps_already_match():
    from minidiff import attach_controller
    from minidiff.core.attention import AttentionStore, at_step
    from minidiff.methods.pix2pix_zero import cross_attention_guidance

    model, (ctx, m), (null, nm) = tiny_text_model()
    ts = S.timesteps(3)
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    recorder = AttentionStore(mean_heads=False)
    with torch.no_grad(), attach_controller(model.unet, recorder), at_step(0):
        model.denoiser(S, ctx, null, 2.0, m, nm)(x, torch.full((1,), int(ts[0])))
    _, guide = cross_attention_guidance(model, S, (ctx, m), recorder, ts, amount=0.1)
    torch.testing.assert_close(guide(x, 0), x)  # the same prompt at the same x: zero gradient
    _, guide_other = cross_attention_guidance(model, S, (ctx.flip(1), m), recorder, ts, amount=0.1)
    assert (guide_other(x, 0) - x).abs().max() > 0
