"""The captioned world: deterministic scenes with exact attributes and masks, captions, tokenizer, judge tools."""

import pytest
import torch
import torch.nn.functional as F

from minidiff.world.captions import ONE_OBJECT, TWO_OBJECTS, Tokenizer, caption, captions
from minidiff.world.judge import Judge, agreement, degrade, frechet_distance, gaussian_blur, targets
from minidiff.world.scenes import COLOURS, POSITIONS, RGB, SIZES, scenes

TEST = scenes("test", 0, 256)


def test_scenes_are_deterministic_and_independent_of_how_they_are_sliced():
    a = scenes("train", 100, 20)
    b = scenes("train", 64, 100)[36:56]
    assert torch.equal(a.images, b.images) and torch.equal(a.colour, b.colour)
    assert torch.equal(scenes("test", 0, 5).images, TEST.images[:5])


def test_train_and_test_splits_share_no_scene():
    train = scenes("train", 0, 256)
    distance = torch.cdist(train.images.flatten(1), TEST.images.flatten(1))
    assert distance.min() > 0.5


DETAILED = scenes("test", 0, 256, detail=1.0)


@pytest.mark.parametrize("world, spread", [(TEST, 0.06), (DETAILED, 0.09)], ids=["plain", "full detail"])
def test_masks_agree_with_the_attributes(world, spread):
    cols = torch.arange(32).float()
    for i in range(len(world)):
        for k in range(int(world.count[i])):
            mask = world.masks[i, k]
            assert mask.any()
            centre_x = (mask.float().sum(0) * cols).sum() / mask.sum() / 32
            assert abs(centre_x - [0.25, 0.5, 0.75][world.position[i, k]]) < spread
            # the object's pixels have its colour (away from the antialiased rim)
            inner = F.max_pool2d((~mask)[None, None].float(), 3, 1, 1)[0, 0] == 0
            if inner.any():
                pixel = (world.images[i][:, inner].mean(1) + 1) / 2
                assert (pixel - torch.tensor(RGB[COLOURS[world.colour[i, k]]])).abs().max() < 0.06
    small = world.masks[:, 0].flatten(1).sum(1)[world.size[:, 0] == SIZES.index("small")]
    large = world.masks[:, 0].flatten(1).sum(1)[world.size[:, 0] == SIZES.index("large")]
    assert small.max() < large.min()
    assert not (world.masks[:, 0] & world.masks[:, 1]).any()  # a pixel shows one object at most


def test_unnamed_detail_changes_no_attribute_and_records_its_amount():
    random = scenes("test", 0, 256, detail="random")
    for family in ("shape", "colour", "size", "position", "tone", "pattern", "count"):
        assert torch.equal(getattr(random, family), getattr(TEST, family)), family
    assert torch.equal(TEST.detail, torch.zeros(256)) and torch.equal(DETAILED.detail, torch.ones(256))
    assert 0 <= random.detail.min() < 0.1 and 0.9 < random.detail.max() <= 1  # uniform over [0, 1]
    # a scene is the same however the stream is sliced (scenes 50..79 span two chunks of 64)
    sliced = scenes("test", 50, 30, detail="random")
    for field in ("detail", "images", "masks", "geometry"):
        assert torch.equal(getattr(sliced, field), getattr(random, field)[50:80]), field


def test_no_detail_is_the_plain_world_and_detail_grows_with_its_amount():
    # the plain world bit for bit at amount 0 (scenes 2048.. hold a striped scene whose stripe edge a rotated
    # coordinate at angle pi/4 once moved; scenes near the border would move if the shifted-object clamp did)
    for start in (0, 2048):
        plain, zero = scenes("test", start, 256), scenes("test", start, 256, detail=0.0)
        assert torch.equal(zero.images, plain.images) and torch.equal(zero.masks, plain.masks)
    background = ~(TEST.masks | DETAILED.masks).any(1)  # (B, S, S): pixels no object covers in either
    change = [
        ((scenes("test", 0, 256, detail=a).images - TEST.images).abs().mean(1)[background]).mean()
        for a in (0.25, 0.5, 1.0)
    ]
    assert 0 < change[0] < change[1] < change[2]
    assert change[2] > 0.1  # clearly visible at full detail (mean change in [-1, 1] units; measured 0.17)
    # no object leaves the image: at full detail every one keeps a pixel clear of the border
    edge = DETAILED.masks[..., [0, -1]].any(-1).any(-1) | DETAILED.masks[..., [0, -1], :].any(-1).any(-1)
    assert not edge.any()


def test_a_turned_square_is_the_square_rotated_about_its_centre():
    from minidiff.world.scenes import coverage

    coords = (torch.arange(256, dtype=torch.float32) + 0.5) / 256
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    centre, r = torch.tensor([0.5]), torch.tensor([0.2])
    square = torch.tensor([1])
    turned = coverage(square, centre, centre, r, xs, ys, torch.tensor([torch.pi / 4]))[0]
    diamond = ((xs - 0.5).abs() + (ys - 0.5).abs()) <= 0.886 * 0.2 * 2 ** 0.5
    assert (turned != diamond).float().mean() < 0.002  # only rim pixels where float rounding decides
    upright = coverage(square, centre, centre, r, xs, ys, torch.tensor([0.0]))[0]
    assert torch.equal(upright, coverage(square, centre, centre, r, xs, ys)[0])
    assert (turned != upright).float().mean() > 0.03


