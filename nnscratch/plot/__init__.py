"""Figures (matplotlib lives only here). Each function returns a Figure and can save a PNG."""

from nnscratch.plot.training import confusion_figure, history_figure

__all__ = ["confusion_figure", "history_figure"]
