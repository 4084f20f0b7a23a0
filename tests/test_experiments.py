"""The chapters' sweeps run end to end on tiny sizes (an untrained base model), and their files round-trip."""

import torch

from minidiff import linear_schedule
from minidiff.course import experiments
from minidiff.course.recipes import load_judge, make_base_model


def test_sweeps_run_and_their_results_round_trip(tmp_path):
    torch.manual_seed(0)
    model, schedule, judge = make_base_model().eval(), linear_schedule(), load_judge()
    quiet = lambda line: None  # noqa: E731
    numbers, images = experiments.sdedit_sweep(model, schedule, judge, n=4, num_steps=2, examples=2, progress=quiet)
    assert [r["strength"] for r in numbers["rows"]] == list(experiments.SDEDIT_STRENGTHS)
    assert numbers["rows"][0]["stroke_distance"] == 0.0  # strength 0 returns the stroke itself
    experiments.save_results("sdedit", numbers, images, tmp_path)
    loaded, back = experiments.load_results("sdedit", tmp_path)
    assert loaded["rows"] == numbers["rows"]
    assert (back["strokes"] - images["strokes"]).abs().max() <= 1 / 127.5 + 1e-6  # uint8 storage

    numbers, images = experiments.ilvr_sweep(model, schedule, judge, refs=2, per=2, num_steps=2, progress=quiet)
    for row in numbers["by_factor"]:  # every step refined with the exact projection: pinned to float precision
        assert row["max_lowpass_error"] < 1e-5
    exact = [f for f in numbers["filters"] if f["kind"] == "exact"]
    assert all(f["max_error_own_filter"] < 1e-5 for f in exact)
