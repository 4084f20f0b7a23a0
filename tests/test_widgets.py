"""Explorers: sliders over precomputed figures, cached, with a static PNG for viewers without a kernel."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from minidiff.course.widgets import explore, png_size


def _render_counter():
    calls = []

    def render(a, b="x"):
        calls.append((a, b))
        fig, ax = plt.subplots(figsize=(1, 1))
        ax.set_title(f"{a} {b}")
        return fig

    return render, calls


def test_explorer_renders_each_setting_once_and_shows_the_first_as_a_static_png():
    render, calls = _render_counter()
    view = explore(render, a=[1, 2, 3], b=(["x", "y"], "y"))
    assert view.values == {"a": 2, "b": "y"}
    first = bytes(view.image.value)
    assert first.startswith(b"\x89PNG")
    bundle = view._repr_mimebundle_()
    assert bundle["image/png"] == first and "application/vnd.jupyter.widget-view+json" in bundle
    assert view.image.layout.width == f"{png_size(first)[0]}px"  # shown at its own size, not stretched
    view.controls["a"].value = 3
    assert bytes(view.image.value) != first
    view.controls["a"].value = 2
    assert bytes(view.image.value) == first
    assert calls == [(2, "y"), (3, "y")]  # going back is served from the cache
    assert not plt.get_fignums()  # every figure was closed


def test_explorer_bad_input():
    render, _ = _render_counter()
    with pytest.raises(ValueError, match="not one of its options"):
        explore(render, a=([1, 2], 5))
    with pytest.raises(ValueError, match="at least one option"):
        explore(render, a=[])
    with pytest.raises(ValueError, match="at least one slider"):
        explore(render)
    with pytest.raises(TypeError, match="must return a matplotlib Figure"):
        explore(lambda a: None, a=[1])


def test_png_size_reads_the_pixel_size_and_refuses_other_bytes():
    import io

    import numpy as np

    buffer = io.BytesIO()
    plt.imsave(buffer, np.zeros((11, 37, 3)), format="png")
    assert png_size(buffer.getvalue()) == (37, 11)
    with pytest.raises(ValueError, match="must be PNG bytes.*GIF89a"):
        png_size(b"GIF89a" + bytes(30))
