"""``nnscratch bench``: images/s, peak memory and start-up of training and inference."""

from __future__ import annotations

import argparse
import json
import sys

from nnscratch.bench import BenchConfig, benchmark, config_from_args, format_table


def register(subparsers: argparse._SubParsersAction) -> None:
    d = BenchConfig()
    p = subparsers.add_parser(
        "bench",
        help="time a training step and inference (optionally against PyTorch)",
        description=(
            "Benchmark a model: images/s of a training step and of inference, peak memory "
            "of the training step, start-up time of a fresh process, and a breakdown of the "
            "step by layer type. --compare-torch runs the same architecture in PyTorch."
        ),
    )
    p.add_argument("--model", default=d.model, help=f"model name (default {d.model})")
    p.add_argument(
        "--stem",
        choices=["cifar", "imagenet"],
        default=d.stem,
        help="ResNet-18..152 only: 3x3 CIFAR stem or 7x7 + max-pool ImageNet stem (default cifar)",
    )
    p.add_argument(
        "--width", type=float, default=d.width, help=f"channel multiplier (default {d.width:g})"
    )
    p.add_argument(
        "--num-classes",
        type=int,
        default=d.num_classes,
        help=f"outputs of the head (default {d.num_classes})",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=d.batch_size,
        help=f"images per step (default {d.batch_size})",
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=d.image_size,
        help=f"input height = width (default {d.image_size})",
    )
    p.add_argument(
        "--in-channels",
        type=int,
        default=d.in_channels,
        help=f"image channels (default {d.in_channels})",
    )
    p.add_argument(
        "--dtype",
        choices=["float32", "float64"],
        default=d.dtype,
        help=f"type of the weights, activations and gradients (default {d.dtype})",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=d.steps,
        help=f"timed steps, of which the median counts (default {d.steps})",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=d.warmup,
        help=f"untimed steps before them (default {d.warmup})",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=d.threads,
        help=f"threads; 0 is every core (default {d.threads})",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=d.seed,
        help=f"seed of the weights and the batch (default {d.seed})",
    )
    p.add_argument(
        "--blas-thread-timeout",
        type=int,
        default=None,
        metavar="N",
        help="set OPENBLAS_THREAD_TIMEOUT=N in the workers: OpenBLAS's idle threads then "
        "spin 2**N cycles before sleeping, 2**28 when it is unset (default unset)",
    )
    p.add_argument(
        "--compare-torch",
        action="store_true",
        help="also run the same model in PyTorch (if importable), alternating step by step",
    )
    p.add_argument("--no-breakdown", action="store_true", help="skip the per-layer breakdown")
    p.add_argument("--no-startup", action="store_true", help="skip the fresh-process start-up")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed options; print JSON or a table; return 0."""
    config = config_from_args(args)
    result = benchmark(config, progress=None if args.json else sys.stderr)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0
