"""The chapters' sweeps run end to end on tiny sizes (an untrained base model), and their files round-trip."""

import json

import pytest
import torch

from minidiff import linear_schedule
from minidiff.course import benchmark, results, zoo
from minidiff.course.recipes.text import make_base_model
from minidiff.course.sweeps import diffusion_clip, ilvr, inversion, sdedit
from minidiff.course.sweeps import edits as edit_sweep
from minidiff.course.zoo import load_judge


def test_sweeps_run_and_their_results_round_trip(tmp_path):
    torch.manual_seed(0)
    model, schedule, judge = make_base_model().eval(), linear_schedule(), load_judge()
    quiet = lambda line: None  # noqa: E731
    numbers, images = sdedit.sdedit_sweep(model, schedule, judge, n=4, num_steps=2, examples=2, progress=quiet)
    assert [r["strength"] for r in numbers["rows"]] == list(sdedit.SDEDIT_STRENGTHS)
    assert numbers["rows"][0]["stroke_distance"] == 0.0  # strength 0 returns the stroke itself
    results.save_results("sdedit", numbers, images, tmp_path)
    loaded, back = results.load_results("sdedit", tmp_path)
    assert loaded["rows"] == numbers["rows"]
    assert (back["strokes"] - images["strokes"]).abs().max() <= 1 / 127.5 + 1e-6  # uint8 storage

    numbers, images = ilvr.ilvr_sweep(model, schedule, judge, refs=2, per=2, num_steps=2, progress=quiet)
    for row in numbers["by_factor"]:  # every step refined with the exact projection: pinned to float precision
        assert row["max_lowpass_error"] < 1e-5
    exact = [f for f in numbers["filters"] if f["kind"] == "exact"]
    assert all(f["max_error_own_filter"] < 1e-5 for f in exact)


