"""``nnscratch bench``: images/s, peak memory and start-up of training and inference."""

from __future__ import annotations

import argparse

from nnscratch import bench


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="time a training step and inference (optionally against PyTorch)",
        description=(
            "Benchmark a model: images/s of a training step and of inference, peak memory "
            "of the training step, start-up time of a fresh process, and a breakdown of the "
            "step by layer type. --compare-torch runs the same architecture in PyTorch."
        ),
    )
    bench.add_arguments(p)
    p.set_defaults(run=bench.run)
