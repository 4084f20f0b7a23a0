"""The shipped world models do what their cards say, checked on small held-out samples."""

import pytest
import torch

import minidiff as md
from minidiff.course import recipes
from minidiff.world.captions import Tokenizer, caption, captions
from minidiff.world.judge import FAMILIES, agreement, targets
from minidiff.world.scenes import scenes

TEST = scenes("test", 0, 300)


@pytest.fixture(scope="module")
def judge():
    return recipes.load_judge()


def test_judge_reads_held_out_scenes(judge):
    acc = agreement(judge.predict(TEST.images), targets(TEST))
    assert min(acc.values()) >= 0.98, acc


#: well below the shipped CLIP's measured top-1 (see its card), so this catches breakage, not noise
CLIP_TOP1_BOUND = 0.9


def test_clip_retrieves_matching_captions():
    clip = recipes.load_clip()
    keys = recipes.scene_keys(TEST)
    ids, mask = Tokenizer()([caption(TEST, i, 0) for i in range(len(TEST))])
    with torch.no_grad():
        sim = clip.encode_image(TEST.images) @ clip.encode_text(ids, mask).T
    top1 = (keys[sim.argmax(1)] == keys).float().mean()
    assert top1 >= CLIP_TOP1_BOUND, top1


@pytest.mark.skipif("base" not in md.available_checkpoints(), reason="the base model is trained by issue 3's recipe")
def test_base_model_follows_its_prompt(judge):
    model, schedule, ckpt = md.load_text_unet("base")
    few = TEST[:24]
    samples = recipes.sample_prompts(model, schedule, captions(few, torch.Generator().manual_seed(0)), scale=ckpt.config["guidance_scale"], steps=20)
    acc = agreement(judge.predict(samples), targets(few))
    # chance: 1/3 on shape, 1/4 on colour. The card measures (512 samples) shape 56%, every other family >= 97%;
    # these 24 samples give shape 64%, colour 96%, the rest 100%. The bounds leave room for a few flipped samples.
    assert acc["shape"] >= 0.45, acc  # the model's known weak family: well above chance, far below the 90% goal
    assert acc["colour"] >= 0.85 and min(acc["size"], acc["position"], acc["tone"], acc["pattern"]) >= 0.9, acc
    assert set(acc) == set(FAMILIES)
