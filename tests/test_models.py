"""The shipped world models do what their cards say, checked on small held-out samples."""

import pytest
import torch

import minidiff as md
from minidiff.course import probes, zoo
from minidiff.course.gates import stored_edits, stored_gates
from minidiff.course.recipes.clip import scene_keys
from minidiff.world.captions import Tokenizer, caption, captions
from minidiff.world.judge import FAMILIES, agreement, targets
from minidiff.world.scenes import scenes

TEST = scenes("test", 0, 300)


@pytest.fixture(scope="module")
def judge():
    return zoo.load_judge()


def test_judge_reads_held_out_scenes(judge):
    acc = agreement(judge.predict(TEST.images), targets(TEST))
    assert min(acc.values()) >= 0.98, acc


def test_judge_detail_reads_the_plain_world_and_full_unnamed_detail():
    # catches a judge-detail that was not trained on the detail (the plain judge reads shape 79% at full detail)
    judge = zoo.load_judge("judge-detail")
    plain = agreement(judge.predict(TEST.images), targets(TEST))
    detailed_scenes = scenes("test", 0, 300, detail=1.0)
    detailed = agreement(judge.predict(detailed_scenes.images), targets(detailed_scenes))
    assert min(plain.values()) >= 0.98, plain
    assert min(detailed.values()) >= 0.97, detailed  # measured on 2,000 (its card): shape 99.5%, the rest 100%


#: well below the shipped CLIP's measured top-1 (see its card), so this catches breakage, not noise
CLIP_TOP1_BOUND = 0.9


def test_clip_retrieves_matching_captions():
    clip = zoo.load_clip()
    keys = scene_keys(TEST)
    ids, mask = Tokenizer()([caption(TEST, i, 0) for i in range(len(TEST))])
    with torch.no_grad():
        sim = clip.encode_image(TEST.images) @ clip.encode_text(ids, mask).T
    top1 = (keys[sim.argmax(1)] == keys).float().mean()
    assert top1 >= CLIP_TOP1_BOUND, top1


def prompt_following(name: str, judge):
    """A shipped text model and the judge's agreement with 24 held-out captions (its recommended scale, 20 steps)."""
    model, schedule, ckpt = md.load_text_unet(name)
    few = TEST[:24]
    samples = zoo.sample_prompts(model, schedule, captions(few, torch.Generator().manual_seed(0)), scale=ckpt.config["guidance_scale"], steps=20)
    return model, schedule, agreement(judge.predict(samples), targets(few))


@pytest.mark.skipif("base" not in md.available_checkpoints(), reason="the base model is trained by issue 3's recipe")
def test_base_model_follows_its_prompt(judge):
    _, _, acc = prompt_following("base", judge)
    # chance: 1/3 on shape, 1/4 on colour. The card measures (512 samples) shape 56%, every other family >= 97%;
    # these 24 samples give shape 64%, colour 96%, the rest 100%. The bounds leave room for a few flipped samples.
    assert acc["shape"] >= 0.45, acc  # the model's known weak family: well above chance, far below the 90% goal
    assert acc["colour"] >= 0.85 and min(acc["size"], acc["position"], acc["tone"], acc["pattern"]) >= 0.9, acc
    assert set(acc) == set(FAMILIES)


#: sr3-world's card: consistency RMSE 0.0137 (256 pairs, 50 steps); bicubic's is 0.025
SR3_CONSISTENCY_BOUND = 0.02
#: results/sr3.json (256 scenes): world-FD bicubic 510, SR3 98.5, regression 93.1 (real vs real 50.0). On the test's 32
#: images (FD is biased upwards for small sets): the true scenes 405; above that bicubic +261, SR3 -27, regression -31
SR3_FD_FACTOR = 4.0


@pytest.fixture(scope="module")
def sr_outputs():
    """32 held-out scenes super-resolved three ways: bicubic, the regression baseline, SR3 (25 steps)."""
    from minidiff.methods.sr3 import upsample

    few = TEST[:32]
    low = few.at_resolution(8)
    return few, low, {"bicubic": upsample(low, 32).clamp(-1, 1), "regression": zoo.regress(zoo.load_sr("sr-regression"), low),
                      "SR3": zoo.super_resolve(zoo.load_sr("sr3-world"), low, steps=25)}


def test_sr3_output_averages_back_to_its_input(sr_outputs):
    # the card measures 0.0137 (256 pairs, 50 steps); bicubic is 0.025: SR3 must stay below bicubic
    few, low, out = sr_outputs
    consistency = {k: (torch.nn.functional.avg_pool2d(v, 4) - low).square().mean().sqrt().item() for k, v in out.items()}
    assert consistency["SR3"] < SR3_CONSISTENCY_BOUND < consistency["bicubic"], consistency


