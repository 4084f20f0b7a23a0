"""The super-resolution and cascade recipes train (two steps), resume, and evaluate on tiny sizes."""

import pytest
import torch

import minidiff as md

from minidiff.core.unet import UNet
from minidiff.course import zoo
from minidiff.course.recipes import RECIPES, sr
from minidiff.course.recipes.sr import SR_RECIPES
from minidiff.methods.sr3 import upsample


@pytest.mark.parametrize("name", sorted([*SR_RECIPES, "cdm-base8"]))
def test_every_sr_recipe_trains_two_steps_and_checkpoints(name, tmp_path):
    RECIPES[name](str(tmp_path), steps=2)
    state = torch.load(tmp_path / "train_state.pt", weights_only=True)
    assert state["step"] == 2 and torch.isfinite(state["losses"]).all()


def test_bicubic_is_consistent_only_approximately_and_the_metrics_are_computed():
    m = sr.evaluate_sr(lambda low: upsample(low, 32).clamp(-1, 1), sr.world_pairs, n=8)
    assert 10 < m["psnr"] < 40 and 0 < m["ssim"] < 1 and m["consistency_rmse"] > 0


def test_super_resolve_runs_for_plain_and_augmented_stages():
    torch.manual_seed(0)
    high, low = sr.world_pairs("test", 0, 2)
    for config in (sr.SR_UNET, sr.CDM_SR_UNET):
        out = zoo.super_resolve(UNet(config).eval(), low, steps=2, augment_level=100 if config.cond_channels == 4 else None)
        assert out.shape == high.shape


def test_super_resolve_refuses_inputs_the_models_were_not_trained_on():
    plain, stage = UNet(sr.SR_UNET).eval(), UNet(sr.CDM_SR_UNET).eval()
    _, low = sr.world_pairs("test", 0, 2)
    with pytest.raises(ValueError, match="trained on 8x8 inputs"):
        zoo.super_resolve(plain, torch.zeros(2, 3, 16, 16), steps=2)
    with pytest.raises(ValueError, match="has 1 channels; this model takes 3"):
        zoo.super_resolve(plain, low[:, :1], steps=2)
    with pytest.raises(ValueError, match=r"must be a batch \(B, C, h, w\)"):
        zoo.regress(plain, low[0])
    with pytest.raises(ValueError, match="trained without conditioning augmentation"):
        zoo.super_resolve(plain, low, steps=2, augment_level=100)
    for level in (800, -2, 0.5):
        with pytest.raises(ValueError, match=r"integer step in -1..500"):
            zoo.super_resolve(stage, low, steps=2, augment_level=level)
    plain.prediction = None  # what load_sr gives the regression baseline
    with pytest.raises(ValueError, match="use regress"):
        zoo.super_resolve(plain, low, steps=2)


def test_augmented_condition_refuses_fractional_level_tensors():
    from minidiff.core.schedule import linear_schedule
    from minidiff.methods.cascade import augmented_condition

    with pytest.raises(ValueError, match="integer steps"):
        augmented_condition(torch.zeros(2, 3, 8, 8), 32, torch.tensor([0.5, 10.0]), linear_schedule())


def _tiny_text_unet(**unet):
    from minidiff.core.text_encoder import TextConditionedUNet
    from minidiff.core.unet import UNetConfig
    from minidiff.course.recipes.text import text_encoder_config

    torch.manual_seed(0)
    text = text_encoder_config()
    config = UNetConfig(image_size=32, channels=8, channel_mults=(1, 2, 2), num_res_blocks=1, heads=2, context_dim=text.width, **unet)
    return TextConditionedUNet(config, text, "v")


