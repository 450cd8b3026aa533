"""Figures (matplotlib lives only here). Each function returns a Figure and can save a PNG."""

from nnscratch.plot.experiments import (
    degradation_figure,
    gradflow_figure,
    ledger_figure,
    lesion_figure,
    ratio_figure,
)
from nnscratch.plot.paths import paths_figure
from nnscratch.plot.shattered import shattered_figure
from nnscratch.plot.training import confusion_figure, history_figure

__all__ = [
    "confusion_figure",
    "degradation_figure",
    "gradflow_figure",
    "history_figure",
    "ledger_figure",
    "lesion_figure",
    "paths_figure",
    "ratio_figure",
    "shattered_figure",
]
