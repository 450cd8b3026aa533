"""Classification metrics and the per-epoch metrics log (CSV and JSON side by side)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from nnscratch.utils.atomic import atomic_write


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[i, j] = how many items of true class i were predicted as class j: (K, K) int64."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts


def per_class_accuracy(counts: np.ndarray) -> np.ndarray:
    """Recall of each class from a confusion matrix: diag / row sums (NaN for an empty class)."""
    totals = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(counts) / totals, np.nan)


class MetricsLog:
    """Appends one row per epoch to ``metrics.csv`` and rewrites ``metrics.json`` atomically.

    ``rows`` holds the history; a resumed run passes the rows it restored so the files
    continue where they stopped instead of repeating or losing epochs.
    """

    def __init__(self, directory: str | os.PathLike, rows: list[dict[str, Any]] | None = None):
        self.directory = Path(directory)
        self.rows = list(rows or [])
        self._rewrite()

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(dict(row))
        self._rewrite()

    def _rewrite(self) -> None:
        fields = list(dict.fromkeys(k for row in self.rows for k in row))
        with atomic_write(self.directory / "metrics.csv", "w") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(self.rows)
        with atomic_write(self.directory / "metrics.json", "w") as f:
            json.dump(self.rows, f, indent=1)