def test_warm_start_keeps_the_pooled_model_when_its_pooled_term_is_the_average():
    """The warm start folds the pooled path's average into the time embedding and adds attention blocks that start
    as identities. So a source whose pooled term is the same for every caption is reproduced exactly."""
    from minidiff.course.recipes.text import base_data, warm_start_from_pooled

    source = _tiny_text_unet(attention_resolutions=(8,), pooled_context=True)
    with torch.no_grad():
        for p in source.unet.parameters():  # make every zero-initialised output layer do something
            if p.abs().sum() == 0:
                p.normal_(std=0.05)
        source.unet.pool_proj.weight.zero_()
        source.unet.pool_proj.bias.normal_()  # a constant pooled term
    target = _tiny_text_unet(attention_resolutions=(16, 8), pooled_context=False)
    new = warm_start_from_pooled(target, source, batches=1)
    assert new and all(".attn" in k and k.startswith(("unet.down.2.", "unet.up.3.", "unet.up.4.")) for k in new)
    batch = base_data(4)(0)
    t = torch.tensor([10, 300, 600, 900])
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(target(x, t, batch["ids"], batch["mask"]), source(x, t, batch["ids"], batch["mask"]), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="lacks weights of the source"):
        warm_start_from_pooled(_tiny_text_unet(attention_resolutions=(), pooled_context=False), source, batches=1)


def test_word_lifts_are_one_without_preference_and_the_inverse_share_when_all_on_the_object():
    from minidiff.course.probes import word_lifts

    share = torch.tensor([[1.0, 0.0, 0.0, 0.0]])  # the object fills one cell of four
    kinds = [["colour words", "other words"]]  # tokens 1 and 2 (0 is the start token)
    probs = torch.full((1, 4, 3), 1 / 3)
    assert word_lifts(probs, share, kinds) == pytest.approx({"colour words": 1.0, "other words": 1.0})
    probs[0, :, 1] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # the colour word only from the object's cell
    assert word_lifts(probs, share, kinds)["colour words"] == pytest.approx(4.0)


def test_attention_lift_of_the_base_model_and_its_refusal_of_two_object_scenes():
    from minidiff.core.checkpoint import load_text_unet
    from minidiff.course.probes import WORD_KINDS, attention_lift
    from minidiff.world.scenes import scenes

    model, schedule, _ = load_text_unet("base")
    pool = scenes("test", 500, 40)
    mean, best = attention_lift(model, schedule, pool[(pool.count == 1).nonzero().flatten()[:8]], 500)
    assert set(mean) == set(best) == set(WORD_KINDS)
    assert all(0 < v < 20 for v in [*mean.values(), *best.values()]) and best["colour words"] >= mean["colour words"] - 1e-6
    with pytest.raises(ValueError, match="one-object scenes"):
        attention_lift(model, schedule, pool[(pool.count == 2).nonzero().flatten()[:2]], 500)


def test_uniform_attention_spreads_each_query_over_the_keys_it_may_see():
    from minidiff import AttentionSite, uniform_attention

    probs = torch.tensor([[[[0.7, 0.3, 0.0], [0.1, 0.9, 0.0]]]])  # (B, heads, queries, keys); key 2 is padding
    flat = uniform_attention({"cross"})(probs, AttentionSite("mid.attn.cross", "cross", 8, 1))
    torch.testing.assert_close(flat, torch.tensor([[[[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]]]]))
    assert uniform_attention({"cross"})(probs, AttentionSite("mid.attn.self", "self", 8, 1)) is probs
    with pytest.raises(ValueError, match="'self' and/or 'cross'"):
        uniform_attention({"crosss"})


def test_attention_report_measures_lift_and_the_uniform_attention_ablation():
    from minidiff.core.checkpoint import load_text_unet
    from minidiff.course.probes import ATTENTION_LIFT_STEPS, attention_report
    from minidiff.course.zoo import load_judge

    model, schedule, _ = load_text_unet("base")
    report, numbers = attention_report(model, schedule, load_judge(), n=4, steps=3)
    assert all(f"| {t} |" in report for t in ATTENTION_LIFT_STEPS) and "cross-attention uniform" in report
    assert {f"lift_colour_t{t}" for t in ATTENTION_LIFT_STEPS} <= set(numbers)
    for f in ("count", "shape", "colour", "size", "position", "tone", "pattern"):
        assert 0 <= numbers[f"uniform_cross_{f}"] <= 1 and 0 <= numbers[f"attention_probe_{f}"] <= 1


def test_word_distances_are_zero_for_a_word_swapped_with_itself_and_refuse_a_missing_word():
    from minidiff.course.probes import word_distances
    from minidiff.course.zoo import load_clip

    encode = load_clip().text
    d = word_distances(encode, (("red", "red"), ("circle", "square")))
    assert d["red/red"] == 0 and d["circle/square"] > 1
    with pytest.raises(ValueError, match="has no word 'purple' to swap"):
        word_distances(encode, (("purple", "red"),))