def test_regression_wins_psnr_and_sr3_looks_far_more_real_than_bicubic(sr_outputs, judge):
    from minidiff.world.judge import world_fd
    from minidiff.world.metrics import psnr

    few, low, out = sr_outputs
    p = {k: psnr(v, few.images).mean().item() for k, v in out.items()}
    assert p["regression"] > p["SR3"] > p["bicubic"], p  # the paper's table: regression wins PSNR
    real = scenes("test", 1000, 256).images
    fd = {k: world_fd(judge, v, real) for k, v in out.items()}
    floor = world_fd(judge, few.images, real)  # the true scenes of the same inputs: FD of 32 images is biased upwards
    assert SR3_FD_FACTOR * (fd["SR3"] - floor) < fd["bicubic"] - floor, (fd, floor)


def test_conditioning_augmentation_makes_the_cascade_look_more_real(judge):
    # results/cdm.json (512 prompts): world-FD of the stage without augmentation on generated 8 px inputs 263,
    # of the augmented stage at s = 200: 214. Here 96 prompts, 10 steps, the same comparison: 442 vs 285.
    from minidiff.world.judge import world_fd

    base8, schedule, _ = md.load_text_unet("cdm-base8")
    few = TEST[:96]
    low = zoo.sample_prompts(base8, schedule, [caption(few, i) for i in range(len(few))], scale=3.0, steps=10)
    real = scenes("test", 1000, 256).images
    plain = zoo.super_resolve(zoo.load_sr("sr3-world"), low, steps=10)
    augmented = zoo.super_resolve(zoo.load_sr("cdm-sr32"), low, steps=10, augment_level=200)
    fd = {"plain": world_fd(judge, plain, real), "augmented": world_fd(judge, augmented, real)}
    assert fd["augmented"] < fd["plain"], fd


@pytest.mark.skipif("base" not in md.available_checkpoints(), reason="the base model is trained by issue 3's recipe")
def test_replace_edit_does_the_swap_and_the_judge_finds_everything_else_unchanged(judge):
    """Prompt-to-Prompt Replace on the base model: colour swaps of held-out captions, [source, target] from the same noise."""
    from minidiff.methods.prompt_to_prompt import PromptToPrompt
    from minidiff.world.scenes import COLOURS, with_attribute

    model, schedule, ckpt = md.load_text_unet("base")
    tokenizer = Tokenizer()
    pool = scenes("test", 500, 40)
    few = pool[(pool.count == 1).nonzero().flatten()[:6]]
    new = (few.colour[:, 0] + 1) % len(COLOURS)
    swapped = with_attribute(few, "colour", new)
    ts = schedule.timesteps(20)
    null_ids, null_mask = tokenizer("")
    with torch.no_grad():
        null = model.encode(null_ids, null_mask)
        outs = []
        for i in range(len(few)):
            ids, mask = tokenizer([caption(few, i), caption(swapped, i)])
            denoiser = model.denoiser(schedule, model.encode(ids, mask), null, ckpt.config["guidance_scale"], mask, null_mask)
            noise = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(i)).expand(2, -1, -1, -1)
            with md.attach_controller(model.unet, PromptToPrompt(ts, ids[0], ids[1])):
                outs.append(md.sample_ddim(denoiser, noise, ts, schedule))
    pairs = torch.stack(outs)
    source, edited = judge.predict(pairs[:, 0]), judge.predict(pairs[:, 1])
    swapped_ok = (edited["colour"] == new).float().mean()
    kept = torch.stack([edited[f] == source[f] for f in ("count", "size", "position", "tone", "pattern")]).all(0).float().mean()
    # measured on these 6 edits: swap 6/6, everything else kept 6/6 (one may flip without the test failing)
    assert swapped_ok >= 5 / 6 and kept >= 5 / 6, (swapped_ok, kept)


@pytest.mark.skipif("base-xattn" not in md.available_checkpoints(), reason="trained by the base-xattn recipe")
def test_base_xattn_follows_its_prompt_and_its_words_act_through_attention(judge):
    """The base model without the pooled path: it still follows its prompts, and its object words look at the object."""
    model, schedule, acc = prompt_following("base-xattn", judge)
    # the card (512 samples, scale 5): shape 52%, every other family >= 97%; these 24 samples: shape 61%, colour 96%, the rest 100%
    assert acc["shape"] >= 0.35 and acc["colour"] >= 0.85 and min(acc["size"], acc["position"], acc["tone"], acc["pattern"]) >= 0.9, acc
    pool = scenes("test", 500, 60)
    mean, _ = probes.attention_lift(model, schedule, pool[(pool.count == 1).nonzero().flatten()[:16]], 500, seed=500)
    # measured on these 16 scenes: colour words 1.70, other words 0.91 (the pooled base model: about 1.0 for every kind)
    assert mean["colour words"] >= 1.5 and mean["colour words"] >= mean["other words"] + 0.5, mean


