"""The edits of scenes with unnamed detail, their background mask, the equal-success comparison and the gate table."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minidiff import linear_schedule
from minidiff.course import benchmark, detail_edits, gates
from minidiff.course.recipes.text import make_base_xattn_model
from minidiff.course.zoo import load_judge
from minidiff.world.scenes import scenes


def test_detail_edits_are_the_plain_edits_of_the_same_scenes_with_only_their_looks_changed():
    plain = benchmark.edit_set(12, families=detail_edits.FAMILIES)
    rich = detail_edits.detail_edits(12)
    assert rich.family == ["colour", "shape"] * 6
    assert rich.source_text == plain.source_text and rich.target_text == plain.target_text
    assert all(a != b for a, b in zip(rich.source_text, rich.target_text))
    assert torch.equal(rich.source.shape, plain.source.shape) and torch.equal(rich.target.colour, plain.target.colour)
    assert (rich.source.detail == 1.0).all()
    assert (rich.source.images - plain.source.images).abs().amax() > 0.05
    # the default benchmark is untouched by the new arguments
    assert benchmark.edit_set(10).family == list(benchmark.EDIT_FAMILIES) * 2


@pytest.mark.parametrize("families", [(), ("colour", "texture")])
def test_edit_set_names_its_families_when_they_are_wrong(families):
    with pytest.raises(ValueError, match="families must be"):
        benchmark.edit_set(4, families=families)


def test_any_shape_reach_covers_every_object_of_the_detailed_world_and_the_mask_only_grows():
    pool = scenes("test", 0, 512, detail=1.0)
    xs = torch.arange(32).float() + 0.5
    for k in range(2):
        present = pool.shape[:, k] >= 0
        cx, cy, r = (pool.geometry[present, k, j, None, None] * 32 for j in range(3))
        dist = ((xs[None, None, :] - cx) ** 2 + (xs[None, :, None] - cy) ** 2).sqrt()
        # a pixel counts as the object's when half its area is covered: its centre lies within half a pixel's diagonal
        assert (dist[pool.masks[present, k]] <= (benchmark.ANY_SHAPE_REACH * r.expand_as(dist))[pool.masks[present, k]] + 0.71).all()
    edits = detail_edits.detail_edits(16)
    plain, wide = benchmark.background_mask(edits), benchmark.background_mask(edits, any_shape=True)
    assert (wide <= plain).all() and (wide < plain).any()


def test_at_success_interpolates_between_the_strengths_that_bracket_it():
    curve = [{"success": 0.1, "background_psnr": 30.0}, {"success": 0.5, "background_psnr": 26.0},
             {"success": 0.9, "background_psnr": 20.0}]
    assert detail_edits.at_success(curve, 0.5) == 26.0
    assert detail_edits.at_success(curve, 0.7) == pytest.approx(23.0)
    assert detail_edits.at_success(curve, 0.95) is None  # SDEdit is never this successful
    assert detail_edits.at_success(curve, 0.05) is None  # more successful already at the weakest strength


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=2, max_size=8, unique=True), st.lists(st.floats(5, 40), min_size=8, max_size=8),
       st.floats(0, 1))
def test_at_success_is_linear_interpolation_on_a_rising_curve_and_none_outside_it(successes, psnrs, success):
    successes = sorted(successes)
    curve = [{"success": s, "background_psnr": p} for s, p in zip(successes, psnrs)]
    got = detail_edits.at_success(curve, success)
    if successes[0] <= success <= successes[-1]:
        assert got == pytest.approx(float(np.interp(success, successes, psnrs[: len(successes)])), abs=1e-9)
    else:
        assert got is None


def test_the_sdedit_verdict_compares_at_equal_success_and_says_no_when_it_cannot_tell():
    curve = [{"success": 0.4, "background_psnr": 30.0}, {"success": 0.8, "background_psnr": 22.0}]
    keeps = detail_edits.keeps_background_as_well
    assert keeps({"success": 0.6, "background_psnr": 26.5}, curve, detail_edits.at_success(curve, 0.6))  # SDEdit: 26.0
    assert not keeps({"success": 0.6, "background_psnr": 25.5}, curve, detail_edits.at_success(curve, 0.6))
    assert keeps({"success": 0.9, "background_psnr": 10.0}, curve, None)  # SDEdit never that successful
    assert not keeps({"success": 0.2, "background_psnr": 40.0}, curve, None)  # SDEdit more successful everywhere


def test_the_detail_edit_report_runs_on_tiny_sizes_and_its_numbers_are_finite():
    torch.manual_seed(0)
    model = make_base_xattn_model().eval()
    numbers, images = detail_edits.detail_edit_report(model, linear_schedule(), load_judge("judge-detail"), n=2, steps=3,
                                                      strengths=(0.3, 0.6), progress=lambda line: None)
    assert list(numbers["rows"]) == ["P2P + direct inversion", "P2P Replace alone + direct inversion", "no attention control"]
    assert [c["strength"] for c in numbers["sdedit"]] == [0.3, 0.6]
    for row in [*numbers["rows"].values(), *numbers["sdedit"]]:
        assert all(math.isfinite(v) for k, v in row.items() if isinstance(v, float)), row
        assert row["edits"] == 2 and set(row) >= {"success_colour", "success_shape", "background_psnr_shape"}
    gates = numbers["gates"]
    bare = numbers["rows"]["no attention control"]["background_psnr"]
    assert gates["p2p_background_gain_db"] == numbers["rows"]["P2P + direct inversion"]["background_psnr"] - bare
    assert images["P2P + direct inversion"].shape == (2, 3, 32, 32)
    text = detail_edits.report_markdown(numbers)
    assert "| no attention control |" in text and "SDEdit 0.6" in text


def test_the_gate_table_computes_each_verdict_from_its_number():
    numbers = {key: bound for _, key, _, bound in gates.BASE_GATES} | {"edit_p2p_background_psnr": 26.0}
    edits = {"sdedit_background_at_p2p_success": 25.0, "p2p_keeps_background_as_well_as_sdedit": True}
    table, held = gates.gates_table(numbers, edits)
    assert held and "**no**" not in table and table.count("| yes |") == len(gates.BASE_GATES) + 1
    assert "| P2P 26.0 dB, SDEdit 25.0 dB | P2P >= SDEdit | yes |" in table
    numbers["lift_shape_t500"] = 1.99
    table, held = gates.gates_table(numbers, edits)
    assert not held and table.count("**no**") == 1 and "| shape-word lift at t = 500 | 1.99 | >= 2 | **no** |" in table
    numbers["lift_shape_t500"], numbers["lift_other_t500"] = 2.0, 1.21
    assert not gates.gates_table(numbers, edits)[1]
    assert not gates.gates_table({**numbers, "lift_other_t500": 1.2}, {**edits, "p2p_keeps_background_as_well_as_sdedit": False})[1]