def test_the_text_probe_reads_each_caption_and_its_loss_reaches_the_unet_only_through_the_text(tmp_path):
    """The text probe's extra loss: heads on the pooled caption states name the scene's attributes; dropped captions
    have no labels; the heads' gradient moves the text encoder and never the UNet directly."""
    import torch.nn.functional as F

    from minidiff import linear_schedule
    from minidiff.course.recipes.detail import TextProbe, probe_loss
    from minidiff.course.recipes.text import make_base_model, probe_data
    from minidiff.course.train import TrainConfig, train
    from minidiff.world.judge import targets
    from minidiff.world.scenes import scenes

    torch.manual_seed(0)
    net = TextProbe(make_base_model())
    batch = probe_data(64, 0, start=5)(0)
    assert torch.equal(batch["ids"], probe_data(64, 0)(5)["ids"])  # a later start continues the same stream
    dropped = batch["mask"].sum(1) == 2  # only <start> <end>: the empty caption
    assert dropped.any() and (~dropped).any()
    truth = targets(scenes("train", 5 * 64, 64))
    assert (batch["label_shape"][dropped] == -1).all() and torch.equal(batch["label_shape"][~dropped], truth["shape"][~dropped])
    ce = F.cross_entropy(net.probe(batch["ids"], batch["mask"])["shape"], batch["label_shape"], ignore_index=-1)
    ce.backward()
    assert all(p.grad is None for p in net.model.unet.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.model.text.parameters())
    result = train(TextProbe(make_base_model()), probe_data(4, 0), linear_schedule(), TrainConfig(steps=2, batch_size=4, prediction="v"),
                   tmp_path, loss_fn=probe_loss(), progress=False)
    assert result.step == 2 and all(torch.isfinite(torch.tensor(result.losses)))


def test_the_judge_recipe_can_train_on_unnamed_detail_and_reads_the_judge_at_each_amount():
    from minidiff.course.recipes.judge import DETAIL_AMOUNTS, judge_by_detail, judge_data
    from minidiff.course.zoo import load_judge
    from minidiff.world.scenes import scenes

    batch = judge_data(8, "random")(3)  # step 3 of the stream: scenes 24..31, each with its own amount
    assert torch.equal(batch["x0"], scenes("train", 24, 8, detail="random").images)
    assert not torch.equal(batch["x0"], judge_data(8)(3)["x0"])  # the plain recipe's batch differs only in detail
    assert torch.equal(batch["shape"], judge_data(8)(3)["shape"])
    table = judge_by_detail(load_judge(), n=64)
    assert list(table) == [f"detail {a:g}" for a in DETAIL_AMOUNTS]
    # the shipped judge was trained on the plain world: it reads it perfectly and loses shape at full detail
    assert table["detail 0"]["shape"] == 1.0 and table["detail 1"]["shape"] < table["detail 0"]["shape"]


def test_the_base_detail_recipe_trains_on_scenes_with_unnamed_detail_and_is_scored_by_their_judge():
    from minidiff.course.recipes import detail, text
    from minidiff.world.scenes import scenes

    plain, detailed = text.probe_data(8, 3)(5), text.probe_data(8, 3, detail="random")(5)
    assert torch.equal(detailed["x0"], scenes("train", 40, 8, detail="random").images)
    assert not torch.equal(detailed["x0"], plain["x0"])
    for key in ("ids", "mask", "label_shape", "label_colour"):  # captions and labels do not depend on the detail
        assert torch.equal(detailed[key], plain[key]), key
    assert RECIPES["base-detail"] is detail.train_base_detail
    assert detail.BASE_DETAIL_JUDGE in md.available_checkpoints()


def test_the_base_detail_recipe_warm_starts_from_base_xattn_and_resumes(tmp_path, capsys):
    from minidiff.course.recipes import detail

    detail.train_base_detail(str(tmp_path), steps=1)
    printed = capsys.readouterr().out
    assert "warm start from base-xattn" in printed and "step 1/1" in printed and "word distances after" in printed
    detail.train_base_detail(str(tmp_path), steps=1)  # a second call finds the finished state and trains nothing
    again = capsys.readouterr().out
    assert "trained to step 1 " in again and "step 1/1" not in again
