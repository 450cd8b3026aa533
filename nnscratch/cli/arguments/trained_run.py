"""A checkpoint of ``nnscratch train`` and a split of its data: shared by evaluate and extract."""

from __future__ import annotations

import argparse
from typing import Any, NamedTuple

from nnscratch.data import ArrayDataset, Pipeline
from nnscratch.models.classifier import ImageClassifier
from nnscratch.training import TrainConfig, load_checkpoint
from nnscratch.training.builders import dataset_split, restore_run
from nnscratch.training.run_dir import checkpoint_in


class TrainedRun(NamedTuple):
    checkpoint: dict[str, Any]
    config: TrainConfig
    model: ImageClassifier
    transform: Pipeline
    dataset: ArrayDataset


def add_checkpoint_arguments(p: argparse.ArgumentParser) -> None:
    """CHECKPOINT, --split and --batch-size."""
    p.add_argument(
        "checkpoint",
        help="a checkpoint written by nnscratch train, or a run directory (its best.npz)",
    )
    p.add_argument("--split", choices=["test", "val", "train"], default="test", help="default test")
    p.add_argument("--batch-size", type=int, default=256, help="default 256")


def load_trained_run(args: argparse.Namespace) -> TrainedRun:
    """The model of ``args.checkpoint`` as trained, its eval transform and ``args.split``."""
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    checkpoint = load_checkpoint(checkpoint_in(args.checkpoint))
    config, model, transform = restore_run(checkpoint, args.batch_size)
    return TrainedRun(checkpoint, config, model, transform, dataset_split(config, args.split))
