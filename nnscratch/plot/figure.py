"""A Figure without pyplot's global state, and saving it as a PNG atomically."""

from __future__ import annotations

import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nnscratch.utils.atomic import atomic_write


def new_figure(width: float, height: float, **subplots) -> tuple[Figure, object]:
    """A Figure with an Agg canvas (works headless) and its axes from ``subplots``."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(**subplots)


def save_png(figure: Figure, path: str | os.PathLike | None, dpi: int = 120) -> None:
    """Write ``figure`` to ``path`` as a PNG (nothing if path is None)."""
    if path is not None:
        with atomic_write(path, "wb") as f:
            figure.savefig(f, format="png", dpi=dpi)
