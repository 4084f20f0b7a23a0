"""Explorers: sliders over precomputed results that answer at once.

    explore(show_strength, strength=([0.0, 0.1, ..., 1.0], 0.5))

``render(**values)`` draws a matplotlib figure for one setting of the sliders; the explorer shows it
as a PNG in an ``ipywidgets.Image`` and caches it, so going back to a setting costs nothing.

Why not ``ipywidgets.interact``: it captures output in an Output widget, and the executor that builds
the book (nbclient) can deadlock on Output widgets (jupyter/nbclient#312). An explorer has none.
Its display also carries the first figure as a plain ``image/png``: JupyterLab shows the live
widget; the book (``nb_mime_priority_overrides`` in ``book/_config.yml``) and any viewer without a
kernel show that static figure.
"""

from __future__ import annotations

import io
from typing import Any, Callable, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

Options = Sequence[Any] | tuple[Sequence[Any], Any]


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes; the figure is closed (so the inline backend does not show it too)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", dpi=fig.dpi)
    plt.close(fig)
    return buffer.getvalue()


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels, read from the PNG's IHDR chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError(f"png must be PNG bytes (starting with 89 50 4E 47 ... IHDR), got {png[:16]!r}")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _slider(name: str, spec: Options) -> widgets.SelectionSlider:
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], (list, tuple)):
        options, value = list(spec[0]), spec[1]
    else:
        options = list(spec)
        value = options[len(options) // 2] if options else None
    if not options:
        raise ValueError(f"slider {name!r} needs at least one option")
    if value not in options:
        raise ValueError(f"slider {name!r}: start value {value!r} is not one of its options {options}")
    return widgets.SelectionSlider(options=options, value=value, description=name, continuous_update=False,
                                   style={"description_width": "initial"})


class Explorer(widgets.VBox):
    """Sliders and the figure ``render`` draws for their values (see the module's docstring)."""

    def __init__(self, render: Callable[..., Figure], sliders: dict[str, Options]):
        if not sliders:
            raise ValueError("an explorer needs at least one slider: explore(render, name=[options...])")
        self.render = render
        self.controls = {name: _slider(name, spec) for name, spec in sliders.items()}
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self._cache: dict[tuple, bytes] = {}
        super().__init__([widgets.HBox(list(self.controls.values())), self.image])
        for control in self.controls.values():
            control.observe(self._update, names="value")
        self._update()
        self._first = bytes(self.image.value)

    @property
    def values(self) -> dict[str, Any]:
        return {name: control.value for name, control in self.controls.items()}

    def _update(self, change=None) -> None:
        key = tuple(self.values.items())
        if key not in self._cache:
            fig = self.render(**self.values)
            if not isinstance(fig, Figure):
                raise TypeError(f"render must return a matplotlib Figure, got {type(fig).__name__}")
            self._cache[key] = figure_png(fig)
        png = self._cache[key]
        # at its own pixel size: left to the layout, JupyterLab stretches the image to the cell's width (blurry)
        self.image.layout.width = f"{png_size(png)[0]}px"
        self.image.value = png

    def _repr_mimebundle_(self, **kwargs) -> dict:
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        return {**bundle, "image/png": self._first}


def explore(render: Callable[..., Figure], **sliders: Options) -> Explorer:
    """An explorer with one slider per keyword: ``name=[options]`` (starts in the middle) or ``name=([options], start)``."""
    return Explorer(render, sliders)
