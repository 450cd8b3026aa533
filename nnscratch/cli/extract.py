"""``nnscratch extract CKPT``: the pooled embedding of every image, saved to ``.npz``."""

from __future__ import annotations

import argparse

import numpy as np

from nnscratch import io
from nnscratch.cli.arguments.checks import check_new_file
from nnscratch.cli.arguments.trained_run import add_checkpoint_arguments, load_trained_run
from nnscratch.training import extract_features


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "extract",
        help="save the embeddings (the input of the head) of a split to .npz",
        description="Run a trained model over a split and save its pooled features "
        "(512 x width for ResNet-18/34: 128-d at the default width 0.25, 512-d at --width 1; "
        "2048 x width for ResNet-50+; 64 x width for ResNet-20..110) with the labels: arrays "
        "'features' (N, D) float32, 'labels' (N,) int64 and 'classes' (K,) str.",
    )
    add_checkpoint_arguments(p)
    p.add_argument(
        "--out",
        default="features.npz",
        help="output file (default features.npz); an existing file is refused, not overwritten",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_new_file(args.out, "extract")  # before any work
    checkpoint, _, model, transform, dataset = load_trained_run(args)
    features = extract_features(model, dataset, transform, args.batch_size)
    io.save(
        {
            "features": features,
            "labels": dataset.labels,
            "classes": np.array(checkpoint["classes"]),
        },
        args.out,
    )
    print(
        f"wrote {args.out}: features {features.shape[0]} x {features.shape[1]} ({args.split} split)"
    )
    return 0