def test_the_base_text_encoder_hardly_tells_circle_from_square_and_clip_does():
    """Chapter 1's diagnosis of the base model's shape shortfall: its own text encoder moves the token states little
    when "circle" becomes "square" (measured: 2.9, 13% of a red/blue swap); the small CLIP's moves them more than for
    a colour (33.8, 124%)."""
    own = probes.word_distances(md.load_text_unet("base")[0].encode)
    theirs = probes.word_distances(zoo.load_clip().text)
    assert own["circle/square"] < 0.25 * own["red/blue"] and own["circle/triangle"] > 2 * own["circle/square"], own
    assert theirs["circle/square"] > 0.8 * theirs["red/blue"], theirs


@pytest.fixture(scope="module")
def base_detail():
    return md.load_text_unet("base-detail")


def test_base_detail_follows_its_prompt_and_keeps_what_it_has_of_shape(base_detail):
    """Gate 1 on a small sample. The card (512 samples, DDIM 50) meets >= 90% in every family but shape (66.9%: the
    gate is missed, and the card says so). On 64 held-out captions of the detailed world (DDIM 20, judge-detail),
    measured: shape 87.7%, every other family 100%. A retrain that loses the other families, or loses more than a
    few points of shape on these 64 captions, fails."""
    model, schedule, ckpt = base_detail
    few = scenes("test", 0, 64, detail="random")
    samples = zoo.sample_prompts(model, schedule, captions(few, torch.Generator().manual_seed(1)), scale=ckpt.config["guidance_scale"], steps=20)
    acc = agreement(zoo.load_judge("judge-detail").predict(samples), targets(few))
    assert acc["shape"] >= 0.75 and min(v for f, v in acc.items() if f != "shape") >= 0.9, acc


def test_base_detail_colour_words_act_through_its_attention_maps(base_detail):
    """Gate 2 on small samples. Measured on these 16 scenes at t = 500: colour words 2.64 (gate >= 2.0, met in the card),
    shape words 1.68 (gate >= 2.0, missed: the card has 1.85), other words 1.03 (gate <= 1.2). Uniform cross-attention
    on these 32 captions costs colour 19 points and shape 14 (the card, 64 captions: 23 and 6; the gates ask 30 and 20).
    A model whose words stop acting through the maps (the pooled base model: lifts about 1.0, no cost) fails."""
    from minidiff.core.attention import uniform_attention

    model, schedule, _ = base_detail
    pool = scenes("test", 500, 60, detail="random")
    mean, _ = probes.attention_lift(model, schedule, pool[(pool.count == 1).nonzero().flatten()[:16]], 500, seed=500)
    assert mean["colour words"] >= 2.0 and mean["shape words"] >= 1.4 and mean["other words"] <= 1.2, mean
    probe = scenes("test", 900, 32)
    prompts, judge = [caption(probe, i) for i in range(32)], zoo.load_judge("judge-detail")
    normal = agreement(judge.predict(zoo.sample_prompts(model, schedule, prompts, 3.0, steps=20)), targets(probe))
    with md.attach_controller(model.unet, uniform_attention({"cross"})):
        flat = agreement(judge.predict(zoo.sample_prompts(model, schedule, prompts, 3.0, steps=20)), targets(probe))
    assert normal["colour"] - flat["colour"] >= 0.1, (normal, flat)


def test_base_detail_attention_control_keeps_the_background_of_real_edits(base_detail):
    """Gate 3 on the first 8 of the card's 48 edits (4 colour, 4 shape). Measured: P2P + Direct Inversion succeeds on
    all 8 and keeps the background 7.3 dB better than the same inversion without attention control (card: 75% of 48,
    the success gate of 90% missed on shape; +5.0 dB, the gain gate of 3 dB met). With the controller detached the gain
    is 0 by definition, and without LocalBlend it is 0.5 dB (the card's Replace-alone row): either fails here."""
    from minidiff.course import detail_edits

    model, schedule, _ = base_detail
    numbers, _ = detail_edits.detail_edit_report(model, schedule, zoo.load_judge("judge-detail"), n=8, strengths=(0.5,),
                                                 replace_alone=False, progress=lambda line: None)
    assert numbers["gates"]["p2p_success"] >= 0.75 and numbers["gates"]["p2p_background_gain_db"] >= 3.0, numbers["gates"]


def test_base_detail_card_gates_and_edit_table_are_the_ones_its_stored_numbers_give(base_detail):
    """The card's verdicts and edit table are computed, not typed: rebuilt from config.json they match the card line
    for line (a number edited in the card, or a verdict whose bound changed in ``BASE_GATES``, fails here)."""
    from minidiff.course import detail_edits

    _, _, ckpt = base_detail
    metrics = ckpt.config["metrics"]
    assert stored_gates(metrics)[0] in ckpt.card
    assert detail_edits.report_markdown(stored_edits(metrics)) in ckpt.card
