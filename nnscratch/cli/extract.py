"""``nnscratch extract CKPT``: the pooled embedding of every image, saved to ``.npz``."""

from __future__ import annotations

import argparse

import numpy as np

from nnscratch import io
from nnscratch.training import extract_features, load_checkpoint
from nnscratch.training.setup import dataset_split, restore_run


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "extract",
        help="save the embeddings (the input of the head) of a split to .npz",
        description="Run a trained model over a split and save its pooled features "
        "(512-d for ResNet-18/34, 2048-d for ResNet-50+) with the labels: arrays "
        "'features' (N, D) float32, 'labels' (N,) int64 and 'classes' (K,) str.",
    )
    p.add_argument("checkpoint", help="a checkpoint written by nnscratch train")
    p.add_argument("--split", choices=["test", "val", "train"], default="test", help="default test")
    p.add_argument("--out", default="features.npz", help="output file (default features.npz)")
    p.add_argument("--batch-size", type=int, default=256, help="default 256")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    checkpoint = load_checkpoint(args.checkpoint)
    config, model, transform = restore_run(checkpoint)
    dataset = dataset_split(config, args.split)
    features = extract_features(model, dataset, transform, args.batch_size)
    io.save({"features": features, "labels": dataset.labels,
             "classes": np.array(checkpoint["classes"])}, args.out)  # fmt: skip
    print(
        f"wrote {args.out}: features {features.shape[0]} x {features.shape[1]} ({args.split} split)"
    )
    return 0