def test_inversion_sweep_runs_resumes_from_its_parts_and_direct_inversion_is_exact(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model, schedule, judge = make_base_model().eval(), linear_schedule(), load_judge()
    for p in model.parameters():  # an untrained net's output layer is zero, and then the null embedding has no effect
        p.data.add_(0.02 * torch.randn_like(p))
    kwargs = dict(n=2, batch=2, num_steps=3, small=2, step_counts=(2,), inner_counts=(0, 2), null_text_batch=1,
                  parts_folder=tmp_path / "parts", progress=lambda line: None)
    numbers, images = inversion.inversion_sweep(model, schedule, judge, **kwargs)
    methods = {(r["method"], r["scale"]) for r in numbers["rows"]}
    assert methods == {(m, w) for m, scales in inversion.INVERSION_TABLE.items() for w in scales}
    for r in numbers["rows"]:
        if r["method"] == "direct":
            assert r["psnr"] > 80  # float precision: the offsets put the source branch back on the pivot
    assert len(numbers["null_drift"]) == 3 and numbers["null_drift"][0] > 0
    assert "edit_success" in next(r for r in numbers["rows"] if r["scale"] == 7.5)
    assert len(list((tmp_path / "parts").glob("row_null-text_*.json"))) == 2  # null-text in batches of one

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished part was computed again")

    monkeypatch.setattr(inversion, "invert_and_reconstruct", must_not_run)
    again, _ = inversion.inversion_sweep(model, schedule, judge, **kwargs)
    assert again["rows"] == numbers["rows"] and again["by_iterations"] == numbers["by_iterations"]


def test_edit_set_swaps_one_word_and_the_benchmark_scores_every_method_on_tiny_sizes(tmp_path, monkeypatch):
    from minidiff.world.captions import Tokenizer

    edits = benchmark.edit_set(10)
    tok = Tokenizer()
    for s, t, fam in zip(edits.source_text, edits.target_text, edits.family):
        a, b = tok.words(s), tok.words(t)
        assert len(a) == len(b) and s != t  # same token count: Prompt-to-Prompt's Replace applies
        changed = sum(x != y for x, y in zip(a, b))
        assert changed == 1 or (fam == "position" and changed == 2), (s, t)  # "on the left" -> "in the centre" is two words
    torch.manual_seed(0)
    model = make_base_model().eval()
    for p in model.parameters():
        p.data.add_(0.02 * torch.randn_like(p))
    quick = {name: run for name, run in benchmark.METHODS.items() if name != "Imagic"}
    monkeypatch.setattr(edit_sweep, "CHUNK", 1)
    parts = results.Parts(tmp_path / "parts", progress=lambda line: None, exact_images=True)
    numbers, images = edit_sweep.edit_benchmark(model, linear_schedule(), load_judge(), n=2, steps=2, methods=quick, parts=parts,
                                                    progress=lambda line: None, timing_edits=1)
    assert [r["method"] for r in numbers["rows"]] == list(quick)
    for r in numbers["rows"]:
        assert 0 <= r["success"] <= 1 and r["edits"] == 2 and r["seconds_per_edit"] > 0 and r["seconds_per_edit_in_run"] > 0
    assert len(list((tmp_path / "parts").glob("*.json"))) == 2 * len(quick)  # one part per edit (CHUNK = 1)

    def must_not_run(editor, i):
        raise AssertionError("a finished part was computed again")

    again, _ = edit_sweep.edit_benchmark(model, linear_schedule(), load_judge(), n=2, steps=2, methods={k: must_not_run for k in quick},
                                         parts=parts, progress=lambda line: None, timing_edits=0)
    for a, b in zip(again["rows"], numbers["rows"]):  # the stored float16 images score like the originals
        assert a["success"] == b["success"] and a["preserved"] == b["preserved"]
        assert abs(a["background_psnr"] - b["background_psnr"]) < 0.5


def test_the_unconditional_denoiser_equals_the_guided_one_at_scale_one_with_the_empty_caption():
    from minidiff.world.captions import Tokenizer

    torch.manual_seed(0)
    model, schedule = make_base_model().eval(), linear_schedule()
    for p in model.parameters():
        p.data.add_(0.02 * torch.randn_like(p))
    ids, mask = Tokenizer()("")
    with torch.no_grad():
        null = model.encode(ids, mask)
        x, t = torch.randn(3, 3, 32, 32), torch.full((3,), 400)
        torch.testing.assert_close(zoo.unconditional(model, schedule)(x, t), model.denoiser(schedule, null, null, 1.0, mask, mask)(x, t),
                                   rtol=1e-4, atol=1e-5)


def test_parts_are_named_safely_and_a_part_without_its_json_counts_as_unfinished(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"seconds": 0.0, "x": len(calls)}, {"img": torch.zeros(1, 3, 4, 4)}

    for exact in (False, True):
        folder = tmp_path / f"exact_{exact}"
        parts = results.Parts(folder, progress=lambda line: None, exact_images=exact)
        # the committed inversion parts keep their names
        parts.get("row ddim, guided inversion 7.5 0-25", compute)
        assert (folder / "row_ddim_guided_inversion_7.5_0-25.json").exists()
        parts.get("p2p (null-text) + local/blend", compute)
        assert sorted(p.name for p in folder.glob("*.json")) == ["p2p_null-text_local_blend.json", "row_ddim_guided_inversion_7.5_0-25.json"]
        # a part stopped between its images and its JSON is computed again, not read half-written
        (folder / "p2p_null-text_local_blend.json").unlink()
        before = len(calls)
        numbers, images = parts.get("p2p (null-text) + local/blend", compute)
        assert len(calls) == before + 1 and numbers["x"] == len(calls) and images["img"].shape == (1, 3, 4, 4)


def test_diffusion_clip_sweep_runs_on_tiny_sizes_and_reports_both_readers():
    torch.manual_seed(0)
    model, schedule, judge = make_base_model().eval(), linear_schedule(), load_judge()
    for p in model.parameters():
        p.data.add_(0.02 * torch.randn_like(p))
    numbers, images = diffusion_clip.diffusion_clip_sweep(model, schedule, judge, progress=lambda line: None, train=2, test=2, iterations=2)
    assert len(numbers["losses"]) == 2 and numbers["test"] == 2
    for key in ("judge_blue", "judge_blue_untuned", "clip_blue", "clip_blue_untuned"):
        assert 0 <= numbers[key] <= 1
    assert abs(sum(numbers["judge_colours"].values()) - 1) < 1e-6  # every output gets exactly one colour
    assert images["edited"].shape == images["source"].shape == (2, 3, 32, 32)


def test_every_shipped_result_is_strict_json_and_saving_a_nan_names_the_result(tmp_path):
    """Strict JSON readers (browsers, jq, other languages) reject NaN: results write None for what was not measured."""

    def refuse(constant):
        raise ValueError(f"{constant} in a results file")

    for path in sorted(results.RESULTS.glob("*.json")):
        json.loads(path.read_text(), parse_constant=refuse)
    with pytest.raises(ValueError, match="'broken' hold NaN"):
        results.save_results("broken", {"rows": [{"world_fd": float("nan")}]}, {}, tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written