def test_two_object_scenes_are_left_and_right_and_differ_in_colour():
    two = TEST.count == 2
    assert 0.1 < two.float().mean() < 0.3
    assert (TEST.position[two, 0] == POSITIONS.index("left")).all() and (TEST.position[two, 1] == POSITIONS.index("right")).all()
    assert (TEST.colour[two, 0] != TEST.colour[two, 1]).all()
    assert (TEST.shape[~two, 1] == -1).all() and not TEST.masks[~two, 1].any()


def test_low_resolution_views_are_exact_area_averages():
    assert torch.equal(TEST.at_resolution(8), F.avg_pool2d(TEST.images, 4))
    with pytest.raises(ValueError, match="size must divide 32"):
        TEST.at_resolution(12)


def test_bad_scene_requests_are_refused():
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        scenes("validation", 0, 4)
    with pytest.raises(ValueError, match="start >= 0 and count >= 1"):
        scenes("train", 0, 0)
    for bad in ("lots", 1.5, -0.1, True, None):
        with pytest.raises(ValueError, match=r"detail must be 'none', 'random' or an amount in \[0, 1\], got"):
            scenes("train", 0, 4, detail=bad)


def test_every_caption_names_every_attribute_and_tokenizes():
    tok = Tokenizer()
    for phrasing in range(max(len(ONE_OBJECT), len(TWO_OBJECTS))):
        for i in range(40):
            text = caption(TEST, i, phrasing)
            words = tok.words(text)
            for k in range(int(TEST.count[i])):
                assert COLOURS[TEST.colour[i, k]] in words and SIZES[TEST.size[i, k]] in words
            ids, mask = tok(text)
            assert tok.decode(ids[0]) == " ".join(words)
    assert len({c for c in captions(TEST[:1], torch.Generator().manual_seed(0))}) == 1
    one, two = int((TEST.count == 1).nonzero()[0]), int((TEST.count == 2).nonzero()[0])
    assert len({caption(TEST, one, p) for p in range(len(ONE_OBJECT))}) == len(ONE_OBJECT)  # phrasings differ
    assert len({caption(TEST, two, p) for p in range(len(TWO_OBJECTS))}) == len(TWO_OBJECTS)


def test_tokenizer_errors_and_the_null_caption():
    tok = Tokenizer()
    ids, mask = tok("")
    assert ids[0, :2].tolist() == [tok.start_id, tok.end_id] and mask.sum() == 2
    with pytest.raises(ValueError, match="unknown word 'purple'.*The vocabulary is"):
        tok("a purple circle")
    with pytest.raises(ValueError, match="closest known words: circle"):
        tok("a red circel")
    with pytest.raises(ValueError, match="tokens"):
        tok(" ".join(["red"] * 30))
    assert tok.token_index("a red circle", "red") == [2]


def test_degradations_and_blur():
    g = torch.Generator().manual_seed(0)
    x = TEST.images[:16]
    y = degrade(x, g)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1 and not torch.equal(x, y)
    torch.testing.assert_close(gaussian_blur(x, torch.full((16,), 1e-4)), x)
    blurred = gaussian_blur(x, torch.full((16,), 1.0))
    torch.testing.assert_close(blurred.mean((2, 3)), x.mean((2, 3)), atol=0.02, rtol=0)  # blur keeps the mean colour


def test_frechet_distance_exact_cases():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 3, generator=g, dtype=torch.float64)
    assert frechet_distance(a, a) < 1e-9
    shift = torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64)
    assert abs(frechet_distance(a, a + shift) - 5.0) < 1e-6  # same covariance: |mu_a - mu_b|^2


def test_agreement_counts_both_objects():
    truth = targets(TEST)
    assert all(v == 1.0 for v in agreement(truth, truth).values())
    wrong = dict(truth)
    wrong["colour1"] = torch.where(truth["colour1"] >= 0, (truth["colour1"] + 1) % 4, -1)
    n1, n2 = int((truth["colour"] >= 0).sum()), int((truth["colour1"] >= 0).sum())
    assert agreement(wrong, truth)["colour"] == pytest.approx(n1 / (n1 + n2))


def test_judge_rejects_other_sizes():
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        Judge()(torch.zeros(2, 3, 16, 16))


def test_stroke_paintings_are_flat_palette_colours_and_painting_by_letters_checks_its_input():
    from minidiff.world.strokes import PALETTE, paint, stroke_distance, stroke_painting

    s = scenes("test", 0, 8)
    p = stroke_painting(s.images)
    colours = p.permute(0, 2, 3, 1).reshape(-1, 3)
    assert ((colours[:, None] - PALETTE[None]).abs().sum(-1).min(1).values < 1e-6).all()  # every pixel is a palette colour
    assert torch.equal(stroke_distance(p, p), torch.zeros(8))
    square = paint(["LLLL", "LRRL", "LRRL", "LLLL"])
    assert square.shape == (1, 3, 32, 32) and torch.equal(square[0, :, 12, 12], PALETTE[0])
    with pytest.raises(ValueError, match=r"unknown paint letters \['X'\]: use R \(red\)"):
        paint(["LX", "LL"])
    with pytest.raises(ValueError, match="square grid"):
        paint(["LLL", "LL"])


def test_ssim_matches_scikit_image():
    from skimage.metrics import structural_similarity

    from minidiff.world.metrics import ssim

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    y = (x + 0.2 * torch.randn(2, 3, 32, 32, generator=g)).clamp(-1, 1)
    ours = ssim(x, y)
    for i in range(2):
        ref = structural_similarity(x[i].permute(1, 2, 0).double().numpy(), y[i].permute(1, 2, 0).double().numpy(), data_range=2.0,
                                    channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        assert abs(ours[i].item() - ref) < 1e-6
