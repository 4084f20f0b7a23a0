"""What the course asks of its base model: the gates, their numbers and the card's table of verdicts.

The export of ``base-detail`` measures every number (``probes.evaluate_base``, ``probes.attention_report``,
``detail_edits.detail_edit_report``), ``gates_table`` writes the verdicts into the card, and ``stored_gates``
rebuilds the same table from the numbers stored in the checkpoint (chapter 1 shows it; a test checks the two agree).
"""

from __future__ import annotations

from ..world.judge import FAMILIES


#: what the course's base model must reach, each measured by the export: (name, number, comparison, bound); the
#: edit gate against SDEdit is a verdict of its own (``detail_edits``)
BASE_GATES = (
    *((f"judge agrees on {f}", f, ">=", 0.90) for f in FAMILIES),
    ("world-FD / real-vs-real floor", "world_fd_ratio", "<=", 1.3),
    ("colour-word lift at t = 500", "lift_colour_t500", ">=", 2.0),
    ("shape-word lift at t = 500", "lift_shape_t500", ">=", 2.0),
    ("other-word lift at t = 500", "lift_other_t500", "<=", 1.2),
    ("colour agreement lost to uniform cross-attention", "uniform_cross_cost_colour", ">=", 0.30),
    ("shape agreement lost to uniform cross-attention", "uniform_cross_cost_shape", ">=", 0.20),
    ("P2P + Direct Inversion succeeds (detail edits)", "edit_p2p_success", ">=", 0.90),
    ("P2P + Direct Inversion's background gain over no attention control, dB", "edit_p2p_background_gain_db", ">=", 3.0),
)


def gate_numbers(main: dict, attention: dict, edits: dict) -> dict[str, float]:
    """The numbers ``BASE_GATES`` names, from ``evaluate_base`` (``main``), ``attention_report`` and
    ``detail_edits.detail_edit_report``'s gates."""
    return {**main, **attention, "world_fd_ratio": main["world_fd"] / main["world_fd_floor"],
            **{f"uniform_cross_cost_{f}": attention[f"attention_probe_{f}"] - attention[f"uniform_cross_{f}"] for f in ("colour", "shape")},
            "edit_p2p_success": edits["p2p_success"], "edit_p2p_background_gain_db": edits["p2p_background_gain_db"],
            "edit_p2p_background_psnr": edits["p2p_background_psnr"]}


def gates_table(numbers: dict[str, float], edits: dict) -> tuple[str, bool]:
    """The card's gate table (each gate's number, bound and verdict, computed here) and whether every gate holds."""
    rows, held = [], []
    for name, key, op, bound in BASE_GATES:
        ok = numbers[key] >= bound if op == ">=" else numbers[key] <= bound
        held.append(ok)
        rows.append(f"| {name} | {numbers[key]:.3g} | {op} {bound:g} | {'yes' if ok else '**no**'} |")
    at, ok = edits["sdedit_background_at_p2p_success"], edits["p2p_keeps_background_as_well_as_sdedit"]
    p2p = numbers["edit_p2p_background_psnr"]
    rows.append("| P2P + Direct Inversion keeps the background at least as well as SDEdit at equal success | "
                + f"P2P {p2p:.1f} dB, SDEdit " + ("never as successful" if at is None else f"{at:.1f} dB")
                + f" | P2P >= SDEdit | {'yes' if ok else '**no**'} |")
    held.append(ok)
    table = "\n## Gates\n\n| gate | measured | needed | met |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"
    return table, all(held)


def stored_edits(metrics: dict) -> dict:
    """``detail_edits.detail_edit_report``'s numbers as a checkpoint stores them (``ckpt.config["metrics"]``)."""
    return {**metrics["edits"], "gates": {k[len("edit_"):]: v for k, v in metrics.items() if k.startswith("edit_")}}


def stored_gates(metrics: dict) -> tuple[str, bool]:
    """``gates_table`` rebuilt from a checkpoint's stored metrics (``ckpt.config["metrics"]`` of ``base-detail``)."""
    edits = stored_edits(metrics)["gates"]
    return gates_table(gate_numbers(metrics, metrics, edits), edits)
